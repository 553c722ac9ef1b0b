// FP16, the float16 mixed-precision slot: its refusals, and a tiny Linear on the CPU through it: float16
// outputs, scaled then unscaled float32 gradients, overflowing steps skipped with the scale backed off,
// and the scaler's state round trip.

#include <trainpp/precision/fp16.hpp>
#include <trainpp/optim/sgd.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace fp16_test {

std::string dt(c10::ScalarType t) { return c10::toString(t); }

// y = x . [1, 2] + 0.5: every value below is exact in float16.
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

// One forward and backward of sum(linear(x)) through `fp16`.
void forward_backward(trainpp::FP16& fp16, torch::nn::Linear& linear) {
  const auto x = torch::tensor({{1.0f, 2.0f}, {3.0f, 4.0f}});
  torch::Tensor loss;
  {
    const auto context = fp16.forward_context(torch::kCPU);
    const auto out = linear->forward(x);
    CHECK(dt(out.scalar_type()) == dt(torch::kHalf));
    loss = out.sum();
  }
  fp16.backward(loss);
}

TEST_CASE("fp16: configure refuses --bf16 and a device autocast cannot run float16 on") {
  const trainpp::FP16 fp16;
  trainpp::TrainingArguments args;
  CHECK_NOTHROW(fp16.configure(args, torch::kCPU));
  args.bf16 = true;
  CHECK_THROWS_WITH_AS(fp16.configure(args, torch::kCPU),
                       doctest::Contains("the precision slot is trainpp::FP16 but --bf16 was given"), trainpp::Error);
  args.bf16 = false;
  CHECK_THROWS_WITH_AS(fp16.configure(args, torch::Device(torch::kMeta)),
                       doctest::Contains("fp16 mixed precision needs a CPU or CUDA device; this run's device is meta"),
                       trainpp::Error);
}

TEST_CASE("fp16: the loss is scaled for backward and the gradients unscaled before the float32 step") {
  static_assert(trainpp::FP16::can_skip_steps);
  trainpp::FP16 fp16(trainpp::GradScalerOptions{.init_scale = 1024.0, .growth_interval = 1});
  auto linear = tiny_linear();
  auto optimizer = sgd_over(linear, 0.5);
  forward_backward(fp16, linear);
  CHECK(dt(linear->weight.grad().scalar_type()) == dt(torch::kFloat32));
  CHECK(torch::equal(linear->weight.grad(), torch::tensor({{4.0f, 6.0f}}) * 1024));
  CHECK(linear->bias.grad().item<float>() == 2.0f * 1024);

  CHECK(fp16.step(optimizer));  // unscales first: the update uses the true gradient
  CHECK(torch::equal(linear->weight, torch::tensor({{-1.0f, -1.0f}})));
  CHECK(linear->bias.item<float>() == -0.5f);
  CHECK(dt(linear->weight.scalar_type()) == dt(torch::kFloat32));
  CHECK(fp16.scaler.get_scale() == 2048.0);  // a clean step after growth_interval = 1: the scale grows
}

TEST_CASE("fp16: explicit unscale_ before the step (for clipping) does not divide twice") {
  trainpp::FP16 fp16(trainpp::GradScalerOptions{.init_scale = 256.0});
  auto linear = tiny_linear();
  auto optimizer = sgd_over(linear, 0.5);
  forward_backward(fp16, linear);
  fp16.unscale_(optimizer);
  CHECK(torch::equal(linear->weight.grad(), torch::tensor({{4.0f, 6.0f}})));
  CHECK(fp16.step(optimizer));
  CHECK(torch::equal(linear->weight, torch::tensor({{-1.0f, -1.0f}})));
  CHECK(fp16.scaler.get_scale() == 256.0);  // growth_interval 2000: unchanged after one step
  CHECK(fp16.scaler.growth_tracker() == 1);
}

TEST_CASE("fp16: a step whose gradients overflow is skipped and the scale backed off") {
  // The default scale 2^16 times the loss's gradient 1 is inf in float16: the backward overflows.
  trainpp::FP16 fp16;
  auto linear = tiny_linear();
  auto optimizer = sgd_over(linear, 0.5);
  forward_backward(fp16, linear);
  CHECK_FALSE(fp16.step(optimizer));
  CHECK(torch::equal(linear->weight, torch::tensor({{1.0f, 2.0f}})));
  CHECK(linear->bias.item<float>() == 0.5f);
  CHECK(fp16.scaler.get_scale() == 32768.0);

  // The weight's gradient, 6 times the scale, still overflows float16 (max 65504) at 2^15 and 2^14:
  // the scale keeps halving until it fits, and only then does the step run.
  std::vector<double> scales;
  bool ran = false;
  while (!ran && scales.size() < 10) {
    optimizer.zero_grad();
    forward_backward(fp16, linear);
    ran = fp16.step(optimizer);
    scales.push_back(fp16.scaler.get_scale());
  }
  CHECK(scales == std::vector<double>{16384.0, 8192.0, 8192.0});
  CHECK(torch::equal(linear->weight, torch::tensor({{-1.0f, -1.0f}})));
}

TEST_CASE("fp16: the loss scaler's state goes to checkpoints and comes back") {
  trainpp::FP16 fp16(trainpp::GradScalerOptions{.init_scale = 512.0, .growth_interval = 7});
  auto linear = tiny_linear();
  auto optimizer = sgd_over(linear, 0.5);
  forward_backward(fp16, linear);
  CHECK(fp16.step(optimizer));
  const auto state = fp16.state();
  CHECK(state.at("scale").get<double>() == 512.0);
  CHECK(state.at("_growth_tracker").get<std::int64_t>() == 1);
  CHECK(state.at("growth_interval").get<std::int64_t>() == 7);

  trainpp::FP16 resumed;
  resumed.load_state(state);
  CHECK(resumed.scaler.get_scale() == 512.0);
  CHECK(resumed.scaler.growth_tracker() == 1);
  CHECK(resumed.scaler.options().growth_interval == 7);
  CHECK_THROWS_WITH_AS(resumed.load_state(nlohmann::json::array()),
                       doctest::Contains("scaler state must be a JSON object"), trainpp::Error);
}

}  // namespace fp16_test
