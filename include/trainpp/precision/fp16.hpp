#pragma once
// FP16: the precision slot for float16 mixed precision with dynamic loss scaling (HF's --fp16).

#include <trainpp/args.hpp>
#include <trainpp/precision/autocast.hpp>
#include <trainpp/precision/grad_scaler.hpp>

#include <nlohmann/json.hpp>

#include <utility>

namespace trainpp {

/// Forward (and evaluation) under autocast to float16; weights, gradients and optimizer state stay
/// float32. float16's narrow range makes small gradients vanish, so the loss is scaled before backward
/// and the gradients unscaled before clipping (GradScaler, torch's semantics and defaults). A step
/// whose gradients overflowed is skipped, and the loop then does not advance the learning-rate
/// schedule (HF's rule). The scaler's state goes into checkpoints as scaler.json.
struct FP16 {
  static constexpr bool can_skip_steps = true;
  static constexpr c10::ScalarType dtype = c10::ScalarType::Half;

  GradScaler scaler{};

  FP16() = default;
  explicit FP16(GradScalerOptions options) : scaler(options) {}

  /// The Trainer calls this once: --bf16 contradicts this slot.
  void configure(const TrainingArguments& args, torch::Device device) const;
  [[nodiscard]] AutocastGuard forward_context(torch::Device device) const { return AutocastGuard(device.type(), dtype); }
  [[nodiscard]] AutocastGuard eval_context(torch::Device device) const { return AutocastGuard(device.type(), dtype); }
  void backward(const torch::Tensor& loss) { scaler.scale(loss).backward(); }
  template <class Optimizer> void unscale_(Optimizer& optimizer) { scaler.unscale_(optimizer.parameters()); }
  /// After unscale_: the overflow flag goes through `agree` (ZeRO: summed across processes).
  template <class Agree> void share_found_inf(Agree&& agree) { scaler.share_found_inf(std::forward<Agree>(agree)); }
  /// Steps unless the gradients overflowed, then updates the scale. Reads found_inf on the host once
  /// per optimizer step, to tell the loop whether the schedule advances.
  template <class Optimizer> bool step(Optimizer& optimizer) {
    const bool ran = scaler.step(optimizer);
    scaler.update();
    return ran;
  }
  [[nodiscard]] nlohmann::json state() const { return scaler.state(); }
  void load_state(const nlohmann::json& state) { scaler.load_state(state); }
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE void FP16::configure(const TrainingArguments& args, torch::Device device) const {
  if (args.bf16) throw error("the precision slot is trainpp::FP16 but --bf16 was given; drop --bf16, or use "
                             "trainpp::BF16 (or the default, trainpp::MixedPrecision, which follows the flags)");
  if (!autocast_supports(device.type(), dtype))
    throw error("fp16 mixed precision needs a CPU or CUDA device; this run's device is {}", device.str());
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
