#pragma once
// ShardingPolicy: where parameters, gradients and optimizer state live across ranks, and when
// gradients are synchronised (HF's DDP / FSDP / DeepSpeed ZeRO).

#include <trainpp/args.hpp>
#include <trainpp/detail/config.hpp>
#include <trainpp/detail/declares.hpp>

#include <concepts>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace trainpp {

/// The sharding slot. The loop calls, in order, per micro-batch: `before_forward` (ZeRO-3 gathers
/// parameters), forward + loss, backward, `after_backward(sync)` where sync is true only on the last
/// micro-batch of an accumulation window (DDP allreduces / ZeRO reduce-scatters then, and never
/// mid-window); then per optimizer step `clip_grad_norm` (the global norm across shards) and, after
/// the step, `after_step` (ZeRO-2 all-gathers the updated shards).
///
/// Required:
/// - `prepare(torch::nn::Module& model, torch::Device)`: place / broadcast / shard the model; called
///   once by the Trainer's constructor;
/// - `before_forward(torch::nn::Module&)`, `after_backward(torch::nn::Module&, bool sync)`,
///   `after_step(torch::nn::Module&)`: as above;
/// - `clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm)` -> torch::Tensor
///   (the pre-clip norm, on the device: no host sync);
/// - `rank()`, `world_size()` -> int.
///
/// Optional (a member declared under one of these names must be callable as shown, or the Trainer
/// does not compile; absent, the loop does what is said after "default"):
/// - `static constexpr bool shards_model`: true when the policy can shard (follows --fsdp /
///   --deepspeed); default false: the Trainer's constructor then refuses a sharding strategy in the
///   flags instead of training unsharded;
/// - `template <class Precision> static constexpr bool accepts_precision`: false for a precision
///   policy it cannot train under (checked when the Trainer is built); default: every one;
/// - `void configure(const TrainingArguments&, torch::Device)`: called once by the Trainer's
///   constructor, before prepare (to join the job, to read --fsdp_config); default: nothing;
/// - `void set_gradient_sync(bool sync)`: before each micro-batch's training step, true on the last
///   of the window (DDP's no_sync); default: nothing;
/// - `void shard_optimizer(Optimizer&)`: once per train(), right after the optimizer is created
///   (ZeRO keeps only this process's pieces); default: nothing;
/// - `void after_forward(torch::nn::Module&)`: after a forward that has no backward (prediction);
///   default: nothing;
/// - `bool forward_is_collective()`: whether every forward takes every process (evaluation then
///   evens out the number of forwards); default: false;
/// - `void barrier()`: waits for every process (around checkpoints); default: nothing;
/// - `void all_reduce_sum(torch::Tensor&)` and `torch::Tensor gather_in_order(const torch::Tensor&
///   local, std::int64_t batch_size, std::int64_t num_samples, double pad)`: evaluation with
///   several processes sums the losses and gathers predictions; default: one process only;
/// - `full_parameters()` -> an RAII object under which the module holds its full parameters
///   (save_model); default: they are always full;
/// - `std::optional<std::string> optimizer_state_file(int rank) const`: the per-process optimizer
///   state file of a checkpoint; default (or nullopt): optimizer.safetensors from the main process;
/// - `void save_model_files(torch::nn::Module&, const std::filesystem::path& dir, bool main_process)`
///   and `void load_model_files(torch::nn::Module&, const std::filesystem::path& dir)`: the model's
///   files of a checkpoint (collective); default: model.safetensors written by the main process;
/// - `void agree_on_overflow(torch::Tensor& found_inf)`: after unscale_, the precision policy's
///   found_inf (a float32 scalar on the device, non-zero when a gradient this process holds is inf or
///   NaN) is handed here to be made the same on every process, before the step is decided: ZeRO sums
///   it, since each process checked only its shard of the gradients (torch's ShardedGradScaler);
///   default: nothing (every process holds the whole reduced gradients, so their checks agree).
/// Models: trainpp::SingleDevice (nothing optional), trainpp::DataParallel, trainpp::ShardGradOp,
/// trainpp::FullShard, trainpp::AutoSharding.
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
/// Whether the sharding policy says it shards (its shards_model), false when it does not say.
template <class P>
constexpr bool sharding_shards_model() {
  if constexpr (requires { typename std::bool_constant<P::shards_model>; }) return P::shards_model;
  else return false;
}

