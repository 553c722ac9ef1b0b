// MixedPrecision, the default precision slot: the policy --bf16/--fp16 select, and what each does to a
// tiny Linear's forward, backward and step on the CPU, the overflow agreement and the scaler's state.

#include <trainpp/precision/mixed.hpp>
#include <trainpp/optim/sgd.hpp>

#include <doctest/doctest.h>

#include <limits>
#include <string>
#include <variant>

namespace mixed_test {

std::string dt(c10::ScalarType t) { return c10::toString(t); }

// y = x . [1, 2] + 0.5: every value below is exact in float16 and bfloat16.
torch::nn::Linear tiny_linear() {
  torch::nn::Linear linear(2, 1);
  torch::NoGradGuard no_grad;
  linear->weight.copy_(torch::tensor({{1.0f, 2.0f}}));
  linear->bias.copy_(torch::tensor({0.5f}));
  return linear;
}

trainpp::SGD sgd_over(torch::nn::Linear& linear, double lr) {
  trainpp::ParamGroup group;
  group.params = linear->parameters();
  group.lr = group.initial_lr = lr;
  return trainpp::SGD({group});
}

trainpp::TrainingArguments flags(bool bf16, bool fp16) {
  trainpp::TrainingArguments args;
  args.bf16 = bf16;
  args.fp16 = fp16;
  return args;
}

// The dtype of the Linear's output under the policy's forward context.
std::string forward_dtype(const trainpp::MixedPrecision& precision) {
  auto linear = tiny_linear();
  const auto context = precision.forward_context(torch::kCPU);
  return dt(linear->forward(torch::ones({1, 2})).scalar_type());
}

TEST_CASE("mixed precision: --bf16 and --fp16 choose the policy, both at once are refused") {
  trainpp::MixedPrecision precision;
  CHECK(std::string(precision.name()) == "fp32");  // before configure: full precision
  precision.configure(flags(true, false), torch::kCPU);
  CHECK(std::string(precision.name()) == "bf16");
  CHECK(std::holds_alternative<trainpp::BF16>(precision.policy()));
  precision.configure(flags(false, true), torch::kCPU);
  CHECK(std::string(precision.name()) == "fp16");
  precision.configure(flags(false, false), torch::kCPU);
  CHECK(std::string(precision.name()) == "fp32");
  CHECK(std::holds_alternative<trainpp::FP32>(precision.policy()));
  CHECK_THROWS_WITH_AS(precision.configure(flags(true, true), torch::kCPU),
                       doctest::Contains("At most one of fp16 and bf16 can be True"), trainpp::Error);
  // The chosen policy's own checks run too.
  CHECK_THROWS_WITH_AS(precision.configure(flags(true, false), torch::Device(torch::kMeta)),
                       doctest::Contains("bf16 mixed precision needs a CPU or CUDA device"), trainpp::Error);
  CHECK_NOTHROW(precision.configure(flags(false, false), torch::Device(torch::kMeta)));

  // The loss-scaling settings given to the constructor reach the FP16 policy.
  trainpp::MixedPrecision with_options(trainpp::GradScalerOptions{.init_scale = 8.0});
  with_options.configure(flags(false, true), torch::kCPU);
  CHECK(std::get<trainpp::FP16>(with_options.policy()).scaler.get_scale() == 8.0);
}

TEST_CASE("mixed precision: the forward runs under autocast of the chosen dtype, or none under fp32") {
  trainpp::MixedPrecision precision;
  precision.configure(flags(false, false), torch::kCPU);
  CHECK_FALSE(precision.forward_context(torch::kCPU).has_value());
  CHECK_FALSE(precision.eval_context(torch::kCPU).has_value());
  CHECK(forward_dtype(precision) == dt(torch::kFloat32));
  precision.configure(flags(true, false), torch::kCPU);
  CHECK(forward_dtype(precision) == dt(torch::kBFloat16));
  {
    const auto context = precision.eval_context(torch::kCPU);
    CHECK(context.has_value());
    CHECK(dt(at::autocast::get_autocast_dtype(c10::DeviceType::CPU)) == dt(torch::kBFloat16));
  }
  precision.configure(flags(false, true), torch::kCPU);
  CHECK(forward_dtype(precision) == dt(torch::kHalf));
  CHECK_FALSE(at::autocast::is_autocast_enabled(c10::DeviceType::CPU));
}

TEST_CASE("mixed precision: backward and step scale only under fp16, where an overflow skips the step") {
  const auto x = torch::tensor({{1.0f, 2.0f}, {3.0f, 4.0f}});
  for (const auto* name : {"fp32", "bf16", "fp16"}) {
    CAPTURE(name);
    trainpp::MixedPrecision precision(trainpp::GradScalerOptions{.init_scale = 1024.0});
    precision.configure(flags(std::string(name) == "bf16", std::string(name) == "fp16"), torch::kCPU);
    auto linear = tiny_linear();
    auto optimizer = sgd_over(linear, 0.5);
    torch::Tensor loss;
    {
      const auto context = precision.forward_context(torch::kCPU);
      loss = linear->forward(x).sum();
    }
    precision.backward(loss);
    const float scale = std::string(name) == "fp16" ? 1024.0f : 1.0f;
    CHECK(torch::equal(linear->weight.grad(), torch::tensor({{4.0f, 6.0f}}) * scale));
    precision.unscale_(optimizer);
    CHECK(torch::equal(linear->weight.grad(), torch::tensor({{4.0f, 6.0f}})));
    CHECK(precision.step(optimizer));
    CHECK(torch::equal(linear->weight, torch::tensor({{-1.0f, -1.0f}})));  // float32 master weights
    CHECK(dt(linear->weight.scalar_type()) == dt(torch::kFloat32));
  }

  // Under fp16 an infinite gradient skips the step: the weights stay.
  trainpp::MixedPrecision precision;
  precision.configure(flags(false, true), torch::kCPU);
  auto linear = tiny_linear();
  auto optimizer = sgd_over(linear, 0.5);
  precision.backward(linear->forward(x).sum() * std::numeric_limits<float>::infinity());
  CHECK_FALSE(precision.step(optimizer));
  CHECK(torch::equal(linear->weight, torch::tensor({{1.0f, 2.0f}})));
}

TEST_CASE("mixed precision: only fp16 takes part in the overflow agreement") {
  const auto x = torch::tensor({{1.0f, 2.0f}});
  // Another process overflowed: the agreement raises the flag, and this process skips its step too.
  const auto run = [&](bool fp16, int& calls) {
    trainpp::MixedPrecision precision(trainpp::GradScalerOptions{.init_scale = 16.0});
    precision.configure(flags(false, fp16), torch::kCPU);
    auto linear = tiny_linear();
    auto optimizer = sgd_over(linear, 0.5);
    precision.backward(linear->forward(x).sum());
    precision.unscale_(optimizer);
    precision.share_found_inf([&](torch::Tensor& found) {
      ++calls;
      CHECK(found.item<float>() == 0.0f);  // nothing overflowed here
      found.fill_(1.0f);
    });
    return precision.step(optimizer);
  };
  int calls = 0;
  CHECK_FALSE(run(true, calls));
  CHECK(calls == 1);
  calls = 0;
  CHECK(run(false, calls));
  CHECK(calls == 0);
}

TEST_CASE("mixed precision: only fp16 has a loss-scaler state to checkpoint") {
  trainpp::MixedPrecision precision;
  precision.configure(flags(true, false), torch::kCPU);
  CHECK(precision.state().is_null());
  precision.load_state({{"scale", 4.0}});  // not used (a warning), and no state appears
  CHECK(precision.state().is_null());

  trainpp::MixedPrecision fp16;
  fp16.configure(flags(false, true), torch::kCPU);
  CHECK(fp16.state().at("scale").get<double>() == 65536.0);
  fp16.load_state({{"scale", 4.0}, {"growth_factor", 2.0}, {"backoff_factor", 0.5}, {"growth_interval", 10},
                   {"_growth_tracker", 3}});
  CHECK(fp16.state().at("scale").get<double>() == 4.0);
  CHECK(std::get<trainpp::FP16>(fp16.policy()).scaler.growth_tracker() == 3);
}

}  // namespace mixed_test
