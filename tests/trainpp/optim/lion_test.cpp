// Lion against the update of the paper and lion-pytorch written out by hand: the sign of the
// momentum/gradient interpolation, decoupled weight decay, the momentum, skipping and option checks.

#include <trainpp/optim/lion.hpp>

#include <doctest/doctest.h>

#include <vector>

namespace lion_test {

trainpp::ParamGroup group_of(std::vector<torch::Tensor> params, double lr, double weight_decay = 0.0) {
  trainpp::ParamGroup group;
  group.params = std::move(params);
  group.lr = group.initial_lr = lr;
  group.weight_decay = weight_decay;
  return group;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a.detach() - b).abs().max().item<double>(); }

TEST_CASE("lion: each step moves by lr against the sign of beta1 m + (1 - beta1) g, after decoupled decay") {
  const double lr = 0.01, wd = 0.5;
  auto p = torch::tensor({1.0, -2.0, 0.5}, torch::kFloat64);
  trainpp::Lion optimizer({group_of({p}, lr, wd)}, {.beta1 = 0.9, .beta2 = 0.99});

  p.mutable_grad() = torch::tensor({1.0, -1.0, 2.0}, torch::kFloat64);
  optimizer.step();
  // No momentum yet: the sign of the gradient.
  auto want = torch::tensor({1.0, -2.0, 0.5}, torch::kFloat64) * (1 - lr * wd) - lr * torch::tensor({1.0, -1.0, 1.0}, torch::kFloat64);
  CHECK(max_diff(p, want) < 1e-15);
  CHECK(max_diff(optimizer.state()[0].at("exp_avg"), torch::tensor({0.01, -0.01, 0.02}, torch::kFloat64)) < 1e-15);

  // 0.9 m + 0.1 g = [0.004, -0.059, 0.028]: the first element follows the momentum against the gradient.
  p.mutable_grad() = torch::tensor({-0.05, -0.5, 0.1}, torch::kFloat64);
  optimizer.step();
  want = want * (1 - lr * wd) - lr * torch::tensor({1.0, -1.0, 1.0}, torch::kFloat64);
  CHECK(max_diff(p, want) < 1e-15);
  const auto m = 0.99 * torch::tensor({0.01, -0.01, 0.02}, torch::kFloat64) +
                 0.01 * torch::tensor({-0.05, -0.5, 0.1}, torch::kFloat64);
  CHECK(max_diff(optimizer.state()[0].at("exp_avg"), m) < 1e-15);
}

TEST_CASE("lion: the size of the gradient does not change the step, a zero gradient gives no step") {
  auto small = torch::tensor({0.3, -0.7}), large = small.clone(), zero = small.clone();
  trainpp::Lion optimizer({group_of({small, large, zero}, 0.1)});
  for (int step = 0; step < 3; ++step) {
    const auto grad = torch::tensor({0.2, 0.4}) * (step % 2 == 0 ? 1.0 : -0.5);
    small.mutable_grad() = grad.clone();
    large.mutable_grad() = grad * 1000;
    zero.mutable_grad() = torch::zeros({2});
    optimizer.step();
  }
  CHECK(torch::equal(small, large));
  CHECK_FALSE(torch::equal(small, torch::tensor({0.3f, -0.7f})));
  CHECK(torch::equal(zero, torch::tensor({0.3f, -0.7f})));  // sign(0) = 0, and no weight decay
}

TEST_CASE("lion: a parameter without a gradient keeps its value and gets no state") {
  auto a = torch::ones({2}), b = torch::ones({2});
  trainpp::Lion optimizer({group_of({a}, 0.1, 0.1), group_of({b}, 0.1, 0.1)});
  a.mutable_grad() = torch::ones({2});
  optimizer.step();
  CHECK(torch::equal(b, torch::ones({2})));  // not even the decoupled decay
  CHECK(a[0].item<float>() == doctest::Approx(1 * (1 - 0.01) - 0.1));
  const auto state = optimizer.state();
  REQUIRE(state.size() == 2);
  CHECK(state[0].contains("exp_avg"));
  CHECK(state[1].empty());
}

TEST_CASE("lion: betas below 0 or from 1 up are refused, 0 is allowed") {
  auto p = torch::zeros({1});
  CHECK_THROWS_WITH_AS(trainpp::Lion({group_of({p}, 0.1)}, {.beta1 = 1.0}),
                       doctest::Contains("Lion: invalid beta1 1 (need 0 <= beta1 < 1)"), trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::Lion({group_of({p}, 0.1)}, {.beta2 = -0.1}),
                       doctest::Contains("Lion: invalid beta2 -0.1"), trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::Lion({group_of({p}, -1.0)}), doctest::Contains("Lion: invalid learning rate"),
                       trainpp::Error);
  CHECK_NOTHROW(trainpp::Lion({group_of({p}, 0.1)}, {.beta1 = 0.0, .beta2 = 0.0}));
}

TEST_CASE("lion: a run resumed from its state continues exactly as the original") {
  auto a = torch::tensor({0.5, -1.0, 2.0}), b = a.clone();
  trainpp::Lion original({group_of({a}, 0.05, 0.1)});
  const auto grad = [](int step) { return torch::tensor({0.3, -0.2, 0.1}) * (step < 3 ? 1.0 : -0.15); };
  // The last gradient is small against the momentum of three like ones, not against one's.
  for (int step = 0; step < 2; ++step) {
    a.mutable_grad() = grad(step);
    original.step();
  }
  {
    torch::NoGradGuard no_grad;
    b.copy_(a);
  }
  trainpp::Lion resumed({group_of({b}, 0.05, 0.1)});
  resumed.load_state(original.state());
  trainpp::Lion forgetful({group_of({b.clone()}, 0.05, 0.1)});  // without the momentum: differs
  auto c = forgetful.param_groups()[0].params[0];
  for (int step = 2; step < 4; ++step) {
    for (auto* t : {&a, &b, &c}) t->mutable_grad() = grad(step);
    original.step();
    resumed.step();
    forgetful.step();
  }
  CHECK(torch::equal(a, b));
  CHECK_FALSE(torch::equal(a, c));
  auto wrong = original.state();
  wrong[0]["exp_avg"] = torch::zeros({2});
  CHECK_THROWS_WITH_AS(resumed.load_state(wrong),
                       doctest::Contains("Lion: state entry 'exp_avg' of parameter #0 has shape [2], expected [3]"),
                       trainpp::Error);
}

}  // namespace lion_test
