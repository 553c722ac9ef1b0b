#pragma once
// Activation (gradient) checkpointing: run a block without keeping its activations and recompute it
// in backward. The reentrant scheme of torch.utils.checkpoint(use_reentrant=True), which LibTorch lacks
// in C++ (its non-reentrant scheme rests on saved-tensor hooks, which exist only in Python).

#include <trainpp/detail/config.hpp>
#include <trainpp/precision/autocast.hpp>

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/ivalue.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace trainpp {

namespace detail {

/// The default generators' states: the CPU's, and those of the CUDA devices the inputs live on (the
/// devices torch.utils.checkpoint preserves). CUDA is reached through at::globalContext(), so no CUDA
/// header is needed and a CPU-only build works unchanged.
struct RngStates {
  torch::Tensor cpu;
  std::vector<std::pair<c10::Device, torch::Tensor>> devices;

  static RngStates capture(const std::vector<c10::Device>& cuda_devices);
  void restore() const {
    set(at::detail::getDefaultCPUGenerator(), cpu);
    for (const auto& [d, state] : devices) set(at::globalContext().defaultGenerator(d), state);
  }

 private:
  // The generator's mutex guards its state against other threads drawing numbers meanwhile.
  // (A Generator is a shared handle: the copies below are the default generator itself, non-const.)
  static torch::Tensor get(at::Generator g) {
    std::lock_guard<std::mutex> lock(g.mutex());
    return g.get_state();
  }
  static void set(at::Generator g, const torch::Tensor& state) {
    std::lock_guard<std::mutex> lock(g.mutex());
    g.set_state(state);
  }
};

/// Autocast's thread-local settings for the CPU and CUDA device types, as torch.autocast sees them.
struct AutocastState {
  static constexpr std::array<c10::DeviceType, 2> device_types{c10::DeviceType::CPU, c10::DeviceType::CUDA};
  std::array<bool, 2> enabled{};
  std::array<c10::ScalarType, 2> dtype{};
  bool cache_enabled = true;

  static AutocastState capture();
};

/// What a checkpointed call needs again in backward, beyond its input tensors. It travels in the
/// autograd context's saved_data, which holds only IValues: a capsule is the IValue for an arbitrary
/// C++ object.
struct CheckpointState : torch::CustomClassHolder {
  std::function<std::vector<torch::Tensor>(const std::vector<torch::Tensor>&)> fn;
  std::vector<bool> defined;  ///< which of fn's inputs are defined tensors (only those are passed to apply)
  bool dummy = false;         ///< an extra grad-requiring input was added (see gradient_checkpoint)
  RngStates rng;
  AutocastState autocast;
};

struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                at::TensorList tensors,
                                                c10::intrusive_ptr<CheckpointState> state);

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs);

 private:
  static std::vector<c10::Device> cuda_devices_of(const RngStates& rng);
};

/// Runs fn(inputs) through the checkpoint Function; the vector form of the public entry points.
std::vector<torch::Tensor> run_checkpoint(
    std::function<std::vector<torch::Tensor>(const std::vector<torch::Tensor>&)> fn,
    const std::vector<torch::Tensor>& inputs);

template <class T>
concept TensorArgument = std::same_as<std::remove_cvref_t<T>, torch::Tensor>;

}  // namespace detail

/// Activation checkpointing, as torch.utils.checkpoint.checkpoint(fn, *inputs, use_reentrant=True,
/// preserve_rng_state=True): returns fn(inputs...) but keeps none of fn's activations; backward runs
/// fn again with grad enabled and accumulates gradients into the parameters fn uses and into the
/// inputs that require grad.
///
///   x = trainpp::gradient_checkpoint([block = block.ptr()](const torch::Tensor& h) { return block->forward(h); }, x);
///
/// - fn takes one `const torch::Tensor&` per input and returns a torch::Tensor (the result is that
///   tensor) or a std::vector<torch::Tensor> (the result is that vector). Other arguments (masks,
///   flags, modules) are captured by fn. An input may be an undefined tensor.
/// - fn runs a second time during backward, after the caller has returned: whatever it captures must
///   still be alive then. Capture a module by its shared pointer (`[block = block.ptr()]`: a captured
///   holder is const inside the lambda, and its forward is not); `[&]` is safe only for things that
///   outlive backward, such as members of the module being trained (`for (auto& block : blocks_)`),
///   never a local copy.
/// - The recomputation sees the CPU RNG state (and the default generators of the CUDA devices the
///   inputs are on) and the autocast settings (enabled, dtype per device type, cache) of the first
///   call, so dropout draws the same masks and autocast casts the same ops: the gradients equal those
///   of an uncheckpointed call. The caller's RNG state is restored after the recomputation.
/// - Unlike torch's reentrant version, parameters get gradients even when no input requires grad.
///   The price: the result then requires grad whenever grad mode is on, even if fn uses no trainable
///   parameter (backward finds nothing to do and returns).
/// - Outside grad mode (evaluation) fn is simply called.
/// - As with torch's reentrant checkpoint, gradients reach the parameters through a nested backward:
///   torch::autograd::grad and create_graph (double backward) through the block are not supported.
template <class F, class... Tensors>
  requires(sizeof...(Tensors) > 0 && (detail::TensorArgument<Tensors> && ...) &&
           std::invocable<F&, const Tensors&...>)
