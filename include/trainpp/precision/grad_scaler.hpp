#pragma once
// Dynamic loss scaling with torch.amp.GradScaler's semantics, on the same ATen kernels.

#include <trainpp/detail/config.hpp>
#include <trainpp/optim/adamw.hpp>
#include <trainpp/optim/optimizer.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace trainpp {

/// torch.amp.GradScaler's constructor arguments and defaults.
struct GradScalerOptions {
  double init_scale = 65536.0;  ///< 2^16
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  std::int64_t growth_interval = 2000;
};

/// A float16 loss is multiplied by `scale` before backward so that small gradients do not flush to
/// zero; gradients are divided by it again (unscale_) before clipping and the step. A step whose
/// gradients hold an inf or NaN is skipped and the scale multiplied by backoff_factor; after
/// growth_interval clean steps in a row it is multiplied by growth_factor. The scale and the count of
/// clean steps live on the device and are updated by torch's own kernels
/// (_amp_foreach_non_finite_check_and_unscale_, _amp_update_scale_), so the sequence of scales is
/// torch's. Use per optimizer step: scale(loss) for each micro-batch, then unscale_ (optional, before
/// clipping), step, update.
class GradScaler {
 public:
  explicit GradScaler(GradScalerOptions options = {});

  /// `loss` times the current scale (created on the loss's device on first use, as torch does lazily).
  [[nodiscard]] torch::Tensor scale(const torch::Tensor& loss) {
    ensure_state(loss.device());
    return loss * scale_.to(loss.device(), /*non_blocking=*/true);
  }

  /// Divides every gradient of `parameters` by the scale in place and records whether any is inf or
  /// NaN, per device, without reading it back. Once per step: a second call before update() throws
  /// (torch's rule), since it would divide twice.
  void unscale_(const std::vector<torch::Tensor>& parameters);

  /// Between unscale_ and step: hands this step's overflow flag (the per-device flags summed, a
  /// float32 scalar on the scale's device; zero when this process has no gradient) to `agree`, which
  /// may change it in place; step() and update() then decide from it. Sharded gradients need this:
  /// each process checked only its shard, and an overflow in any shard must skip the step and back
  /// off the scale on every process (torch's ShardedGradScaler all-reduces found_inf the same way).
  /// No host sync: the flag stays on the device.
  template <class Agree>
  void share_found_inf(Agree&& agree) {
    if (stage_ != Stage::unscaled) throw error("GradScaler: share_found_inf() needs unscale_() first, once per step");
    torch::Tensor found = combined_found_inf();
    // Every process must take part in the agreement, gradients or not.
    if (!found.defined()) found = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(scale_.device()));
    std::forward<Agree>(agree)(found);
    found_inf_.clear();
    // Back to torch's 0 or 1: a fused optimizer skips on exactly 1 and takes the flag off its step counts.
    found_inf_[found.device().str()] = found.gt(0).to(torch::kFloat32);
  }

  /// Steps `optimizer` unless unscale_ found an inf or NaN (calling unscale_ first if it was not).
  /// A fused AdamW receives found_inf and skips inside its kernel; any other optimizer is stepped
  /// only after reading found_inf on the host (torch does the same). Returns whether the step ran,
  /// which costs one read of found_inf on the host per optimizer step.
  template <class Opt>
  bool step(Opt& optimizer) {
    if (stage_ == Stage::stepped) throw error("GradScaler: step() has already been called since the last update()");
    if (stage_ == Stage::ready) unscale_(optimizer.parameters());
    const auto found = combined_found_inf();
    bool handed_to_kernel = false;
    if constexpr (std::is_same_v<std::remove_cvref_t<Opt>, Optimizer>) {
      handed_to_kernel = optimizer.visit([&](auto& concrete) { return step_fused(concrete, found); });
    } else {
      handed_to_kernel = step_fused(optimizer, found);
    }
    const bool skipped = found.defined() && found.item<float>() != 0.0f;
    if (!handed_to_kernel && !skipped) optimizer.step();
    stage_ = Stage::stepped;
    return !skipped;
  }

  /// Updates the scale from this step's found_inf (torch's _amp_update_scale_) and readies the next step.
  void update();

  /// The current scale (reads the device; for logging and tests), or init_scale before first use.
  [[nodiscard]] double get_scale() const { return scale_.defined() ? scale_.item<double>() : options_.init_scale; }
  /// Clean steps since the scale last changed.
  [[nodiscard]] std::int64_t growth_tracker() const {
    return growth_tracker_.defined() ? growth_tracker_.item<std::int64_t>() : 0;
  }
  [[nodiscard]] const GradScalerOptions& options() const { return options_; }

  /// torch's state_dict keys: scale, growth_factor, backoff_factor, growth_interval, _growth_tracker.
  [[nodiscard]] nlohmann::json state() const;
  /// Restores state(); the factors and interval come back too (as torch's load_state_dict does).
  void load_state(const nlohmann::json& state);

 private:
  enum class Stage { ready, unscaled, stepped };

  void ensure_state(torch::Device device);

  /// The sum of the per-device found_inf flags on the scale's device (undefined without gradients).
  [[nodiscard]] torch::Tensor combined_found_inf() const;

  /// The fused AdamW takes found_inf into its kernel: the update is skipped on the device. The
  /// gradients are already unscaled, so no grad_scale is passed (torch does the same after unscale_).
  template <class O>
  static bool step_fused(O& optimizer, const torch::Tensor& found) {
    if constexpr (std::is_same_v<std::remove_cvref_t<O>, AdamW>) {
      if (!optimizer.options().fused || !found.defined()) return false;
      optimizer.step(std::nullopt, found);
      return true;
    } else {
      return false;
    }
  }

  GradScalerOptions options_;
  torch::Tensor scale_;           // float32 scalar on the device of the loss
  torch::Tensor growth_tracker_;  // int32 scalar
  std::map<std::string, torch::Tensor> found_inf_;  // per gradient device: 0 or more
  Stage stage_ = Stage::ready;
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE GradScaler::GradScaler(GradScalerOptions options) : options_(options) {
  if (!(options_.init_scale > 0) || !std::isfinite(options_.init_scale))
    throw error("GradScaler: init_scale must be a positive finite number, got {}", options_.init_scale);
  if (!(options_.growth_factor > 1)) throw error("GradScaler: growth_factor must be > 1, got {}", options_.growth_factor);
  if (!(options_.backoff_factor > 0 && options_.backoff_factor < 1))
    throw error("GradScaler: backoff_factor must be in (0, 1), got {}", options_.backoff_factor);
  if (options_.growth_interval <= 0)
    throw error("GradScaler: growth_interval must be positive, got {}", options_.growth_interval);
}

