#pragma once
// Adafactor (Shazeer & Stern 2018) with transformers' Adafactor semantics (HF's `--optim adafactor`):
// second moments factored into row and column statistics for matrices, update clipping by RMS,
// optional first moment, and the relative-step, parameter-scaled learning rate that needs no schedule.

#include <trainpp/detail/config.hpp>
#include <trainpp/optim/param_groups.hpp>
#include <trainpp/optim/slot_state.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <optional>
#include <utility>
#include <variant>
#include <vector>

namespace trainpp {

/// The Adafactor hyper-parameters shared by all groups (per-group: lr and weight_decay, in ParamGroup).
/// Defaults: transformers.Adafactor's. HF's Trainer (`--optim adafactor`) turns scale_parameter and
/// relative_step off and uses the schedule's learning rate; with relative_step on, the group's lr is
/// not used: the rate is min(1e-2, 1/sqrt(step)) (warmup_init: min(1e-6 * step, 1/sqrt(step))).
struct AdafactorOptions {
  double eps1 = 1e-30;  ///< added to the squared gradient
  double eps2 = 1e-3;   ///< lower bound of the parameter scale
  double clip_threshold = 1.0;
  double decay_rate = -0.8;       ///< beta2 of step t: 1 - t^decay_rate
  std::optional<double> beta1;    ///< the first moment's decay; none: no first moment
  bool scale_parameter = true;    ///< multiply the rate by max(eps2, RMS(parameter))
  bool relative_step = true;
  bool warmup_init = false;
};

/// transformers.Adafactor over explicit parameter groups, parameter by parameter as transformers steps
/// (the factored statistics differ in shape per parameter). float16/bfloat16 parameters and gradients are
/// computed in float32 and the state kept in float32, as transformers does. A parameter whose grad is
/// undefined is skipped. Nothing reads device memory: the parameter scale stays a device tensor.
class Adafactor {
 public:
  /// Throws trainpp::Error for warmup_init without relative_step, a beta1 outside [0, 1), a
  /// non-positive clip_threshold, a decay_rate that is not negative, and for the groups' problems.
  Adafactor(std::vector<ParamGroup> groups, AdafactorOptions options = {});

  void step();
  void zero_grad(bool set_to_none = true) { detail::zero_grads(groups_, set_to_none); }

  [[nodiscard]] std::vector<ParamGroup>& param_groups() { return groups_; }
  [[nodiscard]] const std::vector<ParamGroup>& param_groups() const { return groups_; }
  [[nodiscard]] std::vector<torch::Tensor> parameters() const { return detail::all_params(groups_); }
  [[nodiscard]] const AdafactorOptions& options() const { return options_; }

  /// Per parameter, in parameters() order, once updated (transformers' keys): "step", "RMS", "exp_avg"
  /// with beta1, and "exp_avg_sq_row" + "exp_avg_sq_col" for a parameter of 2 or more dimensions, else
  /// "exp_avg_sq".
  [[nodiscard]] OptimizerState state() const;
  void load_state(const OptimizerState& state);

 private:
  struct Slot {
    torch::Tensor step, rms, exp_avg, exp_avg_sq_row, exp_avg_sq_col, exp_avg_sq;
  };
  static bool factored(const torch::Tensor& param) { return param.dim() >= 2; }
  static bool not_factored(const torch::Tensor& param) { return param.dim() < 2; }
  [[nodiscard]] std::vector<detail::StateField<Slot>> fields() const;
  static torch::Tensor rms_of(const torch::Tensor& t) {
    return t.norm(2) / std::sqrt(static_cast<double>(t.numel()));
  }

