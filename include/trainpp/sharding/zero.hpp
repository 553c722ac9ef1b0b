#pragma once
// ShardGradOp (ZeRO-2, FSDP SHARD_GRAD_OP) and FullShard (ZeRO-3, FSDP FULL_SHARD): each process
// keeps only its part of the gradients and optimizer state (and under FullShard of the parameters),
// and the processes exchange what the step needs with reduce-scatters and all-gathers.

#include <trainpp/detail/config.hpp>
#include <trainpp/args.hpp>
#include <trainpp/io/checkpoint.hpp>
#include <trainpp/io/model_io.hpp>
#include <trainpp/io/safetensors.hpp>
#include <trainpp/io/sharded_model.hpp>
#include <trainpp/nn/module_call.hpp>
#include <trainpp/optim/param_groups.hpp>
#include <trainpp/sharding/joined_processes.hpp>
#include <trainpp/sharding/zero_collectives.hpp>
#include <trainpp/sharding/zero_layout.hpp>

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#if TRAINPP_DEFINITIONS
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#endif

namespace trainpp {

/// The ZeRO engine behind ShardGradOp and FullShard.
///
/// Layout (sharding/zero_layout.hpp): the trainable parameters are grouped in units — the
/// modules auto-wrap picks (fsdp_transformer_layer_cls_to_wrap, or min_num_params as torch's
/// size_based_auto_wrap_policy), plus a root unit for every parameter outside them — and each
/// unit's parameters of one dtype are laid end to end in one flat buffer, padded to a multiple
/// of the number of processes N. Process r owns elements [r·S, (r+1)·S) of every flat buffer
/// (S = padded size / N).
///
/// A step (the collectives: sharding/zero_collectives.hpp): backward fills the full gradients
/// of a unit; when its last gradient is ready (a hook on the gradient accumulators), they are
/// copied into one flat buffer, freed, and reduce-scattered, so each process receives the sum
/// of its part, added to its gradient shard (every micro-batch: the accumulation happens on the
/// shards, as DeepSpeed's ZeRO does). At the window's end the shards are divided by N; the
/// global gradient norm is the square root of the summed squared shard norms; the optimizer
/// updates only this process's pieces of each parameter (shard_optimizer replaced its
/// parameters by them: same groups, same weight decay, same arithmetic per element).
/// - ShardGradOp keeps the whole parameters: after the step they are all-gathered from the shards.
/// - FullShard keeps only the shards: a unit's parameters are gathered before its forward (the root
///   unit's in before_forward; a wrapped unit's when the model calls it through trainpp::call), freed
///   after it, gathered again before its backward (a hook on its outputs) and freed once its gradients
///   are out. forward_prefetch / backward_prefetch start the next unit's gather early; with
///   limit_all_gathers at most two units are gathered at a time.
/// - offload keeps the shards, gradient shards and optimizer state on the CPU; the step runs there.
/// - hybrid (FSDP's HYBRID_SHARD with full_shard, HYBRID_SHARD_ZERO2 with shard_grad_op): the layout
///   above applies among the processes of one node (N = LOCAL_WORLD_SIZE); every node holds a whole
///   replica. A unit's gradients are reduce-scattered within the node, then each shard is all-reduced
///   with the same shard on the other nodes (c10d sub-groups: one per node, one per local rank), and
///   divided by the whole job's size. Gathers stay within the node; the grad norm sums the node's shards.
/// The first forward runs with everything gathered and checks that every wrapped unit was called
/// through trainpp::call (FullShard could not gather it otherwise): an error names any that was not.
class ZeroSharding : public detail::JoinedProcesses, private detail::ZeroCollectives {
 public:
  explicit ZeroSharding(ShardingStrategy strategy, FsdpOptions options = {});
  ZeroSharding(const ZeroSharding&) = delete;
  ZeroSharding& operator=(const ZeroSharding&) = delete;
  ZeroSharding(ZeroSharding&&) noexcept = default;
  ZeroSharding& operator=(ZeroSharding&&) = delete;
  ~ZeroSharding() { release(); }

  /// Shards: the Trainer lets --fsdp / --deepspeed choose this policy's strategy.
  static constexpr bool shards_model = true;

