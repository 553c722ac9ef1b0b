// loss/model_output.hpp: loss_of and logits_of for each output form a model may return (a bare loss
// tensor, ModelOutput or another struct with loss/logits members, a tuple or pair), the error for a
// missing loss, and forward/module_of for module holders and shared pointers.

#include <trainpp/loss/model_output.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <tuple>
#include <utility>

namespace model_output_test {

/// An output struct of the user's own: a loss member among others, and no logits.
struct LossOnly {
  torch::Tensor loss;
  int extra = 0;
};

/// One with logits as well, in the other order.
struct Custom {
  torch::Tensor logits;
  torch::Tensor hidden;
  torch::Tensor loss;
};

const char* const no_loss = "the model returned no loss: give the batch its labels (label_names), or set a loss policy";

TEST_CASE("model_output: loss_of takes the tensor itself, the loss member, or the first tuple element") {
  const auto loss = torch::tensor(0.5);
  const auto logits = torch::randn({2, 3});
  CHECK(trainpp::loss_of(loss).is_same(loss));
  CHECK(trainpp::loss_of(trainpp::ModelOutput{.loss = loss, .logits = logits}).is_same(loss));
  CHECK(trainpp::loss_of(LossOnly{.loss = loss}).is_same(loss));
  CHECK(trainpp::loss_of(Custom{.logits = logits, .hidden = logits, .loss = loss}).is_same(loss));
  CHECK(trainpp::loss_of(std::make_tuple(loss, logits)).is_same(loss));
  CHECK(trainpp::loss_of(std::make_tuple(loss)).is_same(loss));
  CHECK(trainpp::loss_of(std::make_tuple(loss, logits, 3)).is_same(loss));
  CHECK(trainpp::loss_of(std::make_pair(loss, logits)).is_same(loss));
}

TEST_CASE("model_output: loss_of an output without a loss is an Error pointing at the labels") {
  const auto logits = torch::randn({2, 3});
  CHECK_THROWS_WITH_AS((void)trainpp::loss_of(torch::Tensor()), no_loss, trainpp::Error);
  CHECK_THROWS_WITH_AS((void)trainpp::loss_of(trainpp::ModelOutput{.logits = logits}), no_loss, trainpp::Error);
  CHECK_THROWS_WITH_AS((void)trainpp::loss_of(LossOnly{}), no_loss, trainpp::Error);
  CHECK_THROWS_WITH_AS((void)trainpp::loss_of(std::make_tuple(torch::Tensor(), logits)), no_loss, trainpp::Error);
  CHECK_THROWS_WITH_AS((void)trainpp::loss_of(std::make_pair(torch::Tensor(), logits)), no_loss, trainpp::Error);
}

TEST_CASE("model_output: logits_of prefers a logits member, with or without labels") {
  const auto loss = torch::tensor(0.5);
  const auto logits = torch::randn({2, 3});
  const trainpp::ModelOutput out{.loss = loss, .logits = logits};
  CHECK(trainpp::logits_of(out, true).is_same(logits));
  CHECK(trainpp::logits_of(out, false).is_same(logits));
  const Custom custom{.logits = logits, .hidden = torch::zeros({1}), .loss = loss};
  CHECK(trainpp::logits_of(custom, true).is_same(logits));
  // Undefined logits stay undefined: no fallback to the loss.
  CHECK_FALSE(trainpp::logits_of(trainpp::ModelOutput{.loss = loss}, true).defined());
  // A struct with only a loss has no predictions.
  CHECK_FALSE(trainpp::logits_of(LossOnly{.loss = loss}, true).defined());
  CHECK_FALSE(trainpp::logits_of(LossOnly{.loss = loss}, false).defined());
}

TEST_CASE("model_output: logits_of a tuple is what follows the loss with labels, the first element without") {
  const auto loss = torch::tensor(0.5);
  const auto logits = torch::randn({2, 3});
  const auto hidden = torch::randn({2, 4});
  // HF's prediction_step: outputs[1:] with labels (the loss comes first), outputs[0] without.
  CHECK(trainpp::logits_of(std::make_tuple(loss, logits, hidden), true).is_same(logits));
  CHECK(trainpp::logits_of(std::make_tuple(logits, hidden), false).is_same(logits));
  CHECK(trainpp::logits_of(std::make_pair(loss, logits), true).is_same(logits));
  CHECK(trainpp::logits_of(std::make_pair(logits, hidden), false).is_same(logits));
  // A one-element tuple with labels is the loss alone: no logits.
  CHECK_FALSE(trainpp::logits_of(std::make_tuple(loss), true).defined());
  CHECK(trainpp::logits_of(std::make_tuple(logits), false).is_same(logits));
}

TEST_CASE("model_output: logits_of a bare tensor is nothing with labels (it is the loss) and itself without") {
  const auto t = torch::randn({2, 3});
  CHECK_FALSE(trainpp::logits_of(t, true).defined());
  CHECK(trainpp::logits_of(t, false).is_same(t));
}

struct DoublerImpl : torch::nn::Module {
  int calls = 0;
  torch::Tensor forward(const torch::Tensor& x) {
    ++calls;
    return x * 2;
  }
};
TORCH_MODULE(Doubler);

TEST_CASE("model_output: forward and module_of reach the module behind a holder or a shared_ptr") {
  Doubler holder;
  const auto x = torch::tensor({1.0f, 2.0f});
  CHECK(torch::equal(trainpp::forward(holder, x), torch::tensor({2.0f, 4.0f})));
  CHECK(holder->calls == 1);
  CHECK(&trainpp::module_of(holder) == static_cast<torch::nn::Module*>(holder.ptr().get()));

  auto shared = std::make_shared<DoublerImpl>();
  CHECK(torch::equal(trainpp::forward(shared, x), torch::tensor({2.0f, 4.0f})));
  CHECK(shared->calls == 1);
  CHECK(&trainpp::module_of(shared) == static_cast<torch::nn::Module*>(shared.get()));
  // module_of gives the module itself, so changing its mode changes the model's.
  trainpp::module_of(shared).eval();
  CHECK_FALSE(shared->is_training());
}

}  // namespace model_output_test
