#pragma once
// RMSprop with torch.optim.RMSprop's semantics (HF's `--optim rmsprop`): L2 weight decay added to the
// gradient, a running mean of squared gradients, optional centering and momentum.

#include <trainpp/detail/config.hpp>
#include <trainpp/optim/param_groups.hpp>
#include <trainpp/optim/slot_state.hpp>

#include <cstddef>
#include <utility>
#include <vector>

namespace trainpp {

/// The RMSprop hyper-parameters shared by all groups (per-group: lr and weight_decay, in ParamGroup).
/// Defaults: torch's.
struct RMSpropOptions {
  double alpha = 0.99;  ///< smoothing of the squared-gradient average
  double eps = 1e-8;
  double momentum = 0.0;
  bool centered = false;  ///< divide by an estimate of the gradient's variance instead of its second moment
};

/// torch.optim.RMSprop over explicit parameter groups, in the foreach formulation of torch's
/// _multi_tensor_rmsprop (same ops, same scalars). A parameter whose grad is undefined is skipped.
class RMSprop {
 public:
  /// Throws trainpp::Error for alpha, eps or momentum out of range, and for the groups' own problems.
  RMSprop(std::vector<ParamGroup> groups, RMSpropOptions options = {});

  void step();
  void zero_grad(bool set_to_none = true) { detail::zero_grads(groups_, set_to_none); }

  [[nodiscard]] std::vector<ParamGroup>& param_groups() { return groups_; }
  [[nodiscard]] const std::vector<ParamGroup>& param_groups() const { return groups_; }
  [[nodiscard]] std::vector<torch::Tensor> parameters() const { return detail::all_params(groups_); }
  [[nodiscard]] const RMSpropOptions& options() const { return options_; }

  /// Per parameter, in parameters() order, once updated: {"step", "square_avg"}, with
  /// "momentum_buffer" when momentum > 0 and "grad_avg" when centered (torch's keys); else empty.
  [[nodiscard]] OptimizerState state() const;
  void load_state(const OptimizerState& state);

 private:
  struct Slot {
    torch::Tensor step, square_avg, momentum_buffer, grad_avg;
  };
  [[nodiscard]] std::vector<detail::StateField<Slot>> fields() const;

  std::vector<ParamGroup> groups_;
  RMSpropOptions options_;
  std::vector<std::vector<Slot>> slots_;  // [group][param]
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE OptimizerState RMSprop::state() const { return detail::slots_to_state(groups_, slots_, fields()); }

TRAINPP_INLINE void RMSprop::load_state(const OptimizerState& state) {
  slots_ = detail::slots_from_state(groups_, state, fields(), "RMSprop");
}

TRAINPP_INLINE std::vector<detail::StateField<RMSprop::Slot>> RMSprop::fields() const {
  return {{"step", &Slot::step, detail::StateShape::host_scalar},
          {"square_avg", &Slot::square_avg, detail::StateShape::like_param},
          {"momentum_buffer", &Slot::momentum_buffer, detail::StateShape::like_param, options_.momentum > 0},
          {"grad_avg", &Slot::grad_avg, detail::StateShape::like_param, options_.centered}};
}

TRAINPP_INLINE RMSprop::RMSprop(std::vector<ParamGroup> groups, RMSpropOptions options)
    : groups_(std::move(groups)), options_(options) {
  if (!(options_.alpha >= 0)) throw error("RMSprop: invalid alpha {}", options_.alpha);
  if (!(options_.eps >= 0)) throw error("RMSprop: invalid eps {}", options_.eps);
  if (!(options_.momentum >= 0)) throw error("RMSprop: invalid momentum {}", options_.momentum);
  detail::validate_groups(groups_, "RMSprop");
  detail::fit_slots(slots_, groups_);
}

TRAINPP_INLINE void RMSprop::step() {
  torch::NoGradGuard no_grad;
  detail::fit_slots(slots_, groups_);
  const double alpha = options_.alpha, momentum = options_.momentum;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const auto& group = groups_[g];
    auto picked = detail::with_gradients(group, "RMSprop");
    std::vector<torch::Tensor> steps, square_avgs, buffers, grad_avgs;
    for (std::size_t j = 0; j < picked.params.size(); ++j) {
      auto& slot = slots_[g][picked.slot[j]];
      const auto& p = picked.params[j];
      if (!slot.step.defined()) {
        slot.step = torch::zeros({}, torch::kFloat32);
        slot.square_avg = torch::zeros_like(p, torch::MemoryFormat::Preserve);
        if (momentum > 0) slot.momentum_buffer = torch::zeros_like(p, torch::MemoryFormat::Preserve);
        if (options_.centered) slot.grad_avg = torch::zeros_like(p, torch::MemoryFormat::Preserve);
      }
      steps.push_back(slot.step);
      square_avgs.push_back(slot.square_avg);
      buffers.push_back(slot.momentum_buffer);
      grad_avgs.push_back(slot.grad_avg);
    }
    for (const auto& bucket : detail::bucket_by_device_dtype(picked.params)) {
      const auto& ix = bucket.indices;
      auto b_params = detail::pick(picked.params, ix), b_grads = detail::pick(picked.grads, ix);
      auto b_square_avgs = detail::pick(square_avgs, ix);
      at::_foreach_add_(detail::pick(steps, ix), 1);
      if (group.weight_decay != 0) b_grads = at::_foreach_add(b_grads, b_params, group.weight_decay);
      at::_foreach_mul_(b_square_avgs, alpha);
      at::_foreach_addcmul_(b_square_avgs, b_grads, b_grads, 1 - alpha);
      std::vector<torch::Tensor> avg;
      if (options_.centered) {
        auto b_grad_avgs = detail::pick(grad_avgs, ix);
        at::_foreach_lerp_(b_grad_avgs, b_grads, 1 - alpha);
        avg = at::_foreach_addcmul(b_square_avgs, b_grad_avgs, b_grad_avgs, -1);
        at::_foreach_sqrt_(avg);
      } else {
        avg = at::_foreach_sqrt(b_square_avgs);
      }
      at::_foreach_add_(avg, options_.eps);
      if (momentum > 0) {
        auto b_buffers = detail::pick(buffers, ix);
        at::_foreach_mul_(b_buffers, momentum);
        at::_foreach_addcdiv_(b_buffers, b_grads, avg);
        at::_foreach_add_(b_params, b_buffers, -group.lr);
      } else {
        at::_foreach_addcdiv_(b_params, b_grads, avg, -group.lr);
      }
    }
  }
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
