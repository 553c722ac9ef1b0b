#pragma once
// FP32: full precision, no loss scaling — the precision of a run without --bf16 or --fp16.

#include <trainpp/args.hpp>

namespace trainpp {

/// Full fp32 forward and backward. Everything is a no-op except backward and step, so it costs
/// nothing over a hand-written loop.
struct FP32 {
  struct NoContext {};
  static constexpr bool can_skip_steps = false;  ///< never skips: the loop needs no overflow check

  /// The Trainer calls this once: --bf16 or --fp16 contradicts this slot.
  void configure(const TrainingArguments& args, torch::Device) const;

  [[nodiscard]] NoContext forward_context(torch::Device) const { return {}; }
  [[nodiscard]] NoContext eval_context(torch::Device) const { return {}; }
  void backward(const torch::Tensor& loss) const { loss.backward(); }
  template <class Optimizer> void unscale_(Optimizer&) const {}
  template <class Optimizer> bool step(Optimizer& optimizer) const {
    optimizer.step();
    return true;
  }
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE void FP32::configure(const TrainingArguments& args, torch::Device) const {
  if (args.bf16 || args.fp16)
    throw error("the precision slot is trainpp::FP32 but --{} was given; drop the flag, or use trainpp::{} (or the "
                "default, trainpp::MixedPrecision, which follows the flags)", args.bf16 ? "bf16" : "fp16",
                args.bf16 ? "BF16" : "FP16");
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
