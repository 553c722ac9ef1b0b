// The evaluation loop (evaluation.hpp) through evaluate() and predict(): HF's metric names and prefixes,
// the loss weighted by batch size, predictions and label ids gathered over batches, label_names.

#include <trainpp/evaluation.hpp>

#include <doctest/doctest.h>

#include "tiny_classifier.hpp"

namespace evaluation_test {

using namespace tiny_classifier;

TEST_CASE("evaluate returns HF's eval metrics, compute_metrics prefixed, loss weighted by batch size") {
  auto eval = data(10);  // batches of 4, 4, 2: the mean must weight the last batch by 2
  trainpp::Trainer trainer(Net{}, quiet_args("trainpp_evaluation_test"), trainpp::eval_dataset = eval,
                           trainpp::compute_metrics = trainpp::accuracy);
  const auto m = trainer.evaluate();
  for (const auto* key : {"eval_loss", "eval_accuracy", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second"})
    CHECK_MESSAGE(m.count(key) == 1, key);
  CHECK(m.count("epoch") == 0);  // no training yet: HF adds the epoch only once there is one

  torch::NoGradGuard no_grad;
  const auto all = eval.gather({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}).to(trainer.device());
  const auto logits = trainer.model()->fc(all.at("x"));
  const double loss = torch::nn::functional::cross_entropy(logits, all.at("labels")).item<double>();
  const double acc = logits.argmax(-1).eq(all.at("labels")).to(torch::kDouble).mean().item<double>();
  CHECK(m.at("eval_loss") == doctest::Approx(loss).epsilon(1e-6));
  CHECK(m.at("eval_accuracy") == doctest::Approx(acc));
  // evaluate logs its metrics (with the step) into log_history, as HF's evaluate does.
  REQUIRE(trainer.state().log_history.size() == 1);
  CHECK(trainer.state().log_history[0]["step"] == 0);
}

TEST_CASE("predict returns predictions, label ids and test_ metrics, and does not log") {
  auto test = data(7);
  trainpp::Trainer trainer(Net{}, quiet_args("trainpp_evaluation_test"), trainpp::compute_metrics = trainpp::accuracy);
  const auto out = trainer.predict(test);
  CHECK(out.predictions.sizes() == torch::IntArrayRef({7, 3}));
  CHECK(out.label_ids.sizes() == torch::IntArrayRef({7}));
  CHECK(torch::equal(out.label_ids.cpu(), test.gather({0, 1, 2, 3, 4, 5, 6}).at("labels")));
  CHECK(out.metrics.count("test_loss") == 1);
  CHECK(out.metrics.count("test_accuracy") == 1);
  CHECK(out.metrics.count("test_runtime") == 1);
  CHECK(trainer.state().log_history.empty());
}

TEST_CASE("label_names picks the label key, and a batch without it gives no loss") {
  auto args = quiet_args("trainpp_evaluation_test");
  args.label_names = {"target"};
  trainpp::Trainer trainer(Net("target"), args, trainpp::compute_metrics = trainpp::accuracy);
  const auto out = trainer.predict(data(6, "target"));
  CHECK(out.label_ids.numel() == 6);
  CHECK(out.metrics.count("test_loss") == 1);
  // Without the label key the model returns no loss and only predictions come back.
  trainpp::TensorDataset unlabeled{{"x", torch::zeros({5, 2})}};
  const auto bare = trainer.predict(unlabeled);
  CHECK(bare.predictions.size(0) == 5);
  CHECK_FALSE(bare.label_ids.defined());
  CHECK(bare.metrics.count("test_loss") == 0);
}

}  // namespace evaluation_test
