#pragma once
// DataParallel: HF's DDP (FSDP NO_SHARD) as a sharding slot — every process holds the whole model
// and optimizer, trains on its share of each global batch, and gradients are averaged across
// processes with bucketed allreduces that start during backward.

#include <trainpp/detail/config.hpp>
#include <trainpp/args.hpp>
#include <trainpp/distributed/launch_environment.hpp>
#include <trainpp/sharding/joined_processes.hpp>
#include <trainpp/optim/clip.hpp>

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#if TRAINPP_DEFINITIONS
#include <torch/csrc/autograd/utils/lambda_post_hook.h>

#include <map>
#endif

namespace trainpp {

/// Data parallelism over the processes a launcher started (torchrun, trainpp-launch, srun, mpirun:
/// see detect_launch_environment), as torch's DistributedDataParallel does it:
/// - at prepare(): the model moves to this process's device, and rank 0's parameters and buffers are
///   broadcast, so every process starts from the same weights;
/// - gradients are summed across processes and divided by their number: parameters are grouped in
///   buckets laid out as DDP lays them out (see build_buckets), reduced last layers first, roughly the
///   order backward produces their gradients, and each bucket's allreduce starts from a hook on the
///   parameters' gradient accumulators as soon as its last gradient is ready, overlapping the rest of
///   backward. Buckets start in the same order on every process, as the collectives require;
/// - no communication on the micro-batches of an accumulation window before the last (DDP's no_sync):
///   the loop says which one is last through set_gradient_sync;
/// - with ddp_broadcast_buffers (default), rank 0's buffers (batch-norm statistics) are broadcast
///   before every training forward.
/// Parameters that get no gradient in a backward take part with zeros (find_unused_parameters).
/// Without a launcher (one process) it behaves as SingleDevice; a launched single process joins a
/// group of one when --ddp_backend names a backend.
class DataParallel : public detail::JoinedProcesses {
 public:
  DataParallel() = default;
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;
  DataParallel(DataParallel&& other) noexcept = default;
  DataParallel& operator=(DataParallel&&) = delete;
  ~DataParallel() { remove_hooks(); }

  /// Reads ddp_backend, ddp_timeout, ddp_bucket_cap_mb, ddp_broadcast_buffers and joins the job.
  void configure(const TrainingArguments& args, torch::Device device);

  void prepare(torch::nn::Module& model, torch::Device device);

  void set_gradient_sync(bool sync) {
    if (state_) state_->sync = sync;
  }

  void before_forward(torch::nn::Module& model) {
    if (!group_ || !broadcast_buffers_ || !model.is_training()) return;
    auto buffers = model.buffers();
    broadcast_all(buffers);
  }

  /// At the end of a window: starts the buckets backward did not (unused parameters), waits for every
  /// allreduce and writes the averaged gradients back.
  void after_backward(torch::nn::Module&, bool sync);

  void after_step(torch::nn::Module&) const {}

  /// Gradients are the same on every process after the allreduce: the local norm is the global one.
  [[nodiscard]] torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) const {
    return clip_grad_norm_(params, max_norm);
  }

 private:
  struct Bucket {
    std::vector<std::size_t> params;  ///< indices into State::params
    torch::Tensor flat;               ///< the bucket's gradients, flattened, reduced in place
    std::int64_t pending = 0;         ///< gradients not yet ready in this backward
    bool launched = false;
    CollectiveHandle work;
  };
  /// What the gradient hooks reach: shared with them, so that the policy can move.
  struct State {
    std::vector<torch::Tensor> params;
    std::vector<std::size_t> bucket_of;  ///< parameter index -> bucket index
    std::vector<Bucket> buckets;
    std::size_t next_bucket = 0;  ///< buckets start strictly in index order
    bool sync = true;
    std::shared_ptr<ProcessGroup> group;
  };

  /// DDP's bucket assignment (with find_unused_parameters, as HF asks for a plain module, and so never
  /// rebuilt): parameters in registration order fill one open bucket per (dtype, device), which
  /// closes once it holds at least its cap (the first of each kind first_bucket_cap_bytes_, later ones
  /// bucket_cap_bytes_); buckets are ordered by their first parameter, then reversed. The layout
  /// decides which chunk of Gloo's ring allreduce each element falls in, and so the order in which
  /// its N addends are summed: with DDP's layout the sums are DDP's, bit for bit.
  void build_buckets(State& s);
  static void launch(State& s, std::size_t b);

  void register_hooks();

  void remove_hooks() {
    for (auto& [accumulator, key] : hooks_)
      if (accumulator) accumulator->del_post_hook(key);
    hooks_.clear();
  }

