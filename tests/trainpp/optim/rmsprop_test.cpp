// RMSprop against torch.optim.RMSprop's update written out by hand (plain, centered, with momentum and
// L2 decay), the state entries each option adds, and its option checks.

#include <trainpp/optim/rmsprop.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

namespace rmsprop_test {

trainpp::ParamGroup group_of(std::vector<torch::Tensor> params, double lr, double weight_decay = 0.0) {
  trainpp::ParamGroup group;
  group.params = std::move(params);
  group.lr = group.initial_lr = lr;
  group.weight_decay = weight_decay;
  return group;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a.detach() - b).abs().max().item<double>(); }

const std::vector<torch::Tensor>& gradients() {
  static const std::vector<torch::Tensor> all = {torch::tensor({0.4, 0.1, -0.3}, torch::kFloat64),
                                                 torch::tensor({-0.2, 0.5, 0.1}, torch::kFloat64),
                                                 torch::tensor({0.7, -0.6, 0.2}, torch::kFloat64)};
  return all;
}

TEST_CASE("rmsprop: the first plain step divides by the root of (1 - alpha) g^2") {
  auto p = torch::zeros({2}, torch::kFloat64);
  p.mutable_grad() = torch::tensor({2.0, -0.5}, torch::kFloat64);
  trainpp::RMSprop optimizer({group_of({p}, 0.01)}, {.alpha = 0.75, .eps = 0.0});
  optimizer.step();
  // g / sqrt(0.25 g^2) = 2 sign(g)
  CHECK(max_diff(p, torch::tensor({-0.02, 0.02}, torch::kFloat64)) < 1e-15);
  const auto state = optimizer.state();
  CHECK(state[0].size() == 2);  // step and square_avg only
  CHECK(max_diff(state[0].at("square_avg"), torch::tensor({1.0, 0.0625}, torch::kFloat64)) < 1e-15);
}

TEST_CASE("rmsprop: centered with momentum and L2 decay over several steps follows torch's formula") {
  const double lr = 0.01, alpha = 0.9, eps = 1e-6, momentum = 0.5, wd = 0.1;
  auto p = torch::tensor({1.0, -2.0, 0.5}, torch::kFloat64);
  trainpp::RMSprop optimizer({group_of({p}, lr, wd)}, {.alpha = alpha, .eps = eps, .momentum = momentum, .centered = true});
  auto want = p.clone();
  auto square_avg = torch::zeros({3}, torch::kFloat64), grad_avg = square_avg.clone(), buf = square_avg.clone();
  for (const auto& grad : gradients()) {
    p.mutable_grad() = grad.clone();
    optimizer.step();
    CHECK(torch::equal(p.grad(), grad));  // the L2 term goes into a copy
    const auto g = grad + wd * want;
    square_avg = alpha * square_avg + (1 - alpha) * g * g;
    grad_avg = grad_avg + (1 - alpha) * (g - grad_avg);
    const auto avg = (square_avg - grad_avg * grad_avg).sqrt() + eps;
    buf = momentum * buf + g / avg;
    want = want - lr * buf;
    CHECK(max_diff(p, want) < 1e-13);
  }
  const auto state = optimizer.state();
  CHECK(max_diff(state[0].at("grad_avg"), grad_avg) < 1e-14);
  CHECK(max_diff(state[0].at("momentum_buffer"), buf) < 1e-12);
  CHECK(state[0].at("step").item<float>() == 3.0f);
}

TEST_CASE("rmsprop: centering subtracts the squared mean gradient from the denominator") {
  // The same gradient twice: the centered variance estimate is smaller, so the step is larger.
  auto plain_p = torch::zeros({1}, torch::kFloat64), centered_p = plain_p.clone();
  trainpp::RMSprop plain({group_of({plain_p}, 0.1)}, {.alpha = 0.5, .eps = 0.0});
  trainpp::RMSprop centered({group_of({centered_p}, 0.1)}, {.alpha = 0.5, .eps = 0.0, .centered = true});
  plain_p.mutable_grad() = torch::ones({1}, torch::kFloat64);
  centered_p.mutable_grad() = torch::ones({1}, torch::kFloat64);
  plain.step();
  centered.step();
  // Step 1: square_avg 0.5, grad_avg 0.5 -> plain 1/sqrt(0.5), centered 1/sqrt(0.5 - 0.25) = 2.
  CHECK(plain_p.item<double>() == doctest::Approx(-0.1 / std::sqrt(0.5)).epsilon(1e-12));
  CHECK(centered_p.item<double>() == doctest::Approx(-0.2).epsilon(1e-12));
}

TEST_CASE("rmsprop: momentum_buffer and grad_avg are kept only when the options use them") {
  const auto keys_for = [](trainpp::RMSpropOptions options) {
    auto p = torch::zeros({2});
    trainpp::RMSprop optimizer({group_of({p}, 0.01)}, options);
    CHECK(optimizer.state()[0].empty());  // nothing before the first update
    p.mutable_grad() = torch::ones({2});
    optimizer.step();
    const auto state = optimizer.state();
    std::vector<std::string> keys;
    for (const auto& [key, value] : state[0]) keys.push_back(key);
    return keys;
  };
  CHECK(keys_for({}) == std::vector<std::string>{"square_avg", "step"});
  CHECK(keys_for({.momentum = 0.9}) == std::vector<std::string>{"momentum_buffer", "square_avg", "step"});
  CHECK(keys_for({.centered = true}) == std::vector<std::string>{"grad_avg", "square_avg", "step"});

  // Loading checks the entries against this optimizer's options.
  auto p = torch::zeros({2});
  p.mutable_grad() = torch::ones({2});
  trainpp::RMSprop centered({group_of({p}, 0.01)}, {.centered = true});
  centered.step();
  auto q = torch::zeros({2});
  trainpp::RMSprop plain({group_of({q}, 0.01)});
  CHECK_THROWS_WITH_AS(plain.load_state(centered.state()),
                       doctest::Contains("RMSprop: unexpected state entry 'grad_avg' for parameter #0"), trainpp::Error);
  trainpp::RMSprop with_momentum({group_of({q}, 0.01)}, {.momentum = 0.9, .centered = true});
  CHECK_THROWS_WITH_AS(with_momentum.load_state(centered.state()),
                       doctest::Contains("RMSprop: state of parameter #0 lacks 'momentum_buffer'"), trainpp::Error);
}

TEST_CASE("rmsprop: options out of range are refused") {
  auto p = torch::zeros({1});
  CHECK_THROWS_WITH_AS(trainpp::RMSprop({group_of({p}, 0.1)}, {.alpha = -0.5}),
                       doctest::Contains("RMSprop: invalid alpha -0.5"), trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::RMSprop({group_of({p}, 0.1)}, {.eps = -1.0}), doctest::Contains("RMSprop: invalid eps"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::RMSprop({group_of({p}, 0.1)}, {.momentum = -0.1}),
                       doctest::Contains("RMSprop: invalid momentum"), trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::RMSprop({group_of({p}, 0.1, -1.0)}), doctest::Contains("RMSprop: invalid weight_decay"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::RMSprop({group_of({p, p}, 0.1)}), doctest::Contains("appears more than once"),
                       trainpp::Error);
}

}  // namespace rmsprop_test