  [[nodiscard]] ShardingStrategy strategy() const { return strategy_; }
  /// Whether every forward runs collectives (FullShard's gathers across several processes): then
  /// every process must run as many, and evaluation evens them out.
  [[nodiscard]] bool forward_is_collective() const { return strategy_ == ShardingStrategy::full_shard && world_size() > 1; }
  [[nodiscard]] const FsdpOptions& options() const { return options_; }

  /// Takes the options --fsdp / --fsdp_config give (a strategy there must be this policy's) and joins the job.
  void configure(const TrainingArguments& args, torch::Device device);

  /// The strategy as --fsdp names it: full_shard, shard_grad_op, hybrid_shard or hybrid_shard_zero2.
  [[nodiscard]] const char* label() const {
    if (!options_.hybrid) return strategy_label(strategy_);
    return strategy_ == ShardingStrategy::full_shard ? "hybrid_shard" : "hybrid_shard_zero2";
  }
  /// How many processes share the flat buffers: the job's, or under hybrid sharding a node's.
  [[nodiscard]] int shard_group_size() const { return options_.hybrid && joined() ? shard_size_ : world_size(); }

  void prepare(torch::nn::Module& model, torch::Device device);

  /// Replaces the optimizer's parameters by this process's pieces of them (views of the shards, with
  /// views of the gradient shards as their gradients at each step). Groups, names and hyper-parameters
  /// stay; a piece may be empty (the parameter lies wholly in other processes' parts).
  template <class Optimizer>
  void shard_optimizer(Optimizer& optimizer) {
    State& s = *state_;
    std::unordered_map<const void*, std::size_t> index;
    for (std::size_t k = 0; k < s.params.size(); ++k) index.emplace(s.params[k].unsafeGetTensorImpl(), k);
    s.pieces.clear();
    for (auto& group : optimizer.param_groups()) {
      for (auto& p : group.params) {
        const auto it = index.find(p.unsafeGetTensorImpl());
        if (it == index.end())
          throw error("{}: the optimizer holds a tensor that is not a trainable parameter of the model",
                      strategy_label(strategy_));
        Piece piece = piece_of(s, it->second);
        p = piece.data;
        s.pieces.push_back(std::move(piece));
      }
    }
  }

  void before_forward(torch::nn::Module&);

  /// After a forward without backward (evaluation, prediction): FullShard frees the root unit.
  void after_forward(torch::nn::Module&);

  /// Every micro-batch: reduce-scatters what backward did not (units with unused parameters), waits
  /// (hybrid: all-reduces the parts across nodes), and adds the reduced parts to the gradient shards; at the window's end divides them by N and
  /// hands them to the optimizer's pieces.
  void after_backward(torch::nn::Module&, bool sync);

  /// The global norm: each process's squared shard norm, summed across the processes sharing the
  /// buffers (under hybrid sharding a node's: the other nodes hold the same shards again).
  [[nodiscard]] torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>&, double max_norm);

  /// fp16: each process checked only its gradient shard for inf / NaN; the sum across processes makes
  /// an overflow in any shard skip the step, and back off the scale, on every process.
  void agree_on_overflow(torch::Tensor& found_inf) {
    all_reduce_sum(found_inf);
  }

  /// ShardGradOp: the updated shards all-gathered into the whole parameters. Both: gradient shards zeroed.
  void after_step(torch::nn::Module&);

  // ---- checkpoints (the Trainer calls these on every process) ---------------------------------------

  /// Gathers every unit for the scope's life (FullShard; nothing to do for ShardGradOp): what saving
  /// the whole model needs. Every process must hold one at the same time.
  class FullParameters {
   public:
    explicit FullParameters(ZeroSharding& z) : z_(z) {
      if (!z_.state_) return;
      for (std::size_t u = 0; u < z_.state_->units.size(); ++u) gather(*z_.state_, u, true);
    }
    FullParameters(const FullParameters&) = delete;
    FullParameters& operator=(const FullParameters&) = delete;
    ~FullParameters() {
      if (z_.state_ && z_.strategy_ == ShardingStrategy::full_shard)
        for (std::size_t u = 0; u < z_.state_->units.size(); ++u) free_unit(*z_.state_, u);
    }

