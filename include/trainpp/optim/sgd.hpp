#pragma once
// SGD with torch.optim.SGD's semantics: L2 weight decay added to the gradient, optional (Nesterov)
// momentum with dampening.

#include <trainpp/detail/config.hpp>
#include <trainpp/optim/param_groups.hpp>

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace trainpp {

/// The SGD hyper-parameters shared by all groups (per-group: lr and weight_decay, in ParamGroup).
struct SGDOptions {
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
};

/// torch.optim.SGD over explicit parameter groups, in the foreach formulation of torch's
/// _multi_tensor_sgd (same ops, same scalars). A parameter whose grad is undefined is skipped; its
/// momentum buffer starts as a copy of its first gradient, as in torch.
class SGD {
 public:
  /// Throws trainpp::Error for an invalid lr, momentum or weight_decay, Nesterov without
  /// momentum or with dampening, a non-floating-point parameter, or a parameter listed twice.
  SGD(std::vector<ParamGroup> groups, SGDOptions options = {});

  void step();
  void zero_grad(bool set_to_none = true) { detail::zero_grads(groups_, set_to_none); }

  [[nodiscard]] std::vector<ParamGroup>& param_groups() { return groups_; }
  [[nodiscard]] const std::vector<ParamGroup>& param_groups() const { return groups_; }
  [[nodiscard]] std::vector<torch::Tensor> parameters() const { return detail::all_params(groups_); }
  [[nodiscard]] const SGDOptions& options() const { return options_; }

  /// Per parameter, in parameters() order: {"momentum_buffer"} once it exists, else an empty map.
  [[nodiscard]] OptimizerState state() const;
  /// Restores what state() returned; tensors go to each parameter's device and dtype.
  void load_state(const OptimizerState& state);

 private:
  void sync_buffers();

  std::vector<ParamGroup> groups_;
  SGDOptions options_;
  std::vector<std::vector<torch::Tensor>> momentum_buffers_;  // [group][param]; undefined until created
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE SGD::SGD(std::vector<ParamGroup> groups, SGDOptions options) : groups_(std::move(groups)), options_(options) {
  if (!(options_.momentum >= 0)) throw error("SGD: invalid momentum {}", options_.momentum);
  if (options_.nesterov && (options_.momentum <= 0 || options_.dampening != 0))
    throw error("SGD: Nesterov momentum requires a momentum and zero dampening (momentum {}, dampening {})",
                options_.momentum, options_.dampening);
  detail::validate_groups(groups_, "SGD");
  sync_buffers();
}

TRAINPP_INLINE void SGD::sync_buffers() {
  momentum_buffers_.resize(groups_.size());
  for (std::size_t g = 0; g < groups_.size(); ++g) momentum_buffers_[g].resize(groups_[g].params.size());
}

TRAINPP_INLINE void SGD::step() {
  torch::NoGradGuard no_grad;
  sync_buffers();
  const double momentum = options_.momentum, dampening = options_.dampening;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    const auto& group = groups_[g];
    std::vector<torch::Tensor> params, grads;
    std::vector<std::size_t> slot;  // index of each picked parameter in its group
    for (std::size_t i = 0; i < group.params.size(); ++i) {
      const auto& grad = group.params[i].grad();
      if (!grad.defined()) continue;
      if (grad.is_sparse()) throw error("SGD: sparse gradients are not supported");
      params.push_back(group.params[i]);
      grads.push_back(grad);
      slot.push_back(i);
    }
    for (const auto& bucket : detail::bucket_by_device_dtype(params)) {
      const auto& ix = bucket.indices;
      auto b_params = detail::pick(params, ix);
      auto b_grads = detail::pick(grads, ix);
      // L2 decay makes a new gradient list; the stored .grad stays as the backward pass left it.
      if (group.weight_decay != 0) b_grads = at::_foreach_add(b_grads, b_params, group.weight_decay);
      if (momentum != 0) {
        std::vector<torch::Tensor> bufs;
        bufs.reserve(ix.size());
        bool all_exist = true;
        for (auto k : ix) all_exist = all_exist && momentum_buffers_[g][slot[k]].defined();
        if (all_exist) {
          for (auto k : ix) bufs.push_back(momentum_buffers_[g][slot[k]]);
          at::_foreach_mul_(bufs, momentum);
          at::_foreach_add_(bufs, b_grads, 1 - dampening);
        } else {
          // torch falls back to per-tensor ops here: new buffers are a plain copy of the gradient.
          for (std::size_t j = 0; j < ix.size(); ++j) {
            auto& buf = momentum_buffers_[g][slot[ix[j]]];
            if (!buf.defined()) buf = b_grads[j].detach().clone();
            else buf.mul_(momentum).add_(b_grads[j], 1 - dampening);
            bufs.push_back(buf);
          }
        }
        if (options_.nesterov) {
          // In place only on the private copy that weight decay made: the stored .grad stays untouched
          // (torch adds into .grad itself here; the update is the same either way).
          if (group.weight_decay == 0) b_grads = at::_foreach_add(b_grads, bufs, momentum);
          else at::_foreach_add_(b_grads, bufs, momentum);
        } else {
          b_grads = bufs;
        }
      }
      at::_foreach_add_(b_params, b_grads, -group.lr);
    }
  }
}

TRAINPP_INLINE OptimizerState SGD::state() const {
  OptimizerState out;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    for (std::size_t i = 0; i < groups_[g].params.size(); ++i) {
      auto& entry = out.emplace_back();
      if (g < momentum_buffers_.size() && i < momentum_buffers_[g].size() && momentum_buffers_[g][i].defined())
        entry["momentum_buffer"] = momentum_buffers_[g][i];
    }
  }
  return out;
}

TRAINPP_INLINE void SGD::load_state(const OptimizerState& state) {
  sync_buffers();
  std::size_t count = 0;
  for (const auto& group : groups_) count += group.params.size();
  if (state.size() != count)
    throw error("SGD: the saved state has {} parameters, the optimizer has {}", state.size(), count);
  torch::NoGradGuard no_grad;
  std::vector<std::vector<torch::Tensor>> loaded(groups_.size());
  std::size_t index = 0;
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    for (const auto& p : groups_[g].params) {
      const auto& entry = state[index];
      auto& buf = loaded[g].emplace_back();
      for (const auto& [key, value] : entry) {
        if (key != "momentum_buffer") throw error("SGD: unexpected state entry '{}' for parameter #{}", key, index);
        buf = detail::load_like(value, p, "SGD", key, index);
      }
      ++index;
    }
  }
  momentum_buffers_ = std::move(loaded);
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