[[nodiscard]] auto gradient_checkpoint(F&& fn, const Tensors&... inputs) {
  using Result = std::invoke_result_t<F&, const Tensors&...>;
  static_assert(std::same_as<std::remove_cvref_t<Result>, torch::Tensor> ||
                    std::same_as<std::remove_cvref_t<Result>, std::vector<torch::Tensor>>,
                "trainpp::gradient_checkpoint: fn must return torch::Tensor or std::vector<torch::Tensor>");
  // std::function needs a copyable target: the callable is shared rather than copied.
  auto shared = std::make_shared<std::decay_t<F>>(std::forward<F>(fn));
  auto call = [shared](const std::vector<torch::Tensor>& xs) -> std::vector<torch::Tensor> {
    auto result = [&]<std::size_t... I>(std::index_sequence<I...>) {
      return std::invoke(*shared, xs[I]...);
    }(std::index_sequence_for<Tensors...>{});
    if constexpr (std::same_as<std::remove_cvref_t<Result>, torch::Tensor>) return {std::move(result)};
    else return result;
  };
  auto outputs = detail::run_checkpoint(std::move(call), std::vector<torch::Tensor>{inputs...});
  if constexpr (std::same_as<std::remove_cvref_t<Result>, torch::Tensor>) return outputs.at(0);
  else return outputs;
}

/// The same for a block with a variable number of inputs: fn takes `const std::vector<torch::Tensor>&`
/// and returns std::vector<torch::Tensor>, as does this.
template <class F>
  requires std::is_invocable_r_v<std::vector<torch::Tensor>, F&, const std::vector<torch::Tensor>&>
[[nodiscard]] std::vector<torch::Tensor> gradient_checkpoint(F&& fn, const std::vector<torch::Tensor>& inputs) {
  auto shared = std::make_shared<std::decay_t<F>>(std::forward<F>(fn));
  return detail::run_checkpoint(
      [shared](const std::vector<torch::Tensor>& xs) -> std::vector<torch::Tensor> { return std::invoke(*shared, xs); },
      inputs);
}

#if TRAINPP_DEFINITIONS