   private:
    ZeroSharding& z_;
  };
  [[nodiscard]] FullParameters full_parameters() { return FullParameters(*this); }

  /// The optimizer's state is always saved per process (it exists only in pieces).
  [[nodiscard]] std::optional<std::string> optimizer_state_file(int rank) const { return optimizer_shard_name(rank); }

  /// Writes this process's share of the model into `dir`: FULL_STATE_DICT — the main process writes
  /// model.safetensors, as a single process would (every process takes part in the gather);
  /// SHARDED_STATE_DICT — every process its pieces (model_shard_<rank>.safetensors), the main process
  /// also the buffers and the index. Under hybrid sharding only the first node's processes write
  /// (model_shard_<local rank>): the other nodes hold the same pieces, and torch's distributed
  /// checkpoint likewise writes each replicated shard of a SHARDED_STATE_DICT once.
  void save_model_files(torch::nn::Module& model, const std::filesystem::path& dir, bool main_process);

  /// Loads the model a checkpoint holds (either kind) into the shards; every process calls it.
  void load_model_files(torch::nn::Module& model, const std::filesystem::path& dir);

  /// The bytes this process holds of parameters (shards, gathered units) and gradients (full and
  /// sharded) right now: what the memory test compares with ZeRO's formulas.
  [[nodiscard]] std::vector<torch::Tensor> owned_tensors() const;
  [[nodiscard]] std::vector<torch::Tensor> owned_gradients() const;
  /// The units, as "name (Class): n parameters" lines (the root unit's name is empty).
  [[nodiscard]] std::vector<std::string> describe_units() const;

  [[nodiscard]] static const char* strategy_label(ShardingStrategy strategy);

 private:
  void finish_probe(State& s);

  // ---- hooks: gradient accumulators, trainpp::call ---------------------------------------------

  void register_backward_hooks();

  /// What trainpp::call does around a wrapped unit.
  void register_unit_calls();

  void release();

  /// Hybrid sharding's sub-groups: this node's processes (null when it has one process), and this local
  /// rank's process on every node (null with one node). Node k holds ranks [k·L, (k+1)·L).
  void join_hybrid_groups();

  ShardingStrategy strategy_;
  FsdpOptions options_;
  std::shared_ptr<ProcessGroup> shard_group_, replica_group_;
  int shard_rank_ = 0, shard_size_ = 1;
  std::shared_ptr<State> state_;
  std::vector<std::pair<decltype(torch::autograd::impl::grad_accumulator(std::declval<const torch::Tensor&>())), std::uintptr_t>> hooks_;
  std::vector<const torch::nn::Module*> registered_;
};

/// ZeRO-2 as a sharding slot type (HF's `--fsdp shard_grad_op`): whole parameters, sharded gradients
/// and optimizer state. Options (auto-wrap units, offload, state_dict_type) from --fsdp_config or here.
class ShardGradOp : public ZeroSharding {
 public:
  explicit ShardGradOp(FsdpOptions options = {}) : ZeroSharding(ShardingStrategy::shard_grad_op, std::move(options)) {}
};

