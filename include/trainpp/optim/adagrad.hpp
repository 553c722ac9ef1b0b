#pragma once
// Adagrad with torch.optim.Adagrad's semantics (HF's `--optim adagrad`): L2 weight decay added to the
// gradient, a learning rate decayed per step by lr_decay, squared gradients summed per element.

#include <trainpp/detail/config.hpp>
#include <trainpp/optim/param_groups.hpp>
#include <trainpp/optim/slot_state.hpp>

#include <cstddef>
#include <utility>
#include <vector>

namespace trainpp {

/// The Adagrad hyper-parameters shared by all groups (per-group: lr and weight_decay, in ParamGroup).
/// Defaults: torch's.
struct AdagradOptions {
  double lr_decay = 0.0;
  double initial_accumulator_value = 0.0;
  double eps = 1e-10;
};

/// torch.optim.Adagrad over explicit parameter groups, in the foreach formulation of torch's
/// _multi_tensor_adagrad (same ops, same scalars). A parameter whose grad is undefined is skipped and
/// its step does not advance. Step counters live in host memory, as torch keeps them: reading them
/// for the decayed rate costs no device synchronisation.
class Adagrad {
 public:
  /// Throws trainpp::Error for a negative lr_decay, initial_accumulator_value or eps, and for the
  /// groups' own problems (see detail::validate_groups).
  Adagrad(std::vector<ParamGroup> groups, AdagradOptions options = {});

  void step();
  void zero_grad(bool set_to_none = true) { detail::zero_grads(groups_, set_to_none); }

  [[nodiscard]] std::vector<ParamGroup>& param_groups() { return groups_; }
  [[nodiscard]] const std::vector<ParamGroup>& param_groups() const { return groups_; }
  [[nodiscard]] std::vector<torch::Tensor> parameters() const { return detail::all_params(groups_); }
  [[nodiscard]] const AdagradOptions& options() const { return options_; }

  /// Per parameter, in parameters() order: {"step", "sum"} once it has been updated, else empty.
  [[nodiscard]] OptimizerState state() const;
  /// Restores what state() returned; tensors go to each parameter's device and dtype.
  void load_state(const OptimizerState& state);

 private:
  struct Slot {
    torch::Tensor step, sum;
  };
  [[nodiscard]] static std::vector<detail::StateField<Slot>> fields();

  std::vector<ParamGroup> groups_;
  AdagradOptions options_;
  std::vector<std::vector<Slot>> slots_;  // [group][param]
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE OptimizerState Adagrad::state() const { return detail::slots_to_state(groups_, slots_, fields()); }

TRAINPP_INLINE void Adagrad::load_state(const OptimizerState& state) {
  slots_ = detail::slots_from_state(groups_, state, fields(), "Adagrad");
}

TRAINPP_INLINE std::vector<detail::StateField<Adagrad::Slot>> Adagrad::fields() {
  return {{"step", &Slot::step, detail::StateShape::host_scalar},
          {"sum", &Slot::sum, detail::StateShape::like_param}};
}

TRAINPP_INLINE Adagrad::Adagrad(std::vector<ParamGroup> groups, AdagradOptions options)
    : groups_(std::move(groups)), options_(options) {
  if (!(options_.lr_decay >= 0)) throw error("Adagrad: invalid lr_decay {}", options_.lr_decay);
  if (!(options_.initial_accumulator_value >= 0))
    throw error("Adagrad: invalid initial_accumulator_value {}", options_.initial_accumulator_value);
  if (!(options_.eps >= 0)) throw error("Adagrad: invalid eps {}", options_.eps);
  detail::validate_groups(groups_, "Adagrad");
  detail::fit_slots(slots_, groups_);
}

TRAINPP_INLINE void Adagrad::step() {
  torch::NoGradGuard no_grad;
  detail::fit_slots(slots_, groups_);
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const auto& group = groups_[g];
    auto picked = detail::with_gradients(group, "Adagrad");
    std::vector<torch::Tensor> steps, sums;
    for (std::size_t j = 0; j < picked.params.size(); ++j) {
      auto& slot = slots_[g][picked.slot[j]];
      if (!slot.step.defined()) {
        slot.step = torch::zeros({}, torch::kFloat32);
        slot.sum = torch::full_like(picked.params[j], options_.initial_accumulator_value,
                                    torch::MemoryFormat::Preserve);
      }
      steps.push_back(slot.step);
      sums.push_back(slot.sum);
    }
    for (const auto& bucket : detail::bucket_by_device_dtype(picked.params)) {
      const auto& ix = bucket.indices;
      auto b_params = detail::pick(picked.params, ix), b_grads = detail::pick(picked.grads, ix);
      auto b_sums = detail::pick(sums, ix), b_steps = detail::pick(steps, ix);
      at::_foreach_add_(b_steps, 1);
      // L2 decay makes a new gradient list; the stored .grad stays as the backward pass left it.
      const bool own_grads = group.weight_decay != 0;
      if (own_grads) b_grads = at::_foreach_add(b_grads, b_params, group.weight_decay);
      std::vector<at::Scalar> minus_clr;
      minus_clr.reserve(ix.size());
      for (const auto& s : b_steps) {
        const double t = static_cast<double>(*s.const_data_ptr<float>());  // host memory: no sync
        minus_clr.emplace_back(-group.lr / (1 + (t - 1) * options_.lr_decay));
      }
      at::_foreach_addcmul_(b_sums, b_grads, b_grads, 1);
      auto std_sum = at::_foreach_sqrt(b_sums);
      at::_foreach_add_(std_sum, options_.eps);
      std::vector<torch::Tensor> numerator;
      if (own_grads) {
        at::_foreach_mul_(b_grads, minus_clr);
        numerator = std::move(b_grads);
      } else {
        numerator = at::_foreach_mul(b_grads, minus_clr);
      }
      at::_foreach_addcdiv_(b_params, numerator, std_sum);
    }
  }
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
