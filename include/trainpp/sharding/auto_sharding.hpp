#pragma once
// AutoSharding: the sharding slot that HF's flags configure — --fsdp picks data parallelism
// (nothing, or no_shard), ShardGradOp (shard_grad_op) or FullShard (full_shard) when the run starts.

#include <trainpp/detail/config.hpp>
#include <trainpp/sharding/data_parallel.hpp>
#include <trainpp/sharding/zero.hpp>

#include <optional>

namespace trainpp {

/// Data parallelism as `--fsdp` / `--fsdp_config` say, chosen at run time: for programs whose users
/// pick the strategy on the command line, as with HF's Trainer. Without a launcher and without
/// --fsdp it trains as a single process. Each call is one branch on the chosen policy; a program that
/// knows its strategy puts DataParallel, ShardGradOp or FullShard in the slot instead.
class AutoSharding {
 public:
  /// Shards as --fsdp / --deepspeed say: the Trainer accepts those flags with this policy.
  static constexpr bool shards_model = true;

  void configure(const TrainingArguments& args, torch::Device device);
  /// The policy chosen: nullptr for data parallelism.
  [[nodiscard]] ZeroSharding* zero() { return zero_ ? &*zero_ : nullptr; }

  void prepare(torch::nn::Module& model, torch::Device device) {
    zero_ ? zero_->prepare(model, device) : data_parallel_.prepare(model, device);
  }
  void set_gradient_sync(bool sync) {
    if (!zero_) data_parallel_.set_gradient_sync(sync);
  }
  template <class Optimizer>
  void shard_optimizer(Optimizer& optimizer) {
    if (zero_) zero_->shard_optimizer(optimizer);
  }
  void before_forward(torch::nn::Module& m) { zero_ ? zero_->before_forward(m) : data_parallel_.before_forward(m); }
  void after_forward(torch::nn::Module& m) {
    if (zero_) zero_->after_forward(m);
  }
  void after_backward(torch::nn::Module& m, bool sync) {
    zero_ ? zero_->after_backward(m, sync) : data_parallel_.after_backward(m, sync);
  }
  [[nodiscard]] torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
    return zero_ ? zero_->clip_grad_norm(params, max_norm) : data_parallel_.clip_grad_norm(params, max_norm);
  }
  void after_step(torch::nn::Module& m) {
    if (zero_) zero_->after_step(m);
  }
  /// Data parallelism's processes all checked the same reduced gradients: nothing to agree on.
  void agree_on_overflow(torch::Tensor& found_inf) {
    if (zero_) zero_->agree_on_overflow(found_inf);
  }

  [[nodiscard]] bool forward_is_collective() const { return zero_ && zero_->forward_is_collective(); }
  [[nodiscard]] int rank() const { return zero_ ? zero_->rank() : data_parallel_.rank(); }
  [[nodiscard]] int world_size() const { return zero_ ? zero_->world_size() : data_parallel_.world_size(); }
  void barrier() { zero_ ? zero_->barrier() : data_parallel_.barrier(); }
  void all_reduce_sum(torch::Tensor& t) { zero_ ? zero_->all_reduce_sum(t) : data_parallel_.all_reduce_sum(t); }
  [[nodiscard]] torch::Tensor gather_in_order(const torch::Tensor& local, std::int64_t batch_size, std::int64_t num_samples,
                                              double pad) {
    return zero_ ? zero_->gather_in_order(local, batch_size, num_samples, pad)
                 : data_parallel_.gather_in_order(local, batch_size, num_samples, pad);
  }

  // Checkpoints: data parallelism saves as a single process does.
  [[nodiscard]] std::optional<ZeroSharding::FullParameters> full_parameters() {
    if (!zero_) return std::nullopt;
    return std::optional<ZeroSharding::FullParameters>(std::in_place, *zero_);
  }
  [[nodiscard]] std::optional<std::string> optimizer_state_file(int rank) const {
    return zero_ ? zero_->optimizer_state_file(rank) : std::nullopt;
  }
  void save_model_files(torch::nn::Module& model, const std::filesystem::path& dir, bool main_process) {
    if (zero_) zero_->save_model_files(model, dir, main_process);
    else if (main_process) trainpp::save_model(model, dir);
  }
  void load_model_files(torch::nn::Module& model, const std::filesystem::path& dir) {
    if (zero_) zero_->load_model_files(model, dir);
    else trainpp::load_model(model, dir / model_weights_name, /*strict=*/true);
  }

 private:
  DataParallel data_parallel_;
  std::optional<ZeroSharding> zero_;
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE void AutoSharding::configure(const TrainingArguments& args, torch::Device device) {
  const FsdpOptions options = args.fsdp_options();
  if (options.strategy && *options.strategy != ShardingStrategy::no_shard) {
    zero_.emplace(*options.strategy, options);
    zero_->configure(args, device);
  } else {
    data_parallel_.configure(args, device);
  }
  if (world_size() > 1) {
    if (!zero_) note("data parallelism across {} processes", world_size());
    else if (options.hybrid)
      note("{}: sharded within each node's {} processes, replicated across {} nodes", zero_->label(),
           zero_->shard_group_size(), world_size() / zero_->shard_group_size());
    else note("{} across {} processes", zero_->label(), world_size());
  }
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
