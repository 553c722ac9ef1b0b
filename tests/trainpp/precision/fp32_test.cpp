// FP32, the full-precision slot: its refusal of --bf16/--fp16, and a tiny Linear's forward, backward and
// step through it (float32 throughout, every step taken).

#include <trainpp/precision/fp32.hpp>
#include <trainpp/optim/sgd.hpp>

#include <doctest/doctest.h>

#include <string>
#include <type_traits>
#include <vector>

namespace fp32_test {

std::string dt(c10::ScalarType t) { return c10::toString(t); }

// y = x . [1, 2] + 0.5: every value below is exact in float32.
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

TEST_CASE("fp32: configure refuses --bf16 and --fp16, naming the flag and the slot that fits") {
  const trainpp::FP32 fp32;
  trainpp::TrainingArguments args;
  CHECK_NOTHROW(fp32.configure(args, torch::kCPU));
  args.bf16 = true;
  CHECK_THROWS_WITH_AS(fp32.configure(args, torch::kCPU),
                       doctest::Contains("the precision slot is trainpp::FP32 but --bf16 was given"), trainpp::Error);
  CHECK_THROWS_WITH_AS(fp32.configure(args, torch::kCPU), doctest::Contains("use trainpp::BF16"), trainpp::Error);
  args.bf16 = false;
  args.fp16 = true;
  CHECK_THROWS_WITH_AS(fp32.configure(args, torch::kCPU), doctest::Contains("--fp16 was given"), trainpp::Error);
  CHECK_THROWS_WITH_AS(fp32.configure(args, torch::kCPU), doctest::Contains("use trainpp::FP16"), trainpp::Error);
}

TEST_CASE("fp32: a Linear's forward, backward and step stay in float32 and every step runs") {
  static_assert(!trainpp::FP32::can_skip_steps);
  static_assert(std::is_same_v<decltype(trainpp::FP32{}.forward_context(torch::kCPU)), trainpp::FP32::NoContext>);
  trainpp::FP32 fp32;
  auto linear = tiny_linear();
  auto optimizer = sgd_over(linear, 0.5);
  const auto x = torch::tensor({{1.0f, 2.0f}, {3.0f, 4.0f}});
  torch::Tensor loss;
  {
    [[maybe_unused]] const auto context = fp32.forward_context(torch::kCPU);
    const auto out = linear->forward(x);
    CHECK(dt(out.scalar_type()) == dt(torch::kFloat32));
    CHECK(torch::equal(out, torch::tensor({{5.5f}, {11.5f}})));
    loss = out.sum();
  }
  fp32.backward(loss);
  // d(sum)/dW = column sums of x, unscaled.
  CHECK(torch::equal(linear->weight.grad(), torch::tensor({{4.0f, 6.0f}})));
  CHECK(linear->bias.grad().item<float>() == 2.0f);
  fp32.unscale_(optimizer);  // nothing to unscale: the gradients stay
  CHECK(torch::equal(linear->weight.grad(), torch::tensor({{4.0f, 6.0f}})));
  CHECK(fp32.step(optimizer));
  CHECK(torch::equal(linear->weight, torch::tensor({{-1.0f, -1.0f}})));
  CHECK(linear->bias.item<float>() == -0.5f);
  CHECK(dt(linear->weight.scalar_type()) == dt(torch::kFloat32));
}

}  // namespace fp32_test