/// ZeRO-3 as a sharding slot type (HF's `--fsdp full_shard`): parameters, gradients and optimizer state
/// sharded; units gathered around their forward and backward (see ZeroSharding).
class FullShard : public ZeroSharding {
 public:
  explicit FullShard(FsdpOptions options = {}) : ZeroSharding(ShardingStrategy::full_shard, std::move(options)) {}
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE ZeroSharding::ZeroSharding(ShardingStrategy strategy, FsdpOptions options) : strategy_(strategy), options_(std::move(options)) {
  if (strategy_ == ShardingStrategy::no_shard)
    throw error("ZeroSharding shards gradients: use trainpp::DataParallel for no_shard");
}

TRAINPP_INLINE void ZeroSharding::configure(const TrainingArguments& args, torch::Device device) {
  const FsdpOptions given = args.fsdp_options();
  if (given.strategy) {
    if (*given.strategy != strategy_)
      throw error("{} says {}, but the sharding slot is {}: drop the flag, or use trainpp::AutoSharding to let "
                  "the flags choose", args.fsdp.empty() ? "--deepspeed" : "--fsdp", strategy_label(*given.strategy),
                  strategy_label(strategy_));
    options_ = given;
  } else if (!args.fsdp_config.value_or("").empty()) {
    options_ = given;
  }
  if (strategy_ == ShardingStrategy::full_shard && (args.bf16_full_eval || args.fp16_full_eval))
    throw error("--{}_full_eval with full_shard: casting the whole model needs its parameters, which full_shard "
                "keeps sharded; evaluate under --bf16 autocast instead", args.bf16_full_eval ? "bf16" : "fp16");
  join(args, device);
  if (options_.hybrid && joined()) join_hybrid_groups();
}

TRAINPP_INLINE void ZeroSharding::prepare(torch::nn::Module& model, torch::Device device) {
  release();
  model.to(device);
  auto s = std::make_shared<State>();
  s->strategy = strategy_;
  s->group = options_.hybrid ? shard_group_ : group_;
  s->replicas = replica_group_;
  s->rank = options_.hybrid && joined() ? shard_rank_ : rank();
  s->world = shard_group_size();
  s->data_parallel_world = world_size();
  s->device = device;
  s->offload = options_.offload ? torch::Device(torch::kCPU) : device;
  s->options = options_;
  torch::NoGradGuard no_grad;
  if (joined() && options_.sync_module_states) {
    auto everything = model.parameters();
    for (auto& b : model.buffers()) everything.push_back(b);
    broadcast_all(everything);
  }
  build_units(*s, model);
  build_flats(*s);
  if (s->strategy == ShardingStrategy::full_shard)  // a unit is gathered only around its use
    for (std::size_t u = 0; u < s->units.size(); ++u) free_unit(*s, u);
  state_ = s;
  register_backward_hooks();
  register_unit_calls();
}

TRAINPP_INLINE void ZeroSharding::before_forward(torch::nn::Module&) {
  if (!state_) return;
  State& s = *state_;
  if (!s.validated) {
    s.probing = true;
    for (std::size_t u = 0; u < s.units.size(); ++u) gather(s, u, true);
    return;
  }
  if (s.strategy == ShardingStrategy::full_shard) gather(s, s.root, true);
}

TRAINPP_INLINE void ZeroSharding::after_forward(torch::nn::Module&) {
  if (!state_) return;
  State& s = *state_;
  const bool probed = s.probing;
  if (probed) finish_probe(s);
  if (s.strategy != ShardingStrategy::full_shard) return;
  if (probed)
    for (std::size_t u = 0; u < s.units.size(); ++u) free_unit(s, u);
  else
    free_unit(s, s.root);
}

TRAINPP_INLINE void ZeroSharding::after_backward(torch::nn::Module&, bool sync) {
  if (!state_) return;
  State& s = *state_;
  for (std::size_t u = 0; u < s.units.size(); ++u)
    if (!s.units[u].launched) launch_reduce(s, u);
  for (auto& f : s.flats) {
    if (!f.reducing_part.defined()) continue;
    wait(s, f.reducing, "gradient reduce-scatter");
    f.reducing = CollectiveHandle();
    // Hybrid: the node's sum, summed with the same shard's on the other nodes. Every flat's exchange
    // starts before the first is waited for, so they overlap.
    if (s.replicas) {
      std::vector<torch::Tensor> part{f.reducing_part};
      f.reducing = s.replicas->all_reduce_sum_async(part);
    }
  }
  for (auto& f : s.flats) {
    if (!f.reducing_part.defined()) continue;
    if (s.replicas) s.replicas->wait(f.reducing, "gradient all-reduce across nodes");
    f.reducing = CollectiveHandle();
    f.grad_shard.add_(f.reducing_part.to(s.offload));
    f.reducing_part = torch::Tensor();
    f.reducing_flat = torch::Tensor();
  }
  for (auto& unit : s.units) {
    unit.pending = static_cast<std::int64_t>(unit.params.size());
    unit.launched = false;
  }
  if (s.probing) finish_probe(s);
  if (s.strategy == ShardingStrategy::full_shard)
    for (std::size_t u = 0; u < s.units.size(); ++u) free_unit(s, u);
  if (!sync) return;
  for (auto& f : s.flats) f.grad_shard.div_(static_cast<double>(s.data_parallel_world));
  for (auto& piece : s.pieces)
    if (piece.data.numel() > 0) piece.data.mutable_grad() = s.flats[piece.flat].grad_shard.narrow(0, piece.begin, piece.data.numel());
}

TRAINPP_INLINE torch::Tensor ZeroSharding::clip_grad_norm(const std::vector<torch::Tensor>&, double max_norm) {
  State& s = *state_;
  torch::NoGradGuard no_grad;
  auto squared = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(s.offload));
  for (const auto& f : s.flats) squared += at::linalg_vector_norm(f.grad_shard, 2).to(torch::kFloat32).square();
  if (s.group) {
    auto on_device = squared.to(s.device);
    s.group->all_reduce_sum(on_device);
    squared = on_device.to(s.offload);
  }
  auto total = squared.sqrt();
  const auto coef = at::clamp_max(at::reciprocal(total + 1e-6) * max_norm, 1.0);
  for (auto& f : s.flats) f.grad_shard.mul_(coef.to(f.grad_shard.scalar_type()));
  return total;
}

