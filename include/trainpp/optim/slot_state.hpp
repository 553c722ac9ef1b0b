#pragma once
// Per-parameter optimizer state ("slots") to and from the checkpoint form (OptimizerState): one
// description of an optimizer's state entries drives both directions, so that what is saved and what
// is checked on load cannot drift apart.

#include <trainpp/detail/config.hpp>
#include <trainpp/optim/param_groups.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace trainpp::detail {

/// The shape a saved state entry must have, given its parameter.
enum class StateShape {
  like_param,     ///< the parameter's shape, device and dtype (moments, accumulators)
  host_scalar,    ///< a 0-dim float32 kept in host memory (step counters: read without a device sync)
  device_scalar,  ///< a 0-dim tensor on the parameter's device, float32 (a norm kept for the next step)
  without_last,   ///< the parameter's shape without its last dimension (Adafactor's row statistics)
  without_second_last,  ///< the parameter's shape without its second-to-last dimension (column statistics)
};

/// One state entry of an optimizer's Slot type: its checkpoint key, where it lives in the slot, its
/// shape rule, whether this optimizer's options use it at all, and, for an entry only some parameters
/// have (Adafactor's factored statistics of matrices), which ones. An entry not used must not appear.
template <class Slot>
struct StateField {
  std::string_view key;
  torch::Tensor Slot::*tensor;
  StateShape shape;
  bool used = true;
  bool (*applies_to)(const torch::Tensor& param) = nullptr;  ///< null: every parameter
  /// Kept in float32 for a float16/bfloat16 parameter (optimizers that compute in float32 for those).
  bool float32_for_half = false;

  [[nodiscard]] bool used_for(const torch::Tensor& param) const {
    return used && (applies_to == nullptr || applies_to(param));
  }
};

[[nodiscard]] std::vector<std::int64_t> expected_state_shape(StateShape shape, const torch::Tensor& param);

/// The dtype of a parameter's state: the parameter's, or float32 for a half-precision parameter when the
/// optimizer computes in float32.
[[nodiscard]] inline torch::ScalarType state_dtype(const torch::Tensor& param, bool float32_for_half) {
  const auto dtype = param.scalar_type();
  const bool half = dtype == torch::kFloat16 || dtype == torch::kBFloat16;
  return half && float32_for_half ? torch::kFloat32 : dtype;
}

/// The checkpoint form of `slots` ([group][param]): per parameter in group order, every used field of
/// a slot whose first field is defined (the first field marks an initialised slot), else an empty map.
template <class Slot>
[[nodiscard]] OptimizerState slots_to_state(const std::vector<ParamGroup>& groups,
                                            const std::vector<std::vector<Slot>>& slots,
                                            const std::vector<StateField<Slot>>& fields) {
  OptimizerState out;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (std::size_t i = 0; i < groups[g].params.size(); ++i) {
      auto& entry = out.emplace_back();
      if (g >= slots.size() || i >= slots[g].size() || !(slots[g][i].*fields.front().tensor).defined()) continue;
      for (const auto& field : fields)
        if (field.used_for(groups[g].params[i])) entry[std::string(field.key)] = slots[g][i].*field.tensor;
    }
  }
  return out;
}

/// Slots rebuilt from `state` (from a checkpoint, maybe another device): an empty entry leaves its slot
/// uninitialised; otherwise exactly the used fields must be there, each of the shape its rule gives,
/// and each is copied to its parameter's device and dtype (host scalars: CPU float32). Throws
/// trainpp::Error naming the optimizer (`who`), the parameter and the entry.
template <class Slot>
[[nodiscard]] std::vector<std::vector<Slot>> slots_from_state(const std::vector<ParamGroup>& groups,
                                                              const OptimizerState& state,
                                                              const std::vector<StateField<Slot>>& fields,
                                                              std::string_view who) {
  std::size_t count = 0;
  for (const auto& group : groups) count += group.params.size();
  if (state.size() != count)
    throw error("{}: the saved state has {} parameters, the optimizer has {}", who, state.size(), count);
  torch::NoGradGuard no_grad;
  std::vector<std::vector<Slot>> loaded(groups.size());
  std::size_t index = 0;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (const auto& param : groups[g].params) {
      const auto& entry = state[index];
      auto& slot = loaded[g].emplace_back();
      if (!entry.empty()) {
        for (const auto& [key, value] : entry) {
          bool known = false;
          for (const auto& field : fields) known = known || (field.used_for(param) && field.key == key);
          if (!known) throw error("{}: unexpected state entry '{}' for parameter #{}", who, key, index);
        }
        for (const auto& field : fields) {
          if (!field.used_for(param)) continue;
          const auto found = entry.find(std::string(field.key));
          if (found == entry.end()) throw error("{}: state of parameter #{} lacks '{}'", who, index, field.key);
          const torch::Tensor& saved = found->second;
          if (!saved.defined()) throw error("{}: state entry '{}' of parameter #{} is undefined", who, field.key, index);
          const auto expected = expected_state_shape(field.shape, param);
          if (saved.sizes().vec() != expected)
            throw error("{}: state entry '{}' of parameter #{} has shape {}, expected {}", who, field.key, index,
                        saved.sizes().vec(), expected);
          if (field.shape == StateShape::host_scalar)
            slot.*field.tensor = saved.detach().to(torch::kCPU, torch::kFloat32, false, /*copy=*/true);
          else if (field.shape == StateShape::device_scalar)
            slot.*field.tensor = saved.detach().to(param.device(), torch::kFloat32, false, /*copy=*/true);
          else
            slot.*field.tensor = saved.detach().to(param.device(), state_dtype(param, field.float32_for_half), false,
                                                   /*copy=*/true);
        }
      }
      ++index;
    }
  }
  return loaded;
}

/// The parameters of `group` that have a gradient, with their slot indices, for one step.
struct StepTensors {
  std::vector<torch::Tensor> params, grads;
  std::vector<std::size_t> slot;  ///< index of each picked parameter in its group
};

[[nodiscard]] StepTensors with_gradients(const ParamGroup& group, std::string_view who);

/// Resizes `slots` to the groups' current sizes: groups are exposed mutably (the scheduler writes lr),
/// and a caller that appends parameters gets fresh state for them.
template <class Slot>
void fit_slots(std::vector<std::vector<Slot>>& slots, const std::vector<ParamGroup>& groups) {
  slots.resize(groups.size());
  for (std::size_t g = 0; g < groups.size(); ++g) slots[g].resize(groups[g].params.size());
}

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE std::vector<std::int64_t> expected_state_shape(StateShape shape, const torch::Tensor& param) {
  auto sizes = param.sizes().vec();
  switch (shape) {
    case StateShape::like_param: return sizes;
    case StateShape::host_scalar:
    case StateShape::device_scalar: return {};
    case StateShape::without_last: sizes.pop_back(); return sizes;
    case StateShape::without_second_last: sizes.erase(sizes.end() - 2); return sizes;
  }
  return sizes;
}

TRAINPP_INLINE StepTensors with_gradients(const ParamGroup& group, std::string_view who) {
  StepTensors out;
  for (std::size_t i = 0; i < group.params.size(); ++i) {
    const auto& grad = group.params[i].grad();
    if (!grad.defined()) continue;
    if (grad.is_sparse()) throw error("{}: sparse gradients are not supported", who);
    out.params.push_back(group.params[i]);
    out.grads.push_back(grad);
    out.slot.push_back(i);
  }
  return out;
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp::detail