TRAINPP_INLINE void GradScaler::unscale_(const std::vector<torch::Tensor>& parameters) {
  if (stage_ == Stage::unscaled) throw error("GradScaler: unscale_() has already been called since the last update()");
  if (stage_ == Stage::stepped) throw error("GradScaler: unscale_() is being called after step()");
  if (!scale_.defined()) throw error("GradScaler: unscale_() before any loss was scaled");
  torch::NoGradGuard no_grad;
  // torch: the reciprocal in double, then float32, so the quotient is as exact as it can be.
  const auto inv_scale = scale_.to(torch::kFloat64).reciprocal().to(torch::kFloat32);
  std::map<std::pair<std::string, c10::ScalarType>, std::vector<torch::Tensor>> by_device_dtype;
  for (const auto& p : parameters) {
    const auto& grad = p.grad();
    if (!grad.defined()) continue;
    if (grad.scalar_type() == torch::kHalf)
      throw error("GradScaler: attempting to unscale float16 gradients; keep the master weights in float32 "
                  "(autocast does, casting only inside the forward)");
    by_device_dtype[{grad.device().str(), grad.scalar_type()}].push_back(grad.is_sparse() ? grad.coalesce()._values() : grad);
  }
  found_inf_.clear();
  for (auto& [key, grads] : by_device_dtype) {
    const auto device = grads.front().device();
    auto& found = found_inf_[device.str()];
    if (!found.defined()) found = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(device));
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found, inv_scale.to(device, /*non_blocking=*/true));
  }
  stage_ = Stage::unscaled;
}

TRAINPP_INLINE void GradScaler::update() {
  if (!scale_.defined()) return;
  const auto found = combined_found_inf();
  if (found.defined())
    at::_amp_update_scale_(scale_, growth_tracker_, found.to(scale_.device(), /*non_blocking=*/true),
                           options_.growth_factor, options_.backoff_factor, options_.growth_interval);
  found_inf_.clear();
  stage_ = Stage::ready;
}

TRAINPP_INLINE nlohmann::json GradScaler::state() const {
  return {{"scale", get_scale()},
          {"growth_factor", options_.growth_factor},
          {"backoff_factor", options_.backoff_factor},
          {"growth_interval", options_.growth_interval},
          {"_growth_tracker", growth_tracker()}};
}

TRAINPP_INLINE void GradScaler::load_state(const nlohmann::json& state) {
  if (!state.is_object()) throw error("scaler state must be a JSON object, got {}", state.type_name());
  auto number = [&](const char* key) {
    if (!state.contains(key) || !state.at(key).is_number())
      throw error("scaler state: \"{}\" must be a number", key);
    return state.at(key).get<double>();
  };
  auto integer = [&](const char* key) {
    if (!state.contains(key) || !state.at(key).is_number_integer() || state.at(key).get<std::int64_t>() < 0)
      throw error("scaler state: \"{}\" must be a non-negative integer", key);
    return state.at(key).get<std::int64_t>();
  };
  GradScalerOptions options{number("scale"), number("growth_factor"), number("backoff_factor"), integer("growth_interval")};
  const auto tracker = integer("_growth_tracker");
  const GradScaler validated(options);  // the same checks as the constructor, with the saved scale
  (void)validated;
  if (tracker > std::numeric_limits<std::int32_t>::max()) throw error("scaler state: \"_growth_tracker\" is too large");
  const auto device = scale_.defined() ? scale_.device() : torch::Device(torch::kCPU);
  options_.growth_factor = options.growth_factor;
  options_.backoff_factor = options.backoff_factor;
  options_.growth_interval = options.growth_interval;
  scale_ = torch::full({}, options.init_scale, torch::TensorOptions().dtype(torch::kFloat32).device(device));
  growth_tracker_ = torch::full({}, tracker, torch::TensorOptions().dtype(torch::kInt32).device(device));
  found_inf_.clear();
  stage_ = Stage::ready;
}

TRAINPP_INLINE void GradScaler::ensure_state(torch::Device device) {
  if (scale_.defined()) {
    if (scale_.device() != device) {  // a scale restored on the CPU before the first scaled loss
      scale_ = scale_.to(device);
      growth_tracker_ = growth_tracker_.to(device);
    }
    return;
  }
  scale_ = torch::full({}, options_.init_scale, torch::TensorOptions().dtype(torch::kFloat32).device(device));
  growth_tracker_ = torch::zeros({}, torch::TensorOptions().dtype(torch::kInt32).device(device));
}

TRAINPP_INLINE torch::Tensor GradScaler::combined_found_inf() const {
  torch::Tensor total;
  for (const auto& [device, found] : found_inf_) {
    auto f = found.to(scale_.device(), /*non_blocking=*/true);
    total = total.defined() ? total + f : f;
  }
  return total;
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