  std::vector<ParamGroup> groups_;
  AdafactorOptions options_;
  std::vector<std::vector<Slot>> slots_;  // [group][param]
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE OptimizerState Adafactor::state() const { return detail::slots_to_state(groups_, slots_, fields()); }

TRAINPP_INLINE void Adafactor::load_state(const OptimizerState& state) {
  slots_ = detail::slots_from_state(groups_, state, fields(), "Adafactor");
}

TRAINPP_INLINE std::vector<detail::StateField<Adafactor::Slot>> Adafactor::fields() const {
  using detail::StateShape;
  return {{"step", &Slot::step, StateShape::host_scalar},
          {"RMS", &Slot::rms, StateShape::device_scalar},
          {"exp_avg", &Slot::exp_avg, StateShape::like_param, options_.beta1.has_value(), nullptr, true},
          {"exp_avg_sq_row", &Slot::exp_avg_sq_row, StateShape::without_last, true, &factored, true},
          {"exp_avg_sq_col", &Slot::exp_avg_sq_col, StateShape::without_second_last, true, &factored, true},
          {"exp_avg_sq", &Slot::exp_avg_sq, StateShape::like_param, true, &not_factored, true}};
}

TRAINPP_INLINE Adafactor::Adafactor(std::vector<ParamGroup> groups, AdafactorOptions options)
    : groups_(std::move(groups)), options_(options) {
  if (options_.warmup_init && !options_.relative_step)
    throw error("Adafactor: warmup_init needs relative_step (the warm-up is of the relative step size)");
  if (options_.beta1 && !(*options_.beta1 >= 0 && *options_.beta1 < 1))
    throw error("Adafactor: invalid beta1 {} (need 0 <= beta1 < 1)", *options_.beta1);
  if (!(options_.clip_threshold > 0)) throw error("Adafactor: invalid clip_threshold {}", options_.clip_threshold);
  if (!(options_.decay_rate < 0))
    throw error("Adafactor: invalid decay_rate {} (negative: beta2 of step t is 1 - t^decay_rate)", options_.decay_rate);
  if (!(options_.eps1 >= 0 && options_.eps2 >= 0))
    throw error("Adafactor: invalid eps ({}, {})", options_.eps1, options_.eps2);
  detail::validate_groups(groups_, "Adafactor");
  detail::fit_slots(slots_, groups_);
}

TRAINPP_INLINE void Adafactor::step() {
  torch::NoGradGuard no_grad;
  detail::fit_slots(slots_, groups_);
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const auto& group = groups_[g];
    auto picked = detail::with_gradients(group, "Adafactor");
    for (std::size_t j = 0; j < picked.params.size(); ++j) {
      const auto& p = picked.params[j];
      const bool half = p.scalar_type() == torch::kFloat16 || p.scalar_type() == torch::kBFloat16;
      const auto& raw_grad = picked.grads[j];
      const bool half_grad = raw_grad.scalar_type() == torch::kFloat16 || raw_grad.scalar_type() == torch::kBFloat16;
      const torch::Tensor grad = half_grad ? raw_grad.to(torch::kFloat32) : raw_grad;
      auto& slot = slots_[g][picked.slot[j]];
      const bool is_factored = grad.dim() >= 2;
      if (!slot.step.defined()) {
        slot.step = torch::zeros({}, torch::kFloat32);
        if (options_.beta1) slot.exp_avg = torch::zeros_like(grad);
        if (is_factored) {
          auto row = grad.sizes().vec(), col = grad.sizes().vec();
          row.pop_back();
          col.erase(col.end() - 2);
          slot.exp_avg_sq_row = torch::zeros(row, grad.options());
          slot.exp_avg_sq_col = torch::zeros(col, grad.options());
        } else {
          slot.exp_avg_sq = torch::zeros_like(grad);
        }
      }
      torch::Tensor p32 = half ? p.to(torch::kFloat32) : p;
      slot.step.add_(1);
      const double t = static_cast<double>(*slot.step.const_data_ptr<float>());  // host memory: no sync
      slot.rms = rms_of(p32).to(torch::kFloat32);
      double relative_rate = group.lr;
      if (options_.relative_step) {
        const double min_step = options_.warmup_init ? 1e-6 * t : 1e-2;
        relative_rate = std::min(min_step, 1.0 / std::sqrt(t));
      }
      // With scale_parameter the rate is a device tensor (the parameter's RMS): kept there, no sync.
      std::variant<double, torch::Tensor> lr = relative_rate;
      if (options_.scale_parameter) lr = slot.rms.clamp_min(options_.eps2).to(p32.scalar_type()) * relative_rate;

      const double beta2t = 1.0 - std::pow(t, options_.decay_rate);
      torch::Tensor update = grad.pow(2) + options_.eps1;
      if (is_factored) {
        slot.exp_avg_sq_row.mul_(beta2t).add_(update.mean(-1), 1.0 - beta2t);
        slot.exp_avg_sq_col.mul_(beta2t).add_(update.mean(-2), 1.0 - beta2t);
        auto row_factor =
            (slot.exp_avg_sq_row / slot.exp_avg_sq_row.mean(-1, /*keepdim=*/true)).rsqrt_().unsqueeze(-1);
        auto col_factor = slot.exp_avg_sq_col.unsqueeze(-2).rsqrt();
        update = torch::mul(row_factor, col_factor);
        update.mul_(grad);
      } else {
        slot.exp_avg_sq.mul_(beta2t).add_(update, 1.0 - beta2t);
        update = slot.exp_avg_sq.rsqrt().mul_(grad);
      }
      update.div_((rms_of(update) / options_.clip_threshold).clamp_(1.0));
      std::visit([&](const auto& rate) { update.mul_(rate); }, lr);
      if (options_.beta1) {
        slot.exp_avg.mul_(*options_.beta1).add_(update, 1 - *options_.beta1);
        update = slot.exp_avg;
      }
      if (group.weight_decay != 0) {
        if (const double* rate = std::get_if<double>(&lr)) p32.add_(p32, -group.weight_decay * *rate);
        else p32.add_(p32 * (std::get<torch::Tensor>(lr) * -group.weight_decay));
      }
      p32.sub_(update);
      if (half) p.copy_(p32);
    }
  }
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