TRAINPP_INLINE void ZeroSharding::after_step(torch::nn::Module&) {
  State& s = *state_;
  torch::NoGradGuard no_grad;
  if (s.strategy == ShardingStrategy::shard_grad_op) {
    for (std::size_t f = 0; f < s.flats.size(); ++f) start_gather(s, f, /*again=*/true);
    for (auto& f : s.flats) finish_gather(s, f);
  }
  for (auto& f : s.flats) f.grad_shard.zero_();
}

TRAINPP_INLINE void ZeroSharding::save_model_files(torch::nn::Module& model, const std::filesystem::path& dir, bool main_process) {
  if (options_.state_dict_type == StateDictType::full_state_dict) {
    auto scope = full_parameters();
    if (main_process) trainpp::save_model(model, dir);
    return;
  }
  if (options_.hybrid && joined() && environment_.rank >= shard_size_) return;  // a replica on another node
  const State& s = *state_;
  std::vector<ShardedParameter> parameters;
  for (std::size_t k = 0; k < s.params.size(); ++k) {
    ShardedParameter parameter{.name = s.names[k],
                               .shape = s.params[k].sizes().vec(),
                               .dtype = s.params[k].scalar_type(),
                               .piece = piece_of(*state_, k).data};
    if (main_process)
      for (int r = 0; r < s.world; ++r) {
        const auto [begin, length] = piece_range(s, k, r);
        if (length > 0) parameter.pieces.push_back({r, begin, length});
      }
    parameters.push_back(std::move(parameter));
  }
  std::vector<std::pair<std::string, torch::Tensor>> whole;
  if (main_process) {
    for (const auto& item : model.named_buffers(true))
      if (item.value().defined()) whole.emplace_back(item.key(), item.value());
    for (const auto& item : model.named_parameters(true))
      if (!s.index_of_name.contains(item.key())) whole.emplace_back(item.key(), item.value());  // frozen: whole, like a buffer
  }
  save_sharded_model(dir, s.rank, s.world, parameters, whole, main_process);
}

