// step/default_step.hpp: training_step (forward in the precision context, loss / window unless scaled for
// the window already, backward, detached result) and prediction_step (no grad, eval context, loss and
// labels only with labels), driven one micro-batch at a time on a recording Trainer and on a real one.

#include <trainpp/step/default_step.hpp>

#include <trainpp/data/batch.hpp>
#include <trainpp/loss/model_output.hpp>
#include <trainpp/trainer.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

namespace default_step_test {

using trainpp::Batch;

/// y = w.x + b over two features.
struct TinyImpl : torch::nn::Module {
  torch::nn::Linear fc{2, 1};
  TinyImpl() { register_module("fc", fc); }
  trainpp::ModelOutput forward(const Batch& b) {
    trainpp::ModelOutput out{.logits = fc(b.at("x")).squeeze(-1)};
    if (b.contains("labels")) out.loss = torch::mse_loss(out.logits, b.at("labels"));
    return out;
  }
};
TORCH_MODULE(Tiny);

/// A precision slot that records which context is open when the step forwards and backpropagates.
struct RecordingPrecision {
  class Context {
   public:
    explicit Context(bool& open) : open_(open) { open_ = true; }
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;
    ~Context() { open_ = false; }

   private:
    bool& open_;
  };
  bool in_forward_context = false, in_eval_context = false;
  int forward_contexts = 0, eval_contexts = 0;
  std::vector<torch::Tensor> backward_losses;
  bool backward_inside_forward_context = false;

  [[nodiscard]] Context forward_context(torch::Device) {
    ++forward_contexts;
    return Context(in_forward_context);
  }
  [[nodiscard]] Context eval_context(torch::Device) {
    ++eval_contexts;
    return Context(in_eval_context);
  }
  void backward(const torch::Tensor& loss) {
    backward_inside_forward_context = in_forward_context;
    backward_losses.push_back(loss);
    loss.backward();
  }
};

/// What DefaultStep asks of the Trainer, with the model's loss; `HasScaledFlag`: whether it has
/// loss_is_scaled_for_accumulation() (a Trainer-like type need not).
template <bool HasScaledFlag>
struct FakeTrainer {
  Tiny model;
  RecordingPrecision precision_;
  bool scaled = false;
  bool forward_context_during_loss = false, eval_context_during_forward = false, grad_during_forward = true;

