#pragma once
// AdamW with torch.optim.AdamW's semantics: decoupled weight decay, bias correction, amsgrad off.

#include <trainpp/detail/config.hpp>
#include <trainpp/optim/param_groups.hpp>

#include <cmath>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace trainpp {

/// The AdamW hyper-parameters shared by all groups (per-group: lr and weight_decay, in ParamGroup).
struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  /// true: at::_fused_adamw_, one kernel per (device, dtype) bucket (HF's adamw_torch_fused);
  /// false: the foreach formulation of torch's _multi_tensor_adam (HF's adamw_torch on GPU).
  bool fused = true;
};

/// torch.optim.AdamW over explicit parameter groups.
///
/// Guarantees: the same arithmetic as torch (fused: the same kernel; foreach: the same sequence of
/// _foreach ops with the same scalars), so results match torch on the same device. A parameter whose
/// grad is undefined is skipped: no update, its step count does not advance. step() never waits for the
/// device: the fused path keeps step counters on the device; the foreach path keeps them in host memory,
/// as torch does, and reads them there.
class AdamW {
 public:
  /// Throws trainpp::Error for an invalid lr, weight_decay, beta, eps, a non-floating-point parameter,
  /// or a parameter listed twice.
  AdamW(std::vector<ParamGroup> groups, AdamWOptions options = {});

  /// One update of every parameter that has a gradient.
  void step() { step(std::nullopt, std::nullopt); }
  /// The fused path hands `grad_scale` (gradients are divided by it) and `found_inf` (non-zero: skip the
  /// update and do not count the step) to the kernel, as torch.amp.GradScaler does for fused optimizers.
  /// The foreach path expects the caller to have unscaled already and throws if either is given.
  void step(const std::optional<torch::Tensor>& grad_scale, const std::optional<torch::Tensor>& found_inf);

  /// torch's Optimizer.zero_grad.
  void zero_grad(bool set_to_none = true) { detail::zero_grads(groups_, set_to_none); }

  [[nodiscard]] std::vector<ParamGroup>& param_groups() { return groups_; }
  [[nodiscard]] const std::vector<ParamGroup>& param_groups() const { return groups_; }
  /// All parameters of all groups, in group order (the order of state()).
  [[nodiscard]] std::vector<torch::Tensor> parameters() const { return detail::all_params(groups_); }
  [[nodiscard]] const AdamWOptions& options() const { return options_; }

  /// Per parameter, in parameters() order: {"exp_avg", "exp_avg_sq", "step"} (step a 0-dim float32
  /// tensor), or an empty map before its first update. The tensors are the live state, not copies.
  [[nodiscard]] OptimizerState state() const;
  /// Restores what state() returned (maybe from another device or the other implementation): tensors
  /// are copied to each parameter's device and dtype. Throws trainpp::Error on a count, key or shape
  /// mismatch.
  void load_state(const OptimizerState& state);

 private:
  struct Slot {
    torch::Tensor exp_avg, exp_avg_sq, step;  // undefined until the first update
  };
  void sync_slots();
  [[nodiscard]] torch::Tensor new_step_counter(const torch::Tensor& param, float value) const;

  std::vector<ParamGroup> groups_;
  AdamWOptions options_;
  std::vector<std::vector<Slot>> slots_;  // [group][param]
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions options)
    : groups_(std::move(groups)), options_(options) {
  if (!(options_.eps >= 0)) throw error("AdamW: invalid eps {}", options_.eps);
  if (!(options_.beta1 >= 0 && options_.beta1 < 1)) throw error("AdamW: invalid beta1 {} (need 0 <= beta1 < 1)", options_.beta1);
  if (!(options_.beta2 >= 0 && options_.beta2 < 1)) throw error("AdamW: invalid beta2 {} (need 0 <= beta2 < 1)", options_.beta2);
  detail::validate_groups(groups_, "AdamW");
  sync_slots();
}

// Groups are exposed mutably (the scheduler writes lr); a caller that appends parameters gets fresh
// state for them.
TRAINPP_INLINE void AdamW::sync_slots() {
  slots_.resize(groups_.size());
  for (std::size_t g = 0; g < groups_.size(); ++g) slots_[g].resize(groups_[g].params.size());
}

// torch keeps `step` next to the parameter for the fused kernel (it reads it on the device) and in host
// memory otherwise, where reading it costs no device synchronisation.
TRAINPP_INLINE torch::Tensor AdamW::new_step_counter(const torch::Tensor& param, float value) const {
  const auto device = options_.fused ? param.device() : torch::Device(torch::kCPU);
  return torch::full({}, value, torch::TensorOptions().dtype(torch::kFloat32).device(device));
}

