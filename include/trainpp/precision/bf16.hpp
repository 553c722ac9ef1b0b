#pragma once
// BF16: the precision slot for bfloat16 mixed precision (HF's --bf16) — autocast, no loss scaling.

#include <trainpp/args.hpp>
#include <trainpp/precision/autocast.hpp>

namespace trainpp {

/// Forward (and evaluation) under autocast to bfloat16; weights, gradients and optimizer state stay
/// float32. bfloat16 has float32's exponent range, so gradients need no scaling and no step is ever
/// skipped.
struct BF16 {
  static constexpr bool can_skip_steps = false;
  static constexpr c10::ScalarType dtype = c10::ScalarType::BFloat16;

  /// The Trainer calls this once: --fp16 contradicts this slot.
  void configure(const TrainingArguments& args, torch::Device device) const;
  [[nodiscard]] AutocastGuard forward_context(torch::Device device) const { return AutocastGuard(device.type(), dtype); }
  [[nodiscard]] AutocastGuard eval_context(torch::Device device) const { return AutocastGuard(device.type(), dtype); }
  void backward(const torch::Tensor& loss) const { loss.backward(); }
  template <class Optimizer> void unscale_(Optimizer&) const {}
  template <class Optimizer> bool step(Optimizer& optimizer) const {
    optimizer.step();
    return true;
  }
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE void BF16::configure(const TrainingArguments& args, torch::Device device) const {
  if (args.fp16) throw error("the precision slot is trainpp::BF16 but --fp16 was given; drop --fp16, or use "
                             "trainpp::FP16 (or the default, trainpp::MixedPrecision, which follows the flags)");
  if (!autocast_supports(device.type(), dtype))
    throw error("bf16 mixed precision needs a CPU or CUDA device; this run's device is {}", device.str());
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