  RecordingPrecision& precision() { return precision_; }
  torch::Device device() const { return torch::kCPU; }
  bool loss_is_scaled_for_accumulation() const
    requires HasScaledFlag
  {
    return scaled;
  }
  torch::Tensor compute_loss(const Batch& batch) {
    forward_context_during_loss = precision_.in_forward_context;
    return trainpp::loss_of(model->forward(batch));
  }
  bool has_labels(const Batch& batch) const { return batch.contains("labels"); }
  trainpp::ModelOutput forward(const Batch& batch) {
    eval_context_during_forward = precision_.in_eval_context;
    grad_during_forward = torch::GradMode::is_enabled();
    return model->forward(batch);
  }
  torch::Tensor compute_loss(const trainpp::ModelOutput& outputs, const Batch&) { return trainpp::loss_of(outputs); }
  torch::Tensor labels_of(const Batch& batch) const { return batch.at("labels"); }
  torch::Tensor logits_of(const trainpp::ModelOutput& outputs, bool has_labels) const {
    return trainpp::logits_of(outputs, has_labels);
  }
};

Batch micro_batch(int seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return Batch{{"x", torch::randn({4, 2}, gen)}, {"labels", torch::randn({4}, gen)}};
}

/// d(loss)/d(weight) of the model on a batch, computed apart from the step.
torch::Tensor weight_grad(Tiny& model, const Batch& batch) {
  const auto loss = model->forward(batch).loss;
  return torch::autograd::grad({loss}, {model->fc->weight})[0];
}

TEST_CASE("default_step: training_step divides the loss by the window, backpropagates it, returns it detached") {
  FakeTrainer<false> trainer;
  const Batch batch = micro_batch(1);
  const double full = trainer.model->forward(batch).loss.item<double>();
  const auto expected_grad = weight_grad(trainer.model, batch) / 4.0;

  const auto returned = trainpp::DefaultStep{}.training_step(trainer, batch, 4);
  CHECK(returned.item<double>() == doctest::Approx(full / 4.0));
  CHECK_FALSE(returned.requires_grad());
  REQUIRE(trainer.precision_.backward_losses.size() == 1);
  CHECK(trainer.precision_.backward_losses[0].item<double>() == doctest::Approx(full / 4.0));
  CHECK(torch::allclose(trainer.model->fc->weight.grad(), expected_grad));
  // The forward runs under the forward context, and the backward after it has closed.
  CHECK(trainer.precision_.forward_contexts == 1);
  CHECK(trainer.forward_context_during_loss);
  CHECK_FALSE(trainer.precision_.backward_inside_forward_context);
  CHECK(trainer.precision_.eval_contexts == 0);
}

TEST_CASE("default_step: a window of one micro-batch leaves the loss as it is") {
  FakeTrainer<false> trainer;
  const Batch batch = micro_batch(2);
  const double full = trainer.model->forward(batch).loss.item<double>();
  const auto expected_grad = weight_grad(trainer.model, batch);
  CHECK(trainpp::DefaultStep{}.training_step(trainer, batch, 1).item<double>() == doctest::Approx(full));
  CHECK(torch::allclose(trainer.model->fc->weight.grad(), expected_grad));
}

TEST_CASE("default_step: a loss already scaled for the window is not divided again") {
  FakeTrainer<true> trainer;
  const Batch batch = micro_batch(3);
  const double full = trainer.model->forward(batch).loss.item<double>();
  trainer.scaled = true;
  CHECK(trainpp::DefaultStep{}.training_step(trainer, batch, 4).item<double>() == doctest::Approx(full));
  // The same trainer outside such a window: divided again.
  trainer.scaled = false;
  CHECK(trainpp::DefaultStep{}.training_step(trainer, batch, 4).item<double>() == doctest::Approx(full / 4.0));
}

TEST_CASE("default_step: the micro-batches of a window sum to the mean loss and accumulate the mean gradient") {
  FakeTrainer<false> trainer;
  const std::vector<Batch> window{micro_batch(4), micro_batch(5), micro_batch(6)};
  double mean_loss = 0;
  auto mean_grad = torch::zeros_like(trainer.model->fc->weight);
  for (const auto& b : window) {
    mean_loss += trainer.model->forward(b).loss.item<double>() / 3.0;
    mean_grad += weight_grad(trainer.model, b) / 3.0;
  }
  double logged = 0;
  for (const auto& b : window) logged += trainpp::DefaultStep{}.training_step(trainer, b, 3).item<double>();
  CHECK(logged == doctest::Approx(mean_loss));
  CHECK(torch::allclose(trainer.model->fc->weight.grad(), mean_grad));
  CHECK(trainer.precision_.backward_losses.size() == 3);
}

TEST_CASE("default_step: prediction_step with labels gives the loss, the logits and the labels, without grad") {
  FakeTrainer<false> trainer;
  const Batch batch = micro_batch(7);
  const auto expected = trainer.model->forward(batch);
  const auto out = trainpp::DefaultStep{}.prediction_step(trainer, batch, false);
  REQUIRE(out.loss.defined());
  CHECK(out.loss.item<double>() == doctest::Approx(expected.loss.item<double>()));
  CHECK_FALSE(out.loss.requires_grad());
  REQUIRE(out.logits.defined());
  CHECK(torch::allclose(out.logits, expected.logits));
  CHECK_FALSE(out.logits.requires_grad());
  CHECK(out.labels.is_same(batch.at("labels")));
  CHECK_FALSE(trainer.grad_during_forward);
  CHECK(trainer.eval_context_during_forward);
  CHECK(trainer.precision_.eval_contexts == 1);
  CHECK(trainer.precision_.forward_contexts == 0);
  CHECK(trainer.precision_.backward_losses.empty());
  CHECK_FALSE(trainer.model->fc->weight.grad().defined());
  CHECK(torch::GradMode::is_enabled());  // restored after the step

  const auto loss_only = trainpp::DefaultStep{}.prediction_step(trainer, batch, true);
  CHECK(loss_only.loss.defined());
  CHECK(loss_only.labels.defined());
  CHECK_FALSE(loss_only.logits.defined());
}

TEST_CASE("default_step: prediction_step without labels gives the logits only") {
  FakeTrainer<false> trainer;
  const Batch batch = micro_batch(8).without({"labels"});
  const auto out = trainpp::DefaultStep{}.prediction_step(trainer, batch, false);
  CHECK_FALSE(out.loss.defined());
  CHECK_FALSE(out.labels.defined());
  REQUIRE(out.logits.defined());
  CHECK(out.logits.sizes() == std::vector<std::int64_t>{4});
  // Asked for the loss only, a batch without labels gives nothing.
  const auto nothing = trainpp::DefaultStep{}.prediction_step(trainer, batch, true);
  CHECK_FALSE(nothing.loss.defined());
  CHECK_FALSE(nothing.logits.defined());
  CHECK_FALSE(nothing.labels.defined());
}

trainpp::TrainingArguments quiet_args() {
  trainpp::TrainingArguments a;
  a.output_dir = (std::filesystem::temp_directory_path() / "trainpp_default_step_test").string();
  a.disable_tqdm = true;
  a.save_strategy = trainpp::SaveStrategy::no;
  return a;
}

TEST_CASE("default_step: on a Trainer, training_step leaves the gradient of loss / window on its model") {
  trainpp::Trainer trainer(Tiny{}, quiet_args());
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(trainer.step())>, trainpp::DefaultStep>);
  auto& model = trainer.model();
  const Batch batch = micro_batch(9).to(trainer.device());
  const double full = model->forward(batch).loss.item<double>();
  const auto expected_grad = weight_grad(model, batch) / 2.0;
  const auto returned = trainer.step().training_step(trainer, batch, 2);
  CHECK(returned.item<double>() == doctest::Approx(full / 2.0));
  CHECK_FALSE(returned.requires_grad());
  CHECK(torch::allclose(model->fc->weight.grad(), expected_grad));

  const auto out = trainer.step().prediction_step(trainer, batch, false);
  CHECK(out.loss.item<double>() == doctest::Approx(full));
  CHECK(torch::equal(out.labels, batch.at("labels")));
  CHECK(out.logits.sizes() == std::vector<std::int64_t>{4});
}

}  // namespace default_step_test
