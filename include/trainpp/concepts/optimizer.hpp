#pragma once
// OptimizerPolicy: parameter groups and the update rule (HF's create_optimizer).

#include <trainpp/args.hpp>

#include <concepts>
#include <vector>

namespace trainpp {

/// An optimizer the loop can drive.
///
/// Required: `step()`; `zero_grad()`; `param_groups()` -> a range of groups with `lr` and
/// `initial_lr` (the scheduler writes lr); `parameters()` -> std::vector<torch::Tensor> (clipping).
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
template <class P>
constexpr bool check_optimizer() {
  constexpr bool create = requires(const P& p, torch::nn::Module& m, const TrainingArguments& a) { p.create(m, a); };
  static_assert(create, "trainpp: the optimizer slot needs a member "
                        "create(torch::nn::Module& model, const TrainingArguments& args) const");
  if constexpr (create) {
    static_assert(OptimizerPolicy<P>, "trainpp: the optimizer slot's create() must return an optimizer with "
                                      "step(), zero_grad(), parameters() and param_groups() (groups with lr, initial_lr)");
    return OptimizerPolicy<P>;
  }
  return false;
}
}  // namespace detail

}  // namespace trainpp
