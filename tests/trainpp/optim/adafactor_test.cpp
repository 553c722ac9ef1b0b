// Adafactor against transformers.Adafactor's update written out by hand: factored and unfactored second
// moments, RMS clipping, the relative and parameter-scaled rates, first moment, weight decay, half
// precision, option checks and state round trip.

#include <trainpp/optim/adafactor.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace adafactor_test {

trainpp::ParamGroup group_of(std::vector<torch::Tensor> params, double lr, double weight_decay = 0.0) {
  trainpp::ParamGroup group;
  group.params = std::move(params);
  group.lr = group.initial_lr = lr;
  group.weight_decay = weight_decay;
  return group;
}

// HF Trainer's settings: the schedule's rate, unscaled.
trainpp::AdafactorOptions fixed_rate() {
  trainpp::AdafactorOptions options;
  options.scale_parameter = false;
  options.relative_step = false;
  return options;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a.detach() - b).abs().max().item<double>(); }
double rms(const torch::Tensor& t) { return t.pow(2).mean().sqrt().item<double>(); }
std::string dt(c10::ScalarType t) { return c10::toString(t); }

TEST_CASE("adafactor: a vector's first step is lr times the gradient's sign, shrunk by update clipping") {
  // Step 1 has beta2 = 1 - 1^-0.8 = 0: the second moment is g^2, the update g / |g|, of RMS 1.
  for (const double clip : {1.0, 0.5, 4.0}) {
    CAPTURE(clip);
    auto p = torch::zeros({3}, torch::kFloat64);
    p.mutable_grad() = torch::tensor({0.5, -2.0, 0.25}, torch::kFloat64);
    auto options = fixed_rate();
    options.clip_threshold = clip;
    trainpp::Adafactor optimizer({group_of({p}, 0.1)}, options);
    optimizer.step();
    const double shrink = std::min(1.0, clip);  // the update is divided by max(1, RMS / clip)
    CHECK(max_diff(p, torch::tensor({-0.1, 0.1, -0.1}, torch::kFloat64) * shrink) < 1e-15);
    const auto state = optimizer.state()[0];
    CHECK(max_diff(state.at("exp_avg_sq"), torch::tensor({0.25, 4.0, 0.0625}, torch::kFloat64)) < 1e-15);
  }
}

TEST_CASE("adafactor: a matrix's second moment is factored into row and column means") {
  const std::vector<torch::Tensor> grads = {torch::tensor({{0.5, -1.0, 2.0}, {0.1, 0.3, -0.2}}, torch::kFloat64),
                                            torch::tensor({{-0.4, 0.2, 0.6}, {1.5, -0.1, 0.05}}, torch::kFloat64)};
  auto p = torch::tensor({{1.0, -1.0, 0.5}, {0.2, 0.0, -0.3}}, torch::kFloat64);
  auto options = fixed_rate();
  options.clip_threshold = 0.8;
  trainpp::Adafactor optimizer({group_of({p}, 0.01)}, options);
  auto want = p.clone(), before_last = want;
  auto row = torch::zeros({2}, torch::kFloat64), col = torch::zeros({3}, torch::kFloat64);
  for (std::size_t i = 0; i < grads.size(); ++i) {
    p.mutable_grad() = grads[i].clone();
    optimizer.step();
    const double t = static_cast<double>(i + 1), beta2 = 1 - std::pow(t, -0.8);
    const auto sq = grads[i] * grads[i] + 1e-30;
    row = beta2 * row + (1 - beta2) * sq.mean(-1);
    col = beta2 * col + (1 - beta2) * sq.mean(-2);
    auto update = (row / row.mean()).rsqrt().unsqueeze(-1) * col.rsqrt().unsqueeze(0) * grads[i];
    update = update / std::max(1.0, rms(update) / 0.8);
    before_last = want;
    want = want - 0.01 * update;
    CHECK(max_diff(p, want) < 1e-14);
  }
  const auto state = optimizer.state()[0];
  CHECK_FALSE(state.contains("exp_avg_sq"));
  CHECK(max_diff(state.at("exp_avg_sq_row"), row) < 1e-14);
  CHECK(max_diff(state.at("exp_avg_sq_col"), col) < 1e-14);
  CHECK(state.at("step").item<float>() == 2.0f);
  // "RMS" is the parameter's RMS as the last step found it, before its update.
  CHECK(state.at("RMS").item<double>() == doctest::Approx(rms(before_last)).epsilon(1e-6));
}

TEST_CASE("adafactor: relative_step ignores the group's lr, scale_parameter multiplies by the parameter's RMS") {
  const auto moved = [](trainpp::AdafactorOptions options, double start) {
    auto p = torch::full({4}, start, torch::kFloat64);
    p.mutable_grad() = torch::tensor({1.0, -1.0, 1.0, -1.0}, torch::kFloat64);
    trainpp::Adafactor optimizer({group_of({p}, /*lr=*/0.5)}, options);
    optimizer.step();
    return start - p[0].item<double>();  // the first element's gradient is +1: it moves down by the rate
  };
  trainpp::AdafactorOptions defaults;  // relative_step and scale_parameter on
  CHECK(moved(defaults, 3.0) == doctest::Approx(1e-2 * 3.0).epsilon(1e-6));
  defaults.warmup_init = true;  // min(1e-6 * step, 1/sqrt(step))
  CHECK(moved(defaults, 3.0) == doctest::Approx(1e-6 * 3.0).epsilon(1e-6));
  trainpp::AdafactorOptions unscaled;
  unscaled.scale_parameter = false;
  CHECK(moved(unscaled, 3.0) == doctest::Approx(1e-2).epsilon(1e-6));
  // A parameter of RMS 0 is scaled by eps2, not 0: it can move away from zero.
  CHECK(moved(trainpp::AdafactorOptions{}, 0.0) == doctest::Approx(1e-3 * 1e-2).epsilon(1e-6));
  auto scaled_fixed = fixed_rate();
  scaled_fixed.scale_parameter = true;
  CHECK(moved(scaled_fixed, 2.0) == doctest::Approx(0.5 * 2.0).epsilon(1e-6));
  CHECK(moved(fixed_rate(), 2.0) == doctest::Approx(0.5).epsilon(1e-12));
}

