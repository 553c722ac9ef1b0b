#pragma once
// trainpp::call(block, inputs...): how a model calls a block that a sharding policy may wrap.
// LibTorch modules have no forward hooks (Python's register_forward_pre_hook), so a policy that
// gathers a block's parameters around its forward (FullShard) needs the model to call the block
// through here. Unwrapped blocks cost one hash lookup; a model that never uses trainpp::call still
// trains under every policy, with its whole model as one unit.

#include <trainpp/detail/config.hpp>
#include <trainpp/nn/gradient_checkpointing.hpp>

#include <functional>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace trainpp {

/// What a sharding policy does around one wrapped module's forward.
struct ModuleCallHooks {
  /// Before the forward (FullShard: gather the unit's parameters).
  std::function<void()> before;
  /// After the forward, with the output tensors (FullShard: register a hook on them that gathers the
  /// parameters again before the unit's backward, then free them). An empty list: the output was not
  /// a tensor, a vector or a tuple of tensors, so no backward hook could be placed.
  std::function<void(const std::vector<torch::Tensor>& outputs, bool outputs_known)> after;
  /// Run the forward under trainpp::gradient_checkpoint (fsdp_config activation_checkpointing).
  bool checkpoint = false;
};

namespace detail {

/// Wrapped modules, keyed by their address; filled by a policy's prepare(), read by every call.
inline std::unordered_map<const torch::nn::Module*, ModuleCallHooks>& module_call_registry() {
  static std::unordered_map<const torch::nn::Module*, ModuleCallHooks> registry;
  return registry;
}

template <class M>
const torch::nn::Module* module_address(const M& module) {
  if constexpr (requires { module.ptr(); }) return module.ptr().get();  // a TORCH_MODULE holder
  else if constexpr (requires { module.get(); }) return module.get();  // a shared_ptr
  else return &module;
}

template <class M>
decltype(auto) module_impl(M& module) {
  if constexpr (requires { module.ptr(); }) return *module.ptr();
  else if constexpr (requires { module.get(); }) return *module;
  else return (module);
}

/// The tensors of a forward's result, when it is a tensor, a vector of tensors, or a tuple/pair of
/// those; false otherwise.
template <class R>
bool collect_tensors(const R& result, std::vector<torch::Tensor>& out) {
  using T = std::remove_cvref_t<R>;
  if constexpr (std::is_same_v<T, torch::Tensor>) {
    out.push_back(result);
    return true;
  } else if constexpr (std::is_same_v<T, std::vector<torch::Tensor>>) {
    out.insert(out.end(), result.begin(), result.end());
    return true;
  } else if constexpr (requires { std::tuple_size<T>::value; }) {
    return std::apply([&](const auto&... items) { return (collect_tensors(items, out) && ...); }, result);
  } else {
    return false;
  }
}

}  // namespace detail

/// `block->forward(inputs...)`, with whatever the sharding policy registered for `block` around it
/// (nothing when it registered nothing). Works for TORCH_MODULE holders, shared_ptrs and modules.
template <class M, class... Inputs>
decltype(auto) call(M& block, Inputs&&... inputs) {
  auto& registry = detail::module_call_registry();
  const auto it = registry.empty() ? registry.end() : registry.find(detail::module_address(block));
  auto& impl = detail::module_impl(block);
  if (it == registry.end()) return impl.forward(std::forward<Inputs>(inputs)...);
  const ModuleCallHooks& hooks = it->second;
  using Result = std::remove_cvref_t<decltype(impl.forward(std::forward<Inputs>(inputs)...))>;
  auto run = [&](auto&&... xs) -> Result {
    if (hooks.before) hooks.before();
    Result result = impl.forward(std::forward<decltype(xs)>(xs)...);
    std::vector<torch::Tensor> outputs;
    const bool known = detail::collect_tensors(result, outputs);
    if (hooks.after) hooks.after(outputs, known);
    return result;
  };
  constexpr bool checkpointable = (std::is_same_v<std::remove_cvref_t<Inputs>, torch::Tensor> && ...) &&
                                  sizeof...(Inputs) > 0 &&
                                  (std::is_same_v<Result, torch::Tensor> || std::is_same_v<Result, std::vector<torch::Tensor>>);
  if constexpr (checkpointable) {
    if (hooks.checkpoint && torch::GradMode::is_enabled() && impl.is_training())
      return Result(gradient_checkpoint([run](const std::remove_cvref_t<Inputs>&... xs) -> Result { return run(xs...); }, inputs...));
  }
  return run(std::forward<Inputs>(inputs)...);
}

}  // namespace trainpp
