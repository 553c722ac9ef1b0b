#pragma once
// ShardingPolicy: where parameters, gradients and optimizer state live across ranks, and when
// gradients are synchronised (HF's DDP / FSDP / DeepSpeed ZeRO).

#include <trainpp/detail/config.hpp>

#include <concepts>
#include <vector>

namespace trainpp {

/// The sharding slot. The loop calls, in order, per micro-batch: `before_forward` (ZeRO-3 gathers
/// parameters), forward + loss, backward, `after_backward(sync)` where sync is true only on the last
/// micro-batch of an accumulation window (DDP allreduces / ZeRO reduce-scatters then, and never
/// mid-window); then per optimizer step `clip_grad_norm` (the global norm across shards) and, after
/// the step, `after_step` (ZeRO-2 all-gathers the updated shards).
///
/// Required:
/// - `prepare(torch::nn::Module& model, torch::Device)`: place / broadcast / shard the model;
/// - `before_forward(torch::nn::Module&)`, `after_backward(torch::nn::Module&, bool sync)`;
/// - `clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm)` -> torch::Tensor
///   (the pre-clip norm, on the device: no host sync);
/// - `after_step(torch::Optimizer-like&)` via `after_step(torch::nn::Module&)`;
/// - `rank()`, `world_size()`.
/// Models: trainpp::SingleDevice (the default).
template <class P>
concept ShardingPolicy = requires(P& p, torch::nn::Module& m, torch::Device d, bool sync,
                                  const std::vector<torch::Tensor>& params, double max_norm) {
  p.prepare(m, d);
  p.before_forward(m);
  p.after_backward(m, sync);
  { p.clip_grad_norm(params, max_norm) } -> std::convertible_to<torch::Tensor>;
  p.after_step(m);
  { p.rank() } -> std::convertible_to<int>;
  { p.world_size() } -> std::convertible_to<int>;
};

namespace detail {
template <class P>
constexpr bool check_sharding() {
  constexpr bool prep = requires(P& p, torch::nn::Module& m, torch::Device d) { p.prepare(m, d); };
  constexpr bool hooks = requires(P& p, torch::nn::Module& m, bool s) {
    p.before_forward(m); p.after_backward(m, s); p.after_step(m);
  };
  constexpr bool clip = requires(P& p, const std::vector<torch::Tensor>& params, double n) {
    { p.clip_grad_norm(params, n) } -> std::convertible_to<torch::Tensor>;
  };
  constexpr bool ranks = requires(P& p) { { p.rank() } -> std::convertible_to<int>; { p.world_size() } -> std::convertible_to<int>; };
  static_assert(prep, "trainpp: the sharding slot needs a member prepare(torch::nn::Module&, torch::Device)");
  static_assert(hooks, "trainpp: the sharding slot needs members before_forward(torch::nn::Module&), "
                       "after_backward(torch::nn::Module&, bool sync) and after_step(torch::nn::Module&)");
  static_assert(clip, "trainpp: the sharding slot needs a member "
                      "torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>&, double max_norm)");
  static_assert(ranks, "trainpp: the sharding slot needs members rank() and world_size()");
  return prep && hooks && clip && ranks;
}
}  // namespace detail

}  // namespace trainpp
