#pragma once
// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"): the sign of an
// interpolation of momentum and gradient, with decoupled weight decay. HF's `--optim lion_32bit`
// (bitsandbytes' Lion, betas from adam_beta1/adam_beta2); the same update as the lion-pytorch package.

#include <trainpp/detail/config.hpp>
#include <trainpp/optim/param_groups.hpp>
#include <trainpp/optim/slot_state.hpp>

#include <cstddef>
#include <utility>
#include <vector>

namespace trainpp {

/// The Lion hyper-parameters shared by all groups (per-group: lr and weight_decay, in ParamGroup).
/// Defaults: the paper's and lion-pytorch's (HF's Trainer passes adam_beta1 and adam_beta2 instead).
struct LionOptions {
  double beta1 = 0.9;   ///< interpolation of momentum and gradient for the update's sign
  double beta2 = 0.99;  ///< momentum decay
};

/// Lion over explicit parameter groups, as foreach ops per (device, dtype). Per parameter with a
/// gradient: p *= 1 - lr * weight_decay; p -= lr * sign(beta1 * m + (1 - beta1) * g);
/// m = beta2 * m + (1 - beta2) * g. State: the momentum m ("exp_avg").
class Lion {
 public:
  /// Throws trainpp::Error for a beta outside [0, 1), and for the groups' own problems.
  Lion(std::vector<ParamGroup> groups, LionOptions options = {});

  void step();
  void zero_grad(bool set_to_none = true) { detail::zero_grads(groups_, set_to_none); }

  [[nodiscard]] std::vector<ParamGroup>& param_groups() { return groups_; }
  [[nodiscard]] const std::vector<ParamGroup>& param_groups() const { return groups_; }
  [[nodiscard]] std::vector<torch::Tensor> parameters() const { return detail::all_params(groups_); }
  [[nodiscard]] const LionOptions& options() const { return options_; }

  /// Per parameter, in parameters() order: {"exp_avg"} once updated, else empty.
  [[nodiscard]] OptimizerState state() const;
  void load_state(const OptimizerState& state);

 private:
  struct Slot {
    torch::Tensor exp_avg;
  };
  [[nodiscard]] static std::vector<detail::StateField<Slot>> fields() {
    return {{"exp_avg", &Slot::exp_avg, detail::StateShape::like_param}};
  }

  std::vector<ParamGroup> groups_;
  LionOptions options_;
  std::vector<std::vector<Slot>> slots_;  // [group][param]
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE OptimizerState Lion::state() const { return detail::slots_to_state(groups_, slots_, fields()); }

TRAINPP_INLINE void Lion::load_state(const OptimizerState& state) {
  slots_ = detail::slots_from_state(groups_, state, fields(), "Lion");
}

TRAINPP_INLINE Lion::Lion(std::vector<ParamGroup> groups, LionOptions options) : groups_(std::move(groups)), options_(options) {
  if (!(options_.beta1 >= 0 && options_.beta1 < 1)) throw error("Lion: invalid beta1 {} (need 0 <= beta1 < 1)", options_.beta1);
  if (!(options_.beta2 >= 0 && options_.beta2 < 1)) throw error("Lion: invalid beta2 {} (need 0 <= beta2 < 1)", options_.beta2);
  detail::validate_groups(groups_, "Lion");
  detail::fit_slots(slots_, groups_);
}

TRAINPP_INLINE void Lion::step() {
  torch::NoGradGuard no_grad;
  detail::fit_slots(slots_, groups_);
  const double beta1 = options_.beta1, beta2 = options_.beta2;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const auto& group = groups_[g];
    auto picked = detail::with_gradients(group, "Lion");
    std::vector<torch::Tensor> exp_avgs;
    for (std::size_t j = 0; j < picked.params.size(); ++j) {
      auto& slot = slots_[g][picked.slot[j]];
      if (!slot.exp_avg.defined()) slot.exp_avg = torch::zeros_like(picked.params[j], torch::MemoryFormat::Preserve);
      exp_avgs.push_back(slot.exp_avg);
    }
    for (const auto& bucket : detail::bucket_by_device_dtype(picked.params)) {
      const auto& ix = bucket.indices;
      auto b_params = detail::pick(picked.params, ix), b_grads = detail::pick(picked.grads, ix);
      auto b_exp_avgs = detail::pick(exp_avgs, ix);
      if (group.weight_decay != 0) at::_foreach_mul_(b_params, 1 - group.lr * group.weight_decay);
      auto update = at::_foreach_mul(b_exp_avgs, beta1);
      at::_foreach_add_(update, b_grads, 1 - beta1);
      at::_foreach_sign_(update);
      at::_foreach_add_(b_params, update, -group.lr);
      at::_foreach_mul_(b_exp_avgs, beta2);
      at::_foreach_add_(b_exp_avgs, b_grads, 1 - beta2);
    }
  }
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
