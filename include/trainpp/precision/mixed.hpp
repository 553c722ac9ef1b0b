#pragma once
// MixedPrecision: the default precision slot — fp32, bf16 or fp16 as the arguments say (--bf16, --fp16).

#include <trainpp/args.hpp>
#include <trainpp/logging.hpp>
#include <trainpp/precision/bf16.hpp>
#include <trainpp/precision/fp16.hpp>
#include <trainpp/precision/fp32.hpp>

#include <nlohmann/json.hpp>

#include <optional>
#include <utility>
#include <variant>

namespace trainpp {

/// Chooses FP32, BF16 or FP16 at run time from args.bf16 / args.fp16, so the same binary trains in
/// any of them from the command line. Each call dispatches over a std::variant (a switch, no virtual
/// call); a program that knows its precision at compile time names FP32, BF16 or FP16 in the slot
/// instead.
class MixedPrecision {
 public:
  /// The loop asks step() whether the update ran (fp16 may skip one).
  static constexpr bool can_skip_steps = true;

  MixedPrecision() = default;
  /// Loss-scaling settings for when --fp16 selects FP16.
  explicit MixedPrecision(GradScalerOptions fp16_options) : fp16_options_(fp16_options) {}

  void configure(const TrainingArguments& args, torch::Device device);

  /// An autocast guard under bf16 / fp16, nothing under fp32.
  [[nodiscard]] std::optional<AutocastGuard> forward_context(torch::Device device) const {
    if (const auto dtype = autocast_dtype()) return std::optional<AutocastGuard>(std::in_place, device.type(), *dtype);
    return std::nullopt;
  }
  [[nodiscard]] std::optional<AutocastGuard> eval_context(torch::Device device) const { return forward_context(device); }
  void backward(const torch::Tensor& loss) {
    std::visit([&](auto& p) { p.backward(loss); }, impl_);
  }
  template <class Optimizer> void unscale_(Optimizer& optimizer) {
    std::visit([&](auto& p) { p.unscale_(optimizer); }, impl_);
  }
  /// Under fp16 only: fp32 and bf16 have no overflow flag, and then nothing is communicated.
  template <class Agree> void share_found_inf(Agree&& agree) {
    if (auto* fp16 = std::get_if<FP16>(&impl_)) fp16->share_found_inf(std::forward<Agree>(agree));
  }
  template <class Optimizer> bool step(Optimizer& optimizer) {
    return std::visit([&](auto& p) { return p.step(optimizer); }, impl_);
  }

  /// The loss scaler's state under fp16; null otherwise (nothing to checkpoint).
  [[nodiscard]] nlohmann::json state() const {
    if (const auto* fp16 = std::get_if<FP16>(&impl_)) return fp16->state();
    return nullptr;
  }
  void load_state(const nlohmann::json& state) {
    if (auto* fp16 = std::get_if<FP16>(&impl_)) fp16->load_state(state);
    else warn("the checkpoint's loss-scaler state is not used: this run does not train in fp16");
  }

  /// What configure() chose: "fp32", "bf16" or "fp16".
  [[nodiscard]] const char* name() const {
    return std::holds_alternative<FP16>(impl_) ? "fp16" : std::holds_alternative<BF16>(impl_) ? "bf16" : "fp32";
  }
  /// The chosen policy, for tests and callbacks (e.g. the loss scale: std::get<FP16>(...).scaler).
  [[nodiscard]] const std::variant<FP32, BF16, FP16>& policy() const { return impl_; }

 private:
  template <class P>
  static void configure_one(P& p, const TrainingArguments& args, torch::Device device) {
    if constexpr (requires { p.configure(args, device); }) p.configure(args, device);
  }
  [[nodiscard]] std::optional<c10::ScalarType> autocast_dtype() const {
    if (std::holds_alternative<FP16>(impl_)) return FP16::dtype;
    if (std::holds_alternative<BF16>(impl_)) return BF16::dtype;
    return std::nullopt;
  }

  GradScalerOptions fp16_options_{};
  std::variant<FP32, BF16, FP16> impl_{};
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE void MixedPrecision::configure(const TrainingArguments& args, torch::Device device) {
  if (args.bf16 && args.fp16) throw error("At most one of fp16 and bf16 can be True, but not both");
  if (args.fp16) impl_.emplace<FP16>(fp16_options_);
  else if (args.bf16) impl_.emplace<BF16>();
  else impl_.emplace<FP32>();
  std::visit([&](auto& p) { configure_one(p, args, device); }, impl_);
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