/// The optional members of a sharding policy P: each one P declares must be callable as the loop
/// calls it, with the Trainer's optimizer and precision types.
template <class P, class Optimizer, class Precision>
constexpr bool check_sharding_optional() {
  using std::filesystem::path;
  constexpr bool shards = !declares_shards_model<P> || requires { typename std::bool_constant<P::shards_model>; };
  constexpr bool accepts = !declares_accepts_precision<P> ||
      requires { typename std::bool_constant<P::template accepts_precision<Precision>>; };
  constexpr bool configure = !declares_configure<P> ||
      requires(P& p, const TrainingArguments& a, torch::Device d) { p.configure(a, d); };
  constexpr bool gradient_sync = !declares_set_gradient_sync<P> || requires(P& p, bool sync) { p.set_gradient_sync(sync); };
  constexpr bool shard_optimizer = !declares_shard_optimizer<P> || requires(P& p, Optimizer& o) { p.shard_optimizer(o); };
  constexpr bool after_forward = !declares_after_forward<P> || requires(P& p, torch::nn::Module& m) { p.after_forward(m); };
  constexpr bool collective = !declares_forward_is_collective<P> ||
      requires(P& p) { { p.forward_is_collective() } -> std::convertible_to<bool>; };
  constexpr bool barrier = !declares_barrier<P> || requires(P& p) { p.barrier(); };
  constexpr bool reduce = !declares_all_reduce_sum<P> || requires(P& p, torch::Tensor& t) { p.all_reduce_sum(t); };
  constexpr bool gather = !declares_gather_in_order<P> ||
      requires(P& p, const torch::Tensor& t, std::int64_t n, double pad) {
        { p.gather_in_order(t, n, n, pad) } -> std::convertible_to<torch::Tensor>;
      };
  constexpr bool full = !declares_full_parameters<P> ||
      requires(P& p) { requires !std::is_void_v<decltype(p.full_parameters())>; };
  constexpr bool optimizer_file = !declares_optimizer_state_file<P> ||
      requires(const P& p, int rank) { { p.optimizer_state_file(rank) } -> std::convertible_to<std::optional<std::string>>; };
  constexpr bool save = !declares_save_model_files<P> ||
      requires(P& p, torch::nn::Module& m, const path& dir, bool main) { p.save_model_files(m, dir, main); };
  constexpr bool load = !declares_load_model_files<P> ||
      requires(P& p, torch::nn::Module& m, const path& dir) { p.load_model_files(m, dir); };
  constexpr bool overflow = !declares_agree_on_overflow<P> ||
      requires(P& p, torch::Tensor& found_inf) { p.agree_on_overflow(found_inf); };
  static_assert(shards, "trainpp: the sharding slot declares 'shards_model' but it is not static constexpr bool shards_model");
  static_assert(accepts, "trainpp: the sharding slot declares 'accepts_precision' but it is not "
                         "template <class Precision> static constexpr bool accepts_precision (for this precision slot)");
  static_assert(configure, "trainpp: the sharding slot declares 'configure' but it cannot be called as "
                           "void configure(const TrainingArguments&, torch::Device)");
  static_assert(gradient_sync, "trainpp: the sharding slot declares 'set_gradient_sync' but it cannot be called as "
                               "void set_gradient_sync(bool sync)");
  static_assert(shard_optimizer, "trainpp: the sharding slot declares 'shard_optimizer' but it cannot be called as "
                                 "void shard_optimizer(Optimizer&)");
  static_assert(after_forward, "trainpp: the sharding slot declares 'after_forward' but it cannot be called as "
                               "void after_forward(torch::nn::Module&)");
  static_assert(collective, "trainpp: the sharding slot declares 'forward_is_collective' but it cannot be called as "
                            "bool forward_is_collective()");
  static_assert(barrier, "trainpp: the sharding slot declares 'barrier' but it cannot be called as void barrier()");
  static_assert(reduce, "trainpp: the sharding slot declares 'all_reduce_sum' but it cannot be called as "
                        "void all_reduce_sum(torch::Tensor&)");
  static_assert(gather, "trainpp: the sharding slot declares 'gather_in_order' but it cannot be called as "
                        "torch::Tensor gather_in_order(const torch::Tensor& local, std::int64_t batch_size, "
                        "std::int64_t num_samples, double pad)");
  static_assert(full, "trainpp: the sharding slot declares 'full_parameters' but it cannot be called as "
                      "auto full_parameters() returning a guard");
  static_assert(optimizer_file, "trainpp: the sharding slot declares 'optimizer_state_file' but it cannot be called as "
                                "std::optional<std::string> optimizer_state_file(int rank) const");
  static_assert(save, "trainpp: the sharding slot declares 'save_model_files' but it cannot be called as "
                      "void save_model_files(torch::nn::Module&, const std::filesystem::path& dir, bool main_process)");
  static_assert(load, "trainpp: the sharding slot declares 'load_model_files' but it cannot be called as "
                      "void load_model_files(torch::nn::Module&, const std::filesystem::path& dir)");
  static_assert(overflow, "trainpp: the sharding slot declares 'agree_on_overflow' but it cannot be called as "
                          "void agree_on_overflow(torch::Tensor& found_inf)");
  return overflow && shards && accepts && configure && gradient_sync && shard_optimizer && after_forward && collective && barrier &&
         reduce && gather && full && optimizer_file && save && load;
}

template <class P, class Optimizer, class Precision>
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
  if constexpr (!(prep && hooks && clip && ranks)) return false;
  else return check_sharding_optional<P, Optimizer, Precision>();
}
}  // namespace detail

}  // namespace trainpp