TEST_CASE("adafactor: beta1 averages the updates and weight decay uses the rate") {
  auto p = torch::tensor({2.0, -2.0}, torch::kFloat64);
  p.mutable_grad() = torch::tensor({1.0, 1.0}, torch::kFloat64);
  auto options = fixed_rate();
  options.beta1 = 0.5;
  trainpp::Adafactor optimizer({group_of({p}, 0.1, /*weight_decay=*/0.5)}, options);
  optimizer.step();
  // p * (1 - wd * lr) - (1 - beta1) * lr * sign(g)
  CHECK(max_diff(p, torch::tensor({2.0 * 0.95 - 0.05, -2.0 * 0.95 - 0.05}, torch::kFloat64)) < 1e-15);
  CHECK(max_diff(optimizer.state()[0].at("exp_avg"), torch::tensor({0.05, 0.05}, torch::kFloat64)) < 1e-15);
}

TEST_CASE("adafactor: half-precision parameters are updated through float32 state") {
  auto p = torch::ones({2, 2}, torch::kBFloat16), v = torch::ones({2}, torch::kBFloat16);
  p.mutable_grad() = torch::ones({2, 2}, torch::kBFloat16);
  v.mutable_grad() = torch::full({2}, -1.0, torch::kBFloat16);
  auto options = fixed_rate();
  options.beta1 = 0.9;
  trainpp::Adafactor optimizer({group_of({p, v}, 0.5)}, options);
  optimizer.step();
  CHECK(dt(p.scalar_type()) == dt(torch::kBFloat16));
  CHECK(torch::equal(p, torch::full({2, 2}, 0.95, torch::kBFloat16)));  // 1 - 0.1 * 0.5 * 1, rounded as bf16
  CHECK(torch::equal(v, torch::full({2}, 1.05, torch::kBFloat16)));
  const auto state = optimizer.state();
  for (const auto& entry : state)
    for (const auto& [key, value] : entry) {
      CAPTURE(key);
      CHECK(dt(value.scalar_type()) == dt(torch::kFloat32));
    }
  // A resumed optimizer takes the float32 state back as float32 for these parameters.
  trainpp::Adafactor resumed({group_of({p, v}, 0.5)}, options);
  resumed.load_state(state);
  CHECK(dt(resumed.state()[0].at("exp_avg").scalar_type()) == dt(torch::kFloat32));
}

TEST_CASE("adafactor: contradictory or out-of-range options are refused") {
  auto p = torch::zeros({1});
  const auto make = [&](trainpp::AdafactorOptions options) { (void)trainpp::Adafactor({group_of({p}, 0.1)}, options); };
  auto options = fixed_rate();
  options.warmup_init = true;
  CHECK_THROWS_WITH_AS(make(options), doctest::Contains("Adafactor: warmup_init needs relative_step"), trainpp::Error);
  options = fixed_rate();
  options.beta1 = 1.0;
  CHECK_THROWS_WITH_AS(make(options), doctest::Contains("Adafactor: invalid beta1 1 (need 0 <= beta1 < 1)"),
                       trainpp::Error);
  options = fixed_rate();
  options.clip_threshold = 0;
  CHECK_THROWS_WITH_AS(make(options), doctest::Contains("Adafactor: invalid clip_threshold 0"), trainpp::Error);
  options = fixed_rate();
  options.decay_rate = 0.8;
  CHECK_THROWS_WITH_AS(make(options), doctest::Contains("Adafactor: invalid decay_rate 0.8"), trainpp::Error);
  options = fixed_rate();
  options.eps2 = -1;
  CHECK_THROWS_WITH_AS(make(options), doctest::Contains("Adafactor: invalid eps"), trainpp::Error);
  options = fixed_rate();
  options.beta1 = 0.0;
  CHECK_NOTHROW(make(options));
}

TEST_CASE("adafactor: a run resumed from its state continues exactly as the original") {
  auto a = torch::tensor({{0.5, -1.0, 2.0}, {0.3, 0.1, -0.4}}), b = a.clone();
  auto options = fixed_rate();
  options.beta1 = 0.9;
  trainpp::Adafactor original({group_of({a}, 0.05, 0.1)}, options);
  const auto grad = [](int step) { return torch::tensor({{0.3, -0.2, 0.1}, {0.05, 0.4, -0.6}}) * (step + 1); };
  for (int step = 0; step < 2; ++step) {
    a.mutable_grad() = grad(step);
    original.step();
  }
  {
    torch::NoGradGuard no_grad;
    b.copy_(a);
  }
  trainpp::Adafactor resumed({group_of({b}, 0.05, 0.1)}, options);
  resumed.load_state(original.state());
  for (int step = 2; step < 4; ++step) {
    a.mutable_grad() = grad(step);
    b.mutable_grad() = grad(step);
    original.step();
    resumed.step();
  }
  CHECK(torch::equal(a, b));
  CHECK(resumed.state()[0].at("step").item<float>() == 4.0f);
}

}  // namespace adafactor_test
