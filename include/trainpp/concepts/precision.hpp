#pragma once
// PrecisionPolicy: the numeric format of forward and backward (HF's --bf16 / --fp16 / native AMP).

#include <trainpp/args.hpp>
#include <trainpp/detail/config.hpp>
#include <trainpp/detail/declares.hpp>

#include <nlohmann/json.hpp>

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
/// Optional (a member declared under one of these names must be callable as shown, or the Trainer
/// does not compile):
/// - `void configure(const TrainingArguments&, torch::Device)`: called once by the Trainer's
///   constructor (to check the flags against the policy, or to choose from them); default: nothing;
/// - `nlohmann::json state() const`: called when a checkpoint is saved; a non-null state is written
///   as scaler.json; default: nothing is written;
/// - `void load_state(const nlohmann::json&)`: called on resume with scaler.json when the checkpoint
///   has one (it needs state() as well: without the file, a non-null state() means a warning that
///   the scale restarts); default: the policy starts afresh;
/// - `template <class Agree> void share_found_inf(Agree&& agree)`: called right after unscale_ with
///   a callable that takes `torch::Tensor&`: the policy hands it this step's overflow flag (a float32
///   scalar, non-zero on overflow), which the sharding slot may change in place (its
///   agree_on_overflow), and then decides the step from what the flag holds; default: nothing (a
///   policy without loss scaling has no overflow to agree on).
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
/// The optional members of a precision policy P: each one P declares must be callable as the
/// Trainer calls it.
template <class P>
constexpr bool check_precision_optional() {
  constexpr bool configure = !declares_configure<P> ||
      requires(P& p, const TrainingArguments& a, torch::Device d) { p.configure(a, d); };
  constexpr bool state = !declares_state<P> ||
      requires(const P& p) { { p.state() } -> std::convertible_to<nlohmann::json>; };
  constexpr bool load_state = !declares_load_state<P> || requires(P& p, const nlohmann::json& j) { p.load_state(j); };
  constexpr bool share_found_inf = !declares_share_found_inf<P> ||
      requires(P& p, void (*agree)(torch::Tensor&)) { p.share_found_inf(agree); };
  static_assert(share_found_inf, "trainpp: the precision slot declares 'share_found_inf' but it cannot be called as "
                                 "template <class Agree> void share_found_inf(Agree&& agree) with a callable "
                                 "void(torch::Tensor& found_inf)");
  static_assert(configure, "trainpp: the precision slot declares 'configure' but it cannot be called as "
                           "void configure(const TrainingArguments&, torch::Device)");
  static_assert(state, "trainpp: the precision slot declares 'state' but it cannot be called as "
                       "nlohmann::json state() const");
  static_assert(load_state, "trainpp: the precision slot declares 'load_state' but it cannot be called as "
                            "void load_state(const nlohmann::json&)");
  constexpr bool both = !declares_load_state<P> || declares_state<P>;
  static_assert(both, "trainpp: the precision slot declares 'load_state' but not 'state': give it "
                      "nlohmann::json state() const as well");
  return share_found_inf && configure && state && load_state && both;
}

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
  if constexpr (!(ctx && bwd && opt && skip)) return false;
  else return check_precision_optional<P>();
}
}  // namespace detail

}  // namespace trainpp