TRAINPP_INLINE void ZeroSharding::load_model_files(torch::nn::Module& model, const std::filesystem::path& dir) {
  State& s = *state_;
  torch::NoGradGuard no_grad;
  if (std::filesystem::exists(dir / model_weights_name)) {
    auto scope = full_parameters();
    trainpp::load_model(model, dir / model_weights_name, /*strict=*/true);
    for (auto& f : s.flats)
      if (!f.shard_is_view) f.shard.copy_(f.full.narrow(0, s.rank * f.shard_numel, f.shard_numel));
    return;
  }
  const auto index_path = dir / model_shards_index_name;
  if (!std::filesystem::exists(index_path))
    throw error("{} holds neither {} nor {}", dir.string(), model_weights_name, model_shards_index_name);
  const auto index = read_json_file(index_path);
  const auto world = index.value("world_size", -1);
  if (world != s.world)
    throw error("{}: the model is sharded over {} processes, this run has {}; consolidate it first "
                "(trainpp-consolidate {})", index_path.string(), world, s.world, dir.string());
  auto own = load_safetensors(dir / model_shard_name(s.rank));
  std::map<std::string, torch::Tensor> tensors(own.tensors.begin(), own.tensors.end());
  for (std::size_t k = 0; k < s.params.size(); ++k) {
    const auto& name = s.names[k];
    if (!index["parameters"].contains(name))
      throw error("{}: the sharded model lacks the parameter {}", index_path.string(), name);
    const auto shape = index["parameters"][name].value("shape", std::vector<std::int64_t>{});
    if (shape != s.params[k].sizes().vec())
      throw error("{}: parameter {} has shape [{}] there, [{}] in the model", index_path.string(), name,
                  fmt::join(shape, ", "), fmt::join(s.params[k].sizes(), ", "));
    Piece piece = piece_of(s, k);
    if (piece.data.numel() == 0) continue;
    const auto it = tensors.find(name);
    if (it == tensors.end() || it->second.numel() != piece.data.numel())
      throw error("{}: rank {}'s piece of {} is missing or of another size (was the model wrapped in the same "
                  "units?)", (dir / model_shard_name(s.rank)).string(), s.rank, name);
    piece.data.copy_(it->second.view(-1));
  }
  if (s.rank != 0) own = load_safetensors(dir / model_shard_name(0));
  std::map<std::string, torch::Tensor> rank0(own.tensors.begin(), own.tensors.end());
  for (const auto& name : index.value("buffers", std::vector<std::string>{})) {
    auto target = model.named_buffers(true).find(name);
    if (target == nullptr) target = model.named_parameters(true).find(name);
    const auto it = rank0.find(name);
    if (target == nullptr || it == rank0.end()) throw error("{}: buffer {} is not in the model or the shard", index_path.string(), name);
    target->copy_(it->second);
  }
  if (s.strategy == ShardingStrategy::shard_grad_op) {
    for (std::size_t f = 0; f < s.flats.size(); ++f) start_gather(s, f, /*again=*/true);
    for (auto& f : s.flats) finish_gather(s, f);
  }
}

TRAINPP_INLINE std::vector<torch::Tensor> ZeroSharding::owned_tensors() const {
  std::vector<torch::Tensor> out;
  if (!state_) return out;
  for (const auto& f : state_->flats) {
    out.push_back(f.full);
    if (!f.shard_is_view) out.push_back(f.shard);
  }
  return out;
}

TRAINPP_INLINE std::vector<torch::Tensor> ZeroSharding::owned_gradients() const {
  std::vector<torch::Tensor> out;
  if (!state_) return out;
  for (const auto& f : state_->flats) out.push_back(f.grad_shard);
  return out;
}

TRAINPP_INLINE std::vector<std::string> ZeroSharding::describe_units() const {
  std::vector<std::string> out;
  if (!state_) return out;
  for (const auto& unit : state_->units) {
    std::int64_t n = 0;
    for (auto k : unit.params) n += state_->params[k].numel();
    out.push_back(fmt::format("{} ({}): {} parameters", unit.name.empty() ? "<root>" : unit.name, unit.type, n));
  }
  return out;
}

TRAINPP_INLINE const char* ZeroSharding::strategy_label(ShardingStrategy strategy) {
  switch (strategy) {
    case ShardingStrategy::no_shard: return "no_shard";
    case ShardingStrategy::shard_grad_op: return "shard_grad_op";
    case ShardingStrategy::full_shard: return "full_shard";
  }
  return "?";
}

TRAINPP_INLINE void ZeroSharding::finish_probe(State& s) {
  s.probing = false;
  if (s.validated) return;
  s.validated = true;
  std::vector<std::string> missed;
  for (std::size_t u = 0; u < s.units.size(); ++u)
    if (u != s.root && !s.units[u].entered) missed.push_back(fmt::format("{} ({})", s.units[u].name, s.units[u].type));
  if (!missed.empty() && s.strategy == ShardingStrategy::full_shard)
    throw error("full_shard: the wrapped unit{} {} {} not called through trainpp::call(block, ...) in the forward, "
                "so FullShard cannot gather {} parameters around {}; call {} that way, or wrap other modules "
                "(fsdp_transformer_layer_cls_to_wrap / min_num_params)",
                missed.size() > 1 ? "s" : "", fmt::join(missed, ", "), missed.size() > 1 ? "were" : "was",
                missed.size() > 1 ? "their" : "its", missed.size() > 1 ? "them" : "it",
                missed.size() > 1 ? "them" : "it");
}

