// The ready-made compute_metrics functions of io/eval_metrics.hpp: accuracy against hand-counted
// predictions, HF's -100 ignore index, and the errors for predictions that cannot be scored.

#include <trainpp/io/eval_metrics.hpp>

#include <doctest/doctest.h>

#include <torch/torch.h>

namespace eval_metrics_test {

TEST_CASE("eval_metrics: accuracy takes the argmax of the last dimension of logits") {
  // Rows 0 and 2 pick the labelled class, row 1 does not: 2 of 3.
  const auto logits = torch::tensor({{0.1f, 0.9f, 0.0f}, {2.0f, 1.0f, 0.5f}, {0.0f, 0.2f, 0.3f}});
  const auto labels = torch::tensor({1, 2, 2}, torch::kLong);
  const auto m = trainpp::accuracy({logits, labels});
  REQUIRE(m.size() == 1);
  CHECK(m.at("accuracy") == doctest::Approx(2.0 / 3.0));
}

TEST_CASE("eval_metrics: accuracy compares predictions of the labels' shape as class ids") {
  // Already decoded predictions (a preprocess_logits_for_metrics that took the argmax) are not reduced again.
  const auto predicted = torch::tensor({{3, 1}, {0, 2}}, torch::kLong);
  const auto labels = torch::tensor({{3, 0}, {0, 2}}, torch::kLong);
  CHECK(trainpp::accuracy({predicted, labels}).at("accuracy") == doctest::Approx(0.75));
}

TEST_CASE("eval_metrics: accuracy leaves out labels of -100 and is 0 when every label is ignored") {
  // Token-level: a batch of 2 sequences of 3 tokens over a vocabulary of 2, padding labelled -100.
  const auto logits = torch::tensor({{{1.0f, 0.0f}, {0.0f, 1.0f}, {1.0f, 0.0f}},
                                      {{0.0f, 1.0f}, {0.0f, 1.0f}, {1.0f, 0.0f}}});
  const auto labels = torch::tensor({{0, 0, -100}, {1, -100, -100}}, torch::kLong);
  // Counted: (0,0) right, (0,1) wrong, (1,0) right; the ignored three would all be "right" for class 0/1.
  CHECK(trainpp::accuracy({logits, labels}).at("accuracy") == doctest::Approx(2.0 / 3.0));

  const auto all_ignored = torch::full({2, 3}, -100, torch::kLong);
  CHECK(trainpp::accuracy({logits, all_ignored}).at("accuracy") == 0.0);
}

TEST_CASE("eval_metrics: accuracy refuses missing tensors and shapes that do not match") {
  const auto labels = torch::tensor({0, 1, 1, 0}, torch::kLong);
  CHECK_THROWS_WITH_AS((void)trainpp::accuracy({torch::Tensor(), labels}),
                       doctest::Contains("accuracy needs predictions and label ids"), trainpp::Error);
  CHECK_THROWS_WITH_AS((void)trainpp::accuracy({torch::zeros({4, 2}), torch::Tensor()}),
                       doctest::Contains("accuracy needs predictions and label ids"), trainpp::Error);
  // Three rows of logits against four labels.
  CHECK_THROWS_WITH_AS((void)trainpp::accuracy({torch::zeros({3, 2}), labels}),
                       doctest::Contains("predictions of shape 3 do not match labels of shape 4"), trainpp::Error);
}

}  // namespace eval_metrics_test
