#pragma once
// PrecisionPolicy: the numeric format of forward and backward (HF's --bf16 / --fp16 / native AMP).

#include <trainpp/detail/config.hpp>

#include <concepts>

namespace trainpp {

/// The precision slot. It owns everything between the loss and the optimizer that depends on the
/// number format: the forward context (autocast), the backward (loss scaling), unscaling before
/// clipping, and the step that a loss scaler may skip.
///
/// Required:
/// - `forward_context(torch::Device)` -> an RAII object alive around the forward and the loss;
/// - `eval_context(torch::Device)` -> the same for evaluation;
/// - `backward(const torch::Tensor& loss)`;
/// - `unscale_(Optimizer&)`: gradients in true units before clipping (a no-op without scaling);
/// - `step(Optimizer&)` -> bool: false when the step was skipped (overflow); the scheduler then
///   does not advance. `static constexpr bool can_skip_steps`: false lets the loop drop the check.
/// Optional:
/// - `configure(const TrainingArguments&, torch::Device)`: called once by the Trainer's constructor
///   (to check the flags against the policy, or to choose from them);
/// - `nlohmann::json state() const` / `load_state(const nlohmann::json&)`: saved in checkpoints as
///   scaler.json (a null state is not saved).
/// Models: trainpp::MixedPrecision (the default: fp32, or bf16 / fp16 as --bf16 / --fp16 say),
/// trainpp::FP32, trainpp::BF16, trainpp::FP16.
template <class P, class Opt>
concept PrecisionPolicy = requires(P& p, const torch::Tensor& loss, Opt& opt, torch::Device d) {
  p.forward_context(d);
  p.eval_context(d);
  p.backward(loss);
  p.unscale_(opt);
  { p.step(opt) } -> std::convertible_to<bool>;
  { P::can_skip_steps } -> std::convertible_to<bool>;
};

namespace detail {
template <class P, class Opt>
constexpr bool check_precision() {
  constexpr bool ctx = requires(P& p, torch::Device d) { p.forward_context(d); p.eval_context(d); };
  constexpr bool bwd = requires(P& p, const torch::Tensor& loss) { p.backward(loss); };
  constexpr bool opt = requires(P& p, Opt& o) { p.unscale_(o); { p.step(o) } -> std::convertible_to<bool>; };
  constexpr bool skip = requires { { P::can_skip_steps } -> std::convertible_to<bool>; };
  static_assert(ctx, "trainpp: the precision slot needs members forward_context(torch::Device) and "
                     "eval_context(torch::Device) returning guards");
  static_assert(bwd, "trainpp: the precision slot needs a member backward(const torch::Tensor& loss)");
  static_assert(opt, "trainpp: the precision slot needs members unscale_(Optimizer&) and "
                     "bool step(Optimizer&)");
  static_assert(skip, "trainpp: the precision slot needs a member static constexpr bool can_skip_steps");
  return ctx && bwd && opt && skip;
}
}  // namespace detail

}  // namespace trainpp
