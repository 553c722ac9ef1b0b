#pragma once
// Optimizer parameter groups, and HF Trainer's split of a model's parameters into a weight-decay
// group and a no-decay group.

#include <trainpp/detail/config.hpp>

#include <algorithm>
#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#if TRAINPP_DEFINITIONS
#include <cctype>
#include <regex>
#endif

namespace trainpp {

/// One optimizer parameter group, like an entry of torch.optim.Optimizer.param_groups.
struct ParamGroup {
  std::vector<torch::Tensor> params;
  std::vector<std::string> names;  ///< parameter names, same order as `params` (may be empty)
  double lr = 0.0;                 ///< current learning rate; the scheduler writes it
  double initial_lr = 0.0;         ///< the base rate the scheduler multiplies
  double weight_decay = 0.0;
};

/// HF Trainer.create_optimizer's grouping of `model`'s trainable parameters.
///
/// Guarantees: exactly two groups, both with `lr = initial_lr = lr`; group 0 has `weight_decay`, group 1
/// has 0. Only parameters with requires_grad are listed, each once (a shared parameter under its first
/// name), in named_parameters() order. A parameter goes to group 1 when it lives inside a
/// torch::nn::LayerNorm (or a subclass) below the root, or when its full lower-cased name matches one of
/// `bias`, `layernorm`, `rmsnorm`, `(^|.)norm($|.)`, `_norm($|.)` (transformers'
/// get_decay_parameter_names). Other norm modules (RMSNorm, GroupNorm, ...) are recognised by name only,
/// exactly as HF does. An empty group is kept, as HF keeps it, so group indices stay stable for
/// checkpoints.
[[nodiscard]] std::vector<ParamGroup> decay_param_groups(const torch::nn::Module& model, double lr,
                                                         double weight_decay);

/// Per-parameter optimizer state as checkpoints see it: one map per parameter, in parameters() order
/// (all groups, in group order); an empty map for a parameter that has not been updated yet (torch's
/// optimizer.state has no entry for it either).
using OptimizerState = std::vector<std::map<std::string, torch::Tensor>>;

namespace detail {

/// True when HF's name patterns keep the parameter `full_name` out of weight decay.
[[nodiscard]] bool hf_no_decay_name(const std::string& full_name);

// Pre-order walk (own parameters, then children), the order of named_parameters(); the LayerNorm flag
// is inherited by everything below a LayerNorm, as HF's recursive search drops whole subtrees.
void split_for_decay(const torch::nn::Module& module, const std::string& prefix, bool under_layer_norm,
                     std::unordered_set<const void*>& seen, ParamGroup& decay, ParamGroup& no_decay);

/// Tensors bucketed by (device, dtype) in first-seen order, as torch's
/// _group_tensors_by_device_and_dtype does, so foreach/fused kernels get one launch per bucket.
struct Bucket {
  torch::Device device;
  torch::ScalarType dtype;
  std::vector<std::size_t> indices;  ///< positions in the bucketed sequence
};
[[nodiscard]] std::vector<Bucket> bucket_by_device_dtype(const std::vector<torch::Tensor>& tensors);

/// `values[i]` for every i in `indices`.
template <typename T>
[[nodiscard]] std::vector<T> pick(const std::vector<T>& values, const std::vector<std::size_t>& indices) {
  std::vector<T> out;
  out.reserve(indices.size());
  for (auto i : indices) out.push_back(values[i]);
  return out;
}

/// Checks an optimizer's groups the way torch.optim does on construction; `who` names the optimizer.
void validate_groups(const std::vector<ParamGroup>& groups, std::string_view who);

/// torch.optim.Optimizer.zero_grad: drop the gradients, or zero them in place (one foreach launch per
/// (device, dtype)) after cutting them from any autograd graph.
void zero_grads(const std::vector<ParamGroup>& groups, bool set_to_none);

/// Every parameter of every group, in group order.
[[nodiscard]] inline std::vector<torch::Tensor> all_params(const std::vector<ParamGroup>& groups) {
  std::vector<torch::Tensor> out;
  for (const auto& group : groups) out.insert(out.end(), group.params.begin(), group.params.end());
  return out;
}

/// Copies a saved state tensor onto the parameter's device and dtype, checking its shape, as
/// torch.optim.Optimizer.load_state_dict casts state to its parameter.
[[nodiscard]] torch::Tensor load_like(const torch::Tensor& saved, const torch::Tensor& param, std::string_view who,
                                      std::string_view key, std::size_t index);

}  // namespace detail

#if TRAINPP_DEFINITIONS

namespace detail {

TRAINPP_INLINE bool hf_no_decay_name(const std::string& full_name) {
  static const std::regex pattern(R"(bias|layernorm|rmsnorm|(?:^|\.)norm(?:$|\.)|_norm(?:$|\.))",
                                  std::regex::ECMAScript | std::regex::optimize);
  std::string lower = full_name;
  std::ranges::transform(lower, lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return std::regex_search(lower, pattern);
}

TRAINPP_INLINE void split_for_decay(const torch::nn::Module& module, const std::string& prefix, bool under_layer_norm,
                                    std::unordered_set<const void*>& seen, ParamGroup& decay, ParamGroup& no_decay) {
  for (const auto& item : module.named_parameters(/*recurse=*/false)) {
    const torch::Tensor& p = item.value();
    if (!seen.insert(p.unsafeGetTensorImpl()).second) continue;  // shared: keep the first name only
    if (!p.requires_grad()) continue;
    std::string name = prefix + item.key();
    ParamGroup& group = (under_layer_norm || hf_no_decay_name(name)) ? no_decay : decay;
    group.params.push_back(p);
    group.names.push_back(std::move(name));
  }
  for (const auto& child : module.named_children()) {
    const bool is_layer_norm = dynamic_cast<const torch::nn::LayerNormImpl*>(child.value().get()) != nullptr;
    split_for_decay(*child.value(), prefix + child.key() + ".", under_layer_norm || is_layer_norm, seen, decay,
                    no_decay);
  }
}

TRAINPP_INLINE std::vector<Bucket> bucket_by_device_dtype(const std::vector<torch::Tensor>& tensors) {
  std::vector<Bucket> buckets;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const auto device = tensors[i].device();
    const auto dtype = tensors[i].scalar_type();
    auto it = std::ranges::find_if(buckets, [&](const Bucket& b) { return b.device == device && b.dtype == dtype; });
    if (it == buckets.end()) buckets.push_back(Bucket{device, dtype, {i}});
    else it->indices.push_back(i);
  }
  return buckets;
}

TRAINPP_INLINE void validate_groups(const std::vector<ParamGroup>& groups, std::string_view who) {
  std::unordered_set<const void*> seen;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const auto& group = groups[g];
    if (!(group.lr >= 0)) throw error("{}: invalid learning rate {} in param group {}", who, group.lr, g);
    if (!(group.weight_decay >= 0))
      throw error("{}: invalid weight_decay {} in param group {}", who, group.weight_decay, g);
    if (!group.names.empty() && group.names.size() != group.params.size())
      throw error("{}: param group {} has {} names for {} params", who, g, group.names.size(), group.params.size());
    for (std::size_t i = 0; i < group.params.size(); ++i) {
      const auto& p = group.params[i];
      const auto label = group.names.empty() ? fmt::format("#{}", i) : group.names[i];
      if (!p.defined()) throw error("{}: parameter {} of group {} is an undefined tensor", who, label, g);
      if (!p.is_floating_point())
        throw error("{}: parameter {} of group {} has dtype {}; only floating-point parameters can be optimized",
                    who, label, g, c10::toString(p.scalar_type()));
      if (!seen.insert(p.unsafeGetTensorImpl()).second)
        throw error("{}: parameter {} appears more than once across the param groups", who, label);
    }
  }
}

TRAINPP_INLINE void zero_grads(const std::vector<ParamGroup>& groups, bool set_to_none) {
  std::vector<torch::Tensor> grads;
  for (const auto& group : groups) {
    for (const auto& p : group.params) {
      auto& grad = p.mutable_grad();  // a reference into the parameter's grad slot
      if (!grad.defined()) continue;
      if (set_to_none) {
        grad.reset();
        continue;
      }
      if (grad.grad_fn()) grad = grad.detach();
      else grad.requires_grad_(false);
      grads.push_back(grad);
    }
  }
  for (const auto& bucket : bucket_by_device_dtype(grads)) at::_foreach_zero_(pick(grads, bucket.indices));
}

TRAINPP_INLINE torch::Tensor load_like(const torch::Tensor& saved, const torch::Tensor& param,
                                       std::string_view who, std::string_view key, std::size_t index) {
  if (!saved.defined()) throw error("{}: state entry '{}' of parameter #{} is undefined", who, key, index);
  if (saved.sizes() != param.sizes())
    throw error("{}: state entry '{}' of parameter #{} has shape {}, the parameter has {}", who, key, index,
                saved.sizes().vec(), param.sizes().vec());
  return saved.detach().to(param.device(), param.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
}

}  // namespace detail

TRAINPP_INLINE std::vector<ParamGroup> decay_param_groups(const torch::nn::Module& model, double lr, double weight_decay) {
  std::vector<ParamGroup> groups(2);
  groups[0].lr = groups[0].initial_lr = lr;
  groups[0].weight_decay = weight_decay;
  groups[1].lr = groups[1].initial_lr = lr;
  groups[1].weight_decay = 0.0;
  std::unordered_set<const void*> seen;
  detail::split_for_decay(model, "", false, seen, groups[0], groups[1]);
  return groups;
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