  std::int64_t bucket_cap_bytes_ = 25 * 1024 * 1024;
  std::int64_t first_bucket_cap_bytes_ = 1024 * 1024;
  bool broadcast_buffers_ = true;
  std::shared_ptr<State> state_;
  std::vector<std::pair<decltype(torch::autograd::impl::grad_accumulator(std::declval<const torch::Tensor&>())), std::uintptr_t>> hooks_;
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE void DataParallel::configure(const TrainingArguments& args, torch::Device device) {
  bucket_cap_bytes_ = args.ddp_bucket_cap_mb.value_or(25) * 1024 * 1024;
  // DDP's first bucket is 1 MiB unless the cap was given (BucketCapacityConfig).
  first_bucket_cap_bytes_ = args.ddp_bucket_cap_mb ? bucket_cap_bytes_ : std::int64_t{1024 * 1024};
  broadcast_buffers_ = args.ddp_broadcast_buffers.value_or(true);
  join(args, device);
}

TRAINPP_INLINE void DataParallel::prepare(torch::nn::Module& model, torch::Device device) {
  model.to(device);
  if (!group_) return;
  auto state = std::make_shared<State>();
  for (auto& p : model.parameters())
    if (p.requires_grad()) state->params.push_back(p);
  // The same weights everywhere: rank 0's, as DDP's constructor does.
  auto everything = model.parameters();
  for (auto& b : model.buffers()) everything.push_back(b);
  broadcast_all(everything);
  build_buckets(*state);
  state_ = state;
  register_hooks();
}

TRAINPP_INLINE void DataParallel::after_backward(torch::nn::Module&, bool sync) {
  if (!state_ || !sync) return;
  State& s = *state_;
  for (std::size_t b = s.next_bucket; b < s.buckets.size(); ++b) launch(s, b);
  s.next_bucket = s.buckets.size();
  const double world = static_cast<double>(world_size());
  for (auto& bucket : s.buckets) {
    group_->wait(bucket.work, "gradient allreduce");
    bucket.work = CollectiveHandle();
    bucket.flat.div_(world);
    std::int64_t offset = 0;
    for (const auto index : bucket.params) {
      auto& p = s.params[index];
      const auto n = p.numel();
      auto averaged = bucket.flat.narrow(0, offset, n).view_as(p);
      if (p.grad().defined()) p.mutable_grad().copy_(averaged);
      else p.mutable_grad() = averaged.clone();
      offset += n;
    }
    bucket.pending = static_cast<std::int64_t>(bucket.params.size());
    bucket.launched = false;
  }
  s.next_bucket = 0;
  // Until the loop says otherwise, a backward outside a training window starts no collective.
  s.sync = false;
}

TRAINPP_INLINE void DataParallel::build_buckets(State& s) {
  struct Open {
    std::vector<std::size_t> params;
    std::int64_t bytes = 0;
    std::int64_t cap = 0;
  };
  std::map<std::pair<int, std::string>, Open> open;
  std::vector<std::vector<std::size_t>> assigned;
  for (std::size_t k = 0; k < s.params.size(); ++k) {
    const auto& p = s.params[k];
    auto& bucket = open.try_emplace({static_cast<int>(p.scalar_type()), p.device().str()},
                                    Open{{}, 0, first_bucket_cap_bytes_}).first->second;
    bucket.params.push_back(k);
    bucket.bytes += p.numel() * static_cast<std::int64_t>(p.element_size());
    if (bucket.bytes >= bucket.cap) {
      assigned.push_back(std::move(bucket.params));
      bucket = Open{{}, 0, bucket_cap_bytes_};
    }
  }
  for (auto& [kind, bucket] : open)
    if (!bucket.params.empty()) assigned.push_back(std::move(bucket.params));
  std::ranges::sort(assigned, {}, [](const auto& params) { return params.front(); });
  std::ranges::reverse(assigned);

  s.bucket_of.assign(s.params.size(), 0);
  for (auto& params : assigned) {
    Bucket bucket;
    std::int64_t numel = 0;
    for (const auto i : params) numel += s.params[i].numel();
    bucket.flat = torch::zeros({numel}, s.params[params.front()].options().requires_grad(false));
    bucket.pending = static_cast<std::int64_t>(params.size());
    for (const auto i : params) s.bucket_of[i] = s.buckets.size();
    bucket.params = std::move(params);
    s.buckets.push_back(std::move(bucket));
  }
  s.group = group_;
}

TRAINPP_INLINE void DataParallel::launch(State& s, std::size_t b) {
  auto& bucket = s.buckets[b];
  if (bucket.launched) return;
  torch::NoGradGuard no_grad;
  std::int64_t offset = 0;
  for (const auto index : bucket.params) {
    const auto& p = s.params[index];
    const auto n = p.numel();
    auto slot = bucket.flat.narrow(0, offset, n);
    if (p.grad().defined()) slot.copy_(p.grad().reshape(-1));
    else slot.zero_();
    offset += n;
  }
  std::vector<torch::Tensor> tensors{bucket.flat};
  bucket.work = s.group->all_reduce_sum_async(tensors);
  bucket.launched = true;
}

TRAINPP_INLINE void DataParallel::register_hooks() {
  std::weak_ptr<State> weak = state_;
  for (std::size_t i = 0; i < state_->params.size(); ++i) {
    auto accumulator = torch::autograd::impl::grad_accumulator(state_->params[i]);
    const auto key = accumulator->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [weak, i](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
          if (auto s = weak.lock(); s && s->sync) {
            auto& bucket = s->buckets[s->bucket_of[i]];
            if (--bucket.pending == 0) {
              // Start every consecutive ready bucket from the next one due, never out of order.
              while (s->next_bucket < s->buckets.size() && s->buckets[s->next_bucket].pending <= 0)
                launch(*s, s->next_bucket++);
            }
          }
          return outputs;
        }));
    // Holding the accumulator keeps it (and the hook) alive: the parameter only holds it weakly.
    hooks_.push_back({accumulator, key});
  }
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