TRAINPP_INLINE void AdamW::step(const std::optional<torch::Tensor>& grad_scale, const std::optional<torch::Tensor>& found_inf) {
  if (!options_.fused && (grad_scale || found_inf))
    throw error("AdamW: grad_scale/found_inf are only supported by the fused implementation "
                "(optim adamw_torch_fused); unscale the gradients before calling step()");
  torch::NoGradGuard no_grad;
  sync_slots();
  const double beta1 = options_.beta1, beta2 = options_.beta2, eps = options_.eps;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const auto& group = groups_[g];
    std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs, steps;
    for (std::size_t i = 0; i < group.params.size(); ++i) {
      const auto& p = group.params[i];
      const auto& grad = p.grad();
      if (!grad.defined()) continue;
      if (grad.is_sparse()) throw error("AdamW does not support sparse gradients");
      auto& slot = slots_[g][i];
      if (!slot.step.defined()) {
        slot.exp_avg = torch::zeros_like(p, torch::MemoryFormat::Preserve);
        slot.exp_avg_sq = torch::zeros_like(p, torch::MemoryFormat::Preserve);
        slot.step = new_step_counter(p, 0.0f);
      }
      params.push_back(p);
      grads.push_back(grad);
      exp_avgs.push_back(slot.exp_avg);
      exp_avg_sqs.push_back(slot.exp_avg_sq);
      steps.push_back(slot.step);
    }
    const double lr = group.lr, weight_decay = group.weight_decay;
    for (const auto& bucket : detail::bucket_by_device_dtype(params)) {
      const auto& ix = bucket.indices;
      auto b_params = detail::pick(params, ix), b_grads = detail::pick(grads, ix);
      auto b_exp_avgs = detail::pick(exp_avgs, ix), b_exp_avg_sqs = detail::pick(exp_avg_sqs, ix);
      auto b_steps = detail::pick(steps, ix);
      if (options_.fused) {
        std::optional<torch::Tensor> scale, inf;
        if (grad_scale) scale = grad_scale->to(bucket.device, /*non_blocking=*/true);
        if (found_inf) inf = found_inf->to(bucket.device, /*non_blocking=*/true);
        at::_foreach_add_(b_steps, 1);
        at::_fused_adamw_(b_params, b_grads, b_exp_avgs, b_exp_avg_sqs, /*max_exp_avg_sqs=*/{}, b_steps, lr, beta1,
                          beta2, weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false, scale, inf);
        // A skipped update must not count: take found_inf (0 or 1) back off the counters.
        if (inf) at::_foreach_sub_(b_steps, std::vector<torch::Tensor>(b_steps.size(), *inf));
        continue;
      }
      // The foreach formulation of torch's _multi_tensor_adam, op for op.
      at::_foreach_add_(b_steps, 1);
      if (weight_decay != 0) at::_foreach_mul_(b_params, 1 - lr * weight_decay);
      at::_foreach_lerp_(b_exp_avgs, b_grads, 1 - beta1);
      at::_foreach_mul_(b_exp_avg_sqs, beta2);
      at::_foreach_addcmul_(b_exp_avg_sqs, b_grads, b_grads, 1 - beta2);
      std::vector<at::Scalar> step_size, bias_correction2_sqrt;
      step_size.reserve(ix.size());
      bias_correction2_sqrt.reserve(ix.size());
      for (const auto& s : b_steps) {
        // Host memory (see new_step_counter): no device synchronisation here.
        const double t = static_cast<double>(*s.const_data_ptr<float>());
        const double bias_correction1 = 1 - std::pow(beta1, t);
        const double bias_correction2 = 1 - std::pow(beta2, t);
        step_size.emplace_back((lr / bias_correction1) * -1);
        bias_correction2_sqrt.emplace_back(std::pow(bias_correction2, 0.5));
      }
      auto denom = at::_foreach_sqrt(b_exp_avg_sqs);
      at::_foreach_div_(denom, bias_correction2_sqrt);
      at::_foreach_add_(denom, eps);
      at::_foreach_addcdiv_(b_params, b_exp_avgs, denom, step_size);
    }
  }
}

TRAINPP_INLINE OptimizerState AdamW::state() const {
  OptimizerState out;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    for (std::size_t i = 0; i < groups_[g].params.size(); ++i) {
      auto& entry = out.emplace_back();
      if (g >= slots_.size() || i >= slots_[g].size() || !slots_[g][i].step.defined()) continue;
      const auto& slot = slots_[g][i];
      entry = {{"exp_avg", slot.exp_avg}, {"exp_avg_sq", slot.exp_avg_sq}, {"step", slot.step}};
    }
  }
  return out;
}

TRAINPP_INLINE void AdamW::load_state(const OptimizerState& state) {
  sync_slots();
  std::size_t count = 0;
  for (const auto& group : groups_) count += group.params.size();
  if (state.size() != count)
    throw error("AdamW: the saved state has {} parameters, the optimizer has {}", state.size(), count);
  torch::NoGradGuard no_grad;
  std::vector<std::vector<Slot>> loaded(groups_.size());
  std::size_t index = 0;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    for (const auto& p : groups_[g].params) {
      const auto& entry = state[index];
      auto& slot = loaded[g].emplace_back();
      if (!entry.empty()) {
        for (const auto& [key, value] : entry)
          if (key != "exp_avg" && key != "exp_avg_sq" && key != "step")
            throw error("AdamW: unexpected state entry '{}' for parameter #{}", key, index);
        for (const char* key : {"exp_avg", "exp_avg_sq", "step"})
          if (!entry.contains(key)) throw error("AdamW: state of parameter #{} lacks '{}'", index, key);
        slot.exp_avg = detail::load_like(entry.at("exp_avg"), p, "AdamW", "exp_avg", index);
        slot.exp_avg_sq = detail::load_like(entry.at("exp_avg_sq"), p, "AdamW", "exp_avg_sq", index);
        const auto& step = entry.at("step");
        if (!step.defined() || step.numel() != 1) throw error("AdamW: 'step' of parameter #{} must hold one value", index);
        // Loading happens once, off the step path: reading the saved counter here is fine.
        slot.step = new_step_counter(p, step.to(torch::kCPU).to(torch::kFloat32).reshape({}).item<float>());
      }
      ++index;
    }
  }
  slots_ = std::move(loaded);
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