namespace detail {

TRAINPP_INLINE RngStates RngStates::capture(const std::vector<c10::Device>& cuda_devices) {
  RngStates s;
  s.cpu = get(at::detail::getDefaultCPUGenerator());
  for (const auto& d : cuda_devices) s.devices.emplace_back(d, get(at::globalContext().defaultGenerator(d)));
  return s;
}

TRAINPP_INLINE AutocastState AutocastState::capture() {
  AutocastState s;
  for (std::size_t i = 0; i < device_types.size(); ++i) {
    s.enabled[i] = at::autocast::is_autocast_enabled(device_types[i]);
    s.dtype[i] = at::autocast::get_autocast_dtype(device_types[i]);
  }
  s.cache_enabled = at::autocast::is_autocast_cache_enabled();
  return s;
}

TRAINPP_INLINE torch::autograd::variable_list CheckpointFunction::forward(
    torch::autograd::AutogradContext* ctx, at::TensorList tensors, c10::intrusive_ptr<CheckpointState> state) {
  // apply() already runs this under no-grad: nothing fn computes is recorded or kept.
  std::vector<torch::Tensor> inputs;
  inputs.reserve(state->defined.size());
  std::size_t next = 0;
  for (bool d : state->defined) inputs.push_back(d ? tensors[next++] : torch::Tensor());
  auto outputs = state->fn(inputs);
  ctx->save_for_backward(tensors.vec());
  ctx->saved_data["state"] = c10::IValue::make_capsule(std::move(state));
  return outputs;
}

TRAINPP_INLINE torch::autograd::variable_list CheckpointFunction::backward(
    torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grad_outputs) {
  auto state = c10::static_intrusive_pointer_cast<CheckpointState>(ctx->saved_data["state"].toCapsule());
  const auto saved = ctx->get_saved_variables();
  const std::size_t num_real = saved.size() - (state->dummy ? 1 : 0);

  // Fresh leaves with the inputs' values and requires_grad: backward below accumulates into them,
  // and into every parameter fn touches, exactly as an ordinary backward would.
  std::vector<torch::Tensor> leaves(num_real);
  for (std::size_t i = 0; i < num_real; ++i) leaves[i] = saved[i].detach().requires_grad_(saved[i].requires_grad());
  std::vector<torch::Tensor> inputs;
  inputs.reserve(state->defined.size());
  std::size_t next = 0;
  for (bool d : state->defined) inputs.push_back(d ? leaves[next++] : torch::Tensor());

  std::vector<torch::Tensor> outputs;
  {
    // The recomputation sees the forward's random numbers (dropout masks) and autocast settings;
    // the caller's RNG state is put back afterwards, so checkpointing draws nothing extra from it.
    const RngStates caller_rng = RngStates::capture(cuda_devices_of(state->rng));
    state->rng.restore();
    struct PutBack {
      const RngStates& rng;
      ~PutBack() { rng.restore(); }
    } put_back{caller_rng};
    const auto& a = state->autocast;
    AutocastGuard cpu(AutocastState::device_types[0], a.dtype[0], a.enabled[0], a.cache_enabled);
    AutocastGuard cuda(AutocastState::device_types[1], a.dtype[1], a.enabled[1], a.cache_enabled);
    torch::AutoGradMode grad(true);
    outputs = state->fn(inputs);
  }

  std::vector<torch::Tensor> roots, grads;
  for (std::size_t i = 0; i < outputs.size() && i < grad_outputs.size(); ++i)
    if (outputs[i].defined() && outputs[i].requires_grad() && grad_outputs[i].defined()) {
      roots.push_back(outputs[i]);
      grads.push_back(grad_outputs[i]);
    }
  // No output depends on anything trainable (frozen weights, no grad-requiring input): nothing to do.
  if (!roots.empty()) torch::autograd::backward(roots, grads);

  // One gradient per input of apply(): the tensors, then the state (which gets none).
  torch::autograd::variable_list result(saved.size() + 1);
  for (std::size_t i = 0; i < num_real; ++i)
    if (leaves[i].requires_grad()) result[i] = leaves[i].grad();
  return result;
}

TRAINPP_INLINE std::vector<c10::Device> CheckpointFunction::cuda_devices_of(const RngStates& rng) {
  std::vector<c10::Device> out;
  for (const auto& [d, s] : rng.devices) out.push_back(d);
  return out;
}

TRAINPP_INLINE std::vector<torch::Tensor> run_checkpoint(
    std::function<std::vector<torch::Tensor>(const std::vector<torch::Tensor>&)> fn,
    const std::vector<torch::Tensor>& inputs) {
  // Without grad mode nothing would be kept anyway: a plain call, as torch.utils.checkpoint
  // effectively is there.
  if (!torch::GradMode::is_enabled()) return fn(inputs);

  auto state = c10::make_intrusive<CheckpointState>();
  std::vector<torch::Tensor> tensors;
  std::vector<c10::Device> cuda_devices;
  bool any_requires_grad = false;
  for (const auto& x : inputs) {
    state->defined.push_back(x.defined());
    if (!x.defined()) continue;
    tensors.push_back(x);
    any_requires_grad = any_requires_grad || x.requires_grad();
    if (x.is_cuda() && std::find(cuda_devices.begin(), cuda_devices.end(), x.device()) == cuda_devices.end())
      cuda_devices.push_back(x.device());
  }
  // The outputs of an autograd Function join the graph only through its tensor inputs. When none of
  // them requires grad (the first block, fed embeddings of a frozen table or raw features), the
  // parameters inside fn would get no gradient: torch's reentrant checkpoint warns and leaves them
  // None. An empty grad-requiring input makes the Function part of the graph, so they do get one.
  if (!any_requires_grad) {
    tensors.push_back(torch::empty({0}, torch::TensorOptions().requires_grad(true)));
    state->dummy = true;
  }
  state->fn = std::move(fn);
  state->rng = RngStates::capture(cuda_devices);
  state->autocast = AutocastState::capture();
  // A TensorList, not the vector: apply() counts the tensors of a TensorList as inputs of the graph
  // node, while a std::vector would pass as an opaque argument.
  return CheckpointFunction::apply(at::TensorList(tensors), std::move(state));
}

}  // namespace detail

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
