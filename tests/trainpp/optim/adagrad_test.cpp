// Adagrad against torch.optim.Adagrad's update written out by hand (sum of squared gradients, lr decayed
// per step, L2 decay on the gradient), its step counters, option checks and state round trip.

#include <trainpp/optim/adagrad.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <vector>

namespace adagrad_test {

trainpp::ParamGroup group_of(std::vector<torch::Tensor> params, double lr, double weight_decay = 0.0) {
  trainpp::ParamGroup group;
  group.params = std::move(params);
  group.lr = group.initial_lr = lr;
  group.weight_decay = weight_decay;
  return group;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a.detach() - b).abs().max().item<double>(); }

TEST_CASE("adagrad: the first step moves each element by lr times the gradient over its root sum") {
  // With no accumulator and eps 0 the first update is lr * g / |g|: exactly lr against the sign.
  auto p = torch::zeros({3}, torch::kFloat64);
  p.mutable_grad() = torch::tensor({3.0, -4.0, 0.5}, torch::kFloat64);
  trainpp::Adagrad plain({group_of({p}, 0.1)}, {.eps = 0.0});
  plain.step();
  CHECK(max_diff(p, torch::tensor({-0.1, 0.1, -0.1}, torch::kFloat64)) < 1e-15);

  // initial_accumulator_value seeds the sum: -lr * 3 / sqrt(1 + 9).
  auto q = torch::zeros({1}, torch::kFloat64);
  q.mutable_grad() = torch::tensor({3.0}, torch::kFloat64);
  trainpp::Adagrad seeded({group_of({q}, 0.1)}, {.initial_accumulator_value = 1.0, .eps = 0.0});
  seeded.step();
  CHECK(q.item<double>() == doctest::Approx(-0.3 / std::sqrt(10.0)).epsilon(1e-12));
  CHECK(seeded.state()[0].at("sum").item<double>() == doctest::Approx(10.0));
}

TEST_CASE("adagrad: lr_decay and L2 weight decay over several steps follow torch's formula") {
  const double lr = 0.1, lr_decay = 0.5, wd = 0.2, init = 0.3, eps = 1e-10;
  const std::vector<torch::Tensor> grads = {torch::tensor({0.4, 0.1, -0.3}, torch::kFloat64),
                                            torch::tensor({-0.2, 0.5, 0.1}, torch::kFloat64),
                                            torch::tensor({0.7, -0.6, 0.2}, torch::kFloat64)};
  auto p = torch::tensor({1.0, -2.0, 0.5}, torch::kFloat64);
  trainpp::Adagrad optimizer({group_of({p}, lr, wd)}, {.lr_decay = lr_decay, .initial_accumulator_value = init, .eps = eps});

  auto want = p.clone();
  auto sum = torch::full({3}, init, torch::kFloat64);
  for (std::size_t t = 1; t <= grads.size(); ++t) {
    p.mutable_grad() = grads[t - 1].clone();
    optimizer.step();
    // The stored gradient is not changed by the L2 term (it is added to a copy).
    CHECK(torch::equal(p.grad(), grads[t - 1]));
    const auto g = grads[t - 1] + wd * want;
    sum = sum + g * g;
    const double clr = lr / (1 + static_cast<double>(t - 1) * lr_decay);
    want = want - clr * g / (sum.sqrt() + eps);
    CHECK(max_diff(p, want) < 1e-14);
  }
  CHECK(optimizer.state()[0].at("step").item<float>() == 3.0f);
  CHECK(max_diff(optimizer.state()[0].at("sum"), sum) < 1e-14);
}

TEST_CASE("adagrad: a parameter without a gradient is left alone and its step does not advance") {
  auto a = torch::ones({2}), b = torch::ones({2});
  trainpp::Adagrad optimizer({group_of({a, b}, 0.1, 0.5)});
  a.mutable_grad() = torch::ones({2});
  optimizer.step();
  CHECK(torch::equal(b, torch::ones({2})));  // weight decay would have moved it had it been stepped
  CHECK_FALSE(torch::equal(a, torch::ones({2})));
  auto state = optimizer.state();
  REQUIRE(state.size() == 2);
  CHECK(state[1].empty());

  b.mutable_grad() = torch::ones({2});
  optimizer.step();
  state = optimizer.state();
  CHECK(state[0].at("step").item<float>() == 2.0f);
  CHECK(state[1].at("step").item<float>() == 1.0f);
  CHECK(state[0].at("step").device().is_cpu());
}

TEST_CASE("adagrad: options and groups out of range are refused") {
  auto p = torch::zeros({1});
  CHECK_THROWS_WITH_AS(trainpp::Adagrad({group_of({p}, 0.1)}, {.lr_decay = -0.1}),
                       doctest::Contains("Adagrad: invalid lr_decay -0.1"), trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::Adagrad({group_of({p}, 0.1)}, {.initial_accumulator_value = -1.0}),
                       doctest::Contains("Adagrad: invalid initial_accumulator_value -1"), trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::Adagrad({group_of({p}, 0.1)}, {.eps = -1e-3}),
                       doctest::Contains("Adagrad: invalid eps"), trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::Adagrad({group_of({p}, -0.1)}), doctest::Contains("Adagrad: invalid learning rate"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::Adagrad({group_of({torch::zeros({1}, torch::kLong)}, 0.1)}),
                       doctest::Contains("only floating-point parameters"), trainpp::Error);
}

TEST_CASE("adagrad: a run resumed from its state continues exactly as the original") {
  auto a = torch::tensor({0.5, -1.0, 2.0}), b = a.clone();
  trainpp::Adagrad original({group_of({a}, 0.05, 0.1)}, {.lr_decay = 0.1});
  const auto grad = [](int step) { return torch::tensor({0.3, -0.2, 0.1}) * (step + 1); };
  for (int step = 0; step < 2; ++step) {
    a.mutable_grad() = grad(step);
    original.step();
  }
  {
    torch::NoGradGuard no_grad;
    b.copy_(a);
  }
  trainpp::Adagrad resumed({group_of({b}, 0.05, 0.1)}, {.lr_decay = 0.1});
  resumed.load_state(original.state());
  for (int step = 2; step < 4; ++step) {
    a.mutable_grad() = grad(step);
    b.mutable_grad() = grad(step);
    original.step();
    resumed.step();
  }
  CHECK(torch::equal(a, b));
  CHECK(resumed.state()[0].at("step").item<float>() == 4.0f);

  // A state of the wrong length, or one with another optimizer's entries, is refused.
  CHECK_THROWS_WITH_AS(resumed.load_state(trainpp::OptimizerState(2)),
                       doctest::Contains("Adagrad: the saved state has 2 parameters, the optimizer has 1"),
                       trainpp::Error);
  auto foreign = original.state();
  foreign[0]["exp_avg"] = torch::zeros({3});
  CHECK_THROWS_WITH_AS(resumed.load_state(foreign), doctest::Contains("Adagrad: unexpected state entry 'exp_avg'"),
                       trainpp::Error);
}

}  // namespace adagrad_test
