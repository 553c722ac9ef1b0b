// BF16, the bfloat16 mixed-precision slot: its refusals (--fp16, a device autocast cannot serve), and a
// tiny Linear on the CPU through it: bfloat16 outputs, float32 gradients and master weights, no skips.

#include <trainpp/precision/bf16.hpp>
#include <trainpp/optim/sgd.hpp>

#include <doctest/doctest.h>

#include <string>

namespace bf16_test {

std::string dt(c10::ScalarType t) { return c10::toString(t); }

// y = x . [1, 2] + 0.5: every value below is exact in bfloat16.
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

TEST_CASE("bf16: configure refuses --fp16 and a device autocast cannot run bfloat16 on") {
  const trainpp::BF16 bf16;
  trainpp::TrainingArguments args;
  args.bf16 = true;
  CHECK_NOTHROW(bf16.configure(args, torch::kCPU));
  args.bf16 = false;
  CHECK_NOTHROW(bf16.configure(args, torch::kCPU));  // the slot itself is the choice
  args.fp16 = true;
  CHECK_THROWS_WITH_AS(bf16.configure(args, torch::kCPU),
                       doctest::Contains("the precision slot is trainpp::BF16 but --fp16 was given"), trainpp::Error);
  args.fp16 = false;
  CHECK_THROWS_WITH_AS(bf16.configure(args, torch::Device(torch::kMeta)),
                       doctest::Contains("bf16 mixed precision needs a CPU or CUDA device; this run's device is meta"),
                       trainpp::Error);
}

TEST_CASE("bf16: a Linear computes in bfloat16 while gradients and weights stay float32") {
  static_assert(!trainpp::BF16::can_skip_steps);
  trainpp::BF16 bf16;
  auto linear = tiny_linear();
  auto optimizer = sgd_over(linear, 0.5);
  const auto x = torch::tensor({{1.0f, 2.0f}, {3.0f, 4.0f}});
  torch::Tensor loss;
  {
    const auto context = bf16.forward_context(torch::kCPU);
    const auto out = linear->forward(x);
    CHECK(dt(out.scalar_type()) == dt(torch::kBFloat16));
    CHECK(torch::equal(out.to(torch::kFloat32), torch::tensor({{5.5f}, {11.5f}})));
    CHECK(dt(linear->weight.scalar_type()) == dt(torch::kFloat32));  // cast for the op, not in place
    loss = out.sum();
  }
  CHECK(dt(linear->forward(x).scalar_type()) == dt(torch::kFloat32));  // the guard has closed
  bf16.backward(loss);
  CHECK(dt(linear->weight.grad().scalar_type()) == dt(torch::kFloat32));
  CHECK(torch::equal(linear->weight.grad(), torch::tensor({{4.0f, 6.0f}})));  // no loss scaling
  bf16.unscale_(optimizer);
  CHECK(bf16.step(optimizer));
  CHECK(torch::equal(linear->weight, torch::tensor({{-1.0f, -1.0f}})));
  CHECK(linear->bias.item<float>() == -0.5f);
  CHECK(dt(linear->weight.scalar_type()) == dt(torch::kFloat32));
}

TEST_CASE("bf16: evaluation runs under the same bfloat16 autocast, and only while its context lives") {
  const trainpp::BF16 bf16;
  auto linear = tiny_linear();
  torch::NoGradGuard no_grad;
  const auto x = torch::tensor({{1.0f, 2.0f}});
  {
    const auto context = bf16.eval_context(torch::kCPU);
    CHECK(at::autocast::is_autocast_enabled(c10::DeviceType::CPU));
    CHECK(dt(linear->forward(x).scalar_type()) == dt(torch::kBFloat16));
  }
  CHECK_FALSE(at::autocast::is_autocast_enabled(c10::DeviceType::CPU));
}

}  // namespace bf16_test