TRAINPP_INLINE void ZeroSharding::register_backward_hooks() {
  std::weak_ptr<State> weak = state_;
  for (std::size_t k = 0; k < state_->params.size(); ++k) {
    auto accumulator = torch::autograd::impl::grad_accumulator(state_->params[k]);
    const auto key = accumulator->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [weak, k](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
          if (auto s = weak.lock()) {
            auto u = s->unit_of[k];
            if (--s->units[u].pending == 0) launch_reduce(*s, u);
          }
          return outputs;
        }));
    hooks_.push_back({accumulator, key});
  }
}

TRAINPP_INLINE void ZeroSharding::register_unit_calls() {
  std::weak_ptr<State> weak = state_;
  auto& registry = detail::module_call_registry();
  for (std::size_t u = 0; u < state_->units.size(); ++u) {
    if (u == state_->root) continue;
    ModuleCallHooks hooks;
    hooks.checkpoint = options_.activation_checkpointing;
    hooks.before = [weak, u] {
      auto s = weak.lock();
      if (!s) return;
      if (s->probing && !s->units[u].entered) {
        s->units[u].entered = true;
        s->forward_order.push_back(u);
      }
      gather(*s, u, true);
      // Not in evaluation, nor with activation checkpointing (whose forward runs without grad and
      // whose recomputation runs inside backward, where the next unit is already done).
      if (s->options.forward_prefetch && torch::GradMode::is_enabled() && !s->options.activation_checkpointing)
        if (auto next = neighbour(*s, u, +1)) prefetch(*s, *next);
    };
    hooks.after = [weak, u](const std::vector<torch::Tensor>& outputs, bool known) {
      auto s = weak.lock();
      if (!s || s->strategy != ShardingStrategy::full_shard || s->probing) return;
      if (torch::GradMode::is_enabled()) {
        if (!known) return;  // no output to hook: stays gathered until after_backward
        for (const auto& out : outputs)
          if (out.defined() && out.requires_grad())
            const_cast<torch::Tensor&>(out).register_hook([weak, u](const torch::Tensor&) {
              if (auto state = weak.lock()) {
                gather(*state, u, true);
                if (state->options.backward_prefetch == BackwardPrefetch::backward_pre)
                  if (auto next = neighbour(*state, u, -1)) prefetch(*state, *next);
              }
            });
      }
      free_unit(*s, u);
    };
    registry[state_->units[u].module] = std::move(hooks);
    registered_.push_back(state_->units[u].module);
  }
}

TRAINPP_INLINE void ZeroSharding::release() {
  for (auto& [accumulator, key] : hooks_)
    if (accumulator) accumulator->del_post_hook(key);
  hooks_.clear();
  for (const auto* m : registered_) detail::module_call_registry().erase(m);
  registered_.clear();
}

TRAINPP_INLINE void ZeroSharding::join_hybrid_groups() {
  const int per_node = environment_.local_world_size, world = world_size();
  if (world % per_node != 0 || environment_.rank % per_node != environment_.local_rank)
    throw error("{}: shards within a node, so every node must run as many processes (LOCAL_WORLD_SIZE {}) with "
                "consecutive ranks; rank {} has local rank {} in a job of {}", label(), per_node,
                environment_.rank, environment_.local_rank, world);
  const int node = environment_.rank / per_node, nodes = world / per_node;
  shard_rank_ = environment_.local_rank;
  shard_size_ = per_node;
  if (per_node == world) {
    shard_group_ = group_;  // one node: plain sharding
    return;
  }
  std::vector<int> node_ranks, replica_ranks;
  for (int i = 0; i < per_node; ++i) node_ranks.push_back(node * per_node + i);
  for (int n = 0; n < nodes; ++n) replica_ranks.push_back(n * per_node + shard_rank_);
  // Every process creates its node's group first, then its replica group: no two wait on each other.
  if (per_node > 1)
    shard_group_ = std::make_shared<ProcessGroup>(group_->subgroup(fmt::format("hybrid/node{}", node), node_ranks));
  replica_group_ = std::make_shared<ProcessGroup>(group_->subgroup(fmt::format("hybrid/replica{}", shard_rank_), replica_ranks));
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
