#pragma once
// OptimizerPolicy: parameter groups and the update rule (HF's create_optimizer).

#include <trainpp/args.hpp>
#include <trainpp/detail/declares.hpp>
#include <trainpp/optim/param_groups.hpp>

#include <concepts>
#include <type_traits>
#include <utility>
#include <vector>

namespace trainpp {

/// An optimizer the loop can drive.
///
/// Required: `step()` (once per optimizer step, unless the precision slot skips it); `zero_grad()`
/// (after each step); `param_groups()` -> a range of groups with `lr` and `initial_lr` (the scheduler
/// writes lr); `parameters()` -> std::vector<torch::Tensor> (clipping).
/// Optional (a member declared under one of these names must be callable as shown, or the Trainer
/// does not compile):
/// - `OptimizerState state() const`: per-parameter state, saved in each checkpoint (with the groups'
///   learning rates); default: a warning, and the checkpoint cannot resume exactly;
/// - `void load_state(const OptimizerState&)`: called on resume; default: resuming is an error.
/// Models: trainpp::Optimizer, trainpp::AdamW, trainpp::SGD.
template <class O>
concept OptimizerLike = requires(O& o) {
  o.step();
  o.zero_grad();
  { o.parameters() } -> std::convertible_to<std::vector<torch::Tensor>>;
  o.param_groups().begin()->lr;
  o.param_groups().begin()->initial_lr;
};

/// The optimizer slot.
///
/// Required: `create(torch::nn::Module& model, const TrainingArguments& args) const` returning an
/// OptimizerLike.
/// Models: trainpp::HFOptimizer (the default: `optim`, no decay on biases and norms).
template <class P>
concept OptimizerPolicy = requires(const P& p, torch::nn::Module& m, const TrainingArguments& a) {
  { p.create(m, a) } -> OptimizerLike;
};

namespace detail {
/// The optional members of the optimizer O that the optimizer slot creates: each one O declares
/// must be callable as the loop calls it.
template <class O>
constexpr bool check_optimizer_optional() {
  constexpr bool state = !declares_state<O> ||
      requires(const O& o) { { o.state() } -> std::convertible_to<OptimizerState>; };
  constexpr bool load_state = !declares_load_state<O> || requires(O& o, const OptimizerState& st) { o.load_state(st); };
  static_assert(state, "trainpp: the optimizer slot's optimizer declares 'state' but it cannot be called as "
                       "OptimizerState state() const");
  static_assert(load_state, "trainpp: the optimizer slot's optimizer declares 'load_state' but it cannot be called as "
                            "void load_state(const OptimizerState&)");
  return state && load_state;
}

template <class P>
constexpr bool check_optimizer() {
  constexpr bool create = requires(const P& p, torch::nn::Module& m, const TrainingArguments& a) { p.create(m, a); };
  static_assert(create, "trainpp: the optimizer slot needs a member "
                        "create(torch::nn::Module& model, const TrainingArguments& args) const");
  if constexpr (create) {
    static_assert(OptimizerPolicy<P>, "trainpp: the optimizer slot's create() must return an optimizer with "
                                      "step(), zero_grad(), parameters() and param_groups() (groups with lr, initial_lr)");
    if constexpr (!OptimizerPolicy<P>) return false;
    else return check_optimizer_optional<std::remove_cvref_t<decltype(std::declval<const P&>().create(
        std::declval<torch::nn::Module&>(), std::declval<const TrainingArguments&>()))>>();
  }
  return false;
}
}  // namespace detail

}  // namespace trainpp
