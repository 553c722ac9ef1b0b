#pragma once
// DataParallel: HF's DDP (FSDP NO_SHARD) as a sharding slot — every process holds the whole model
// and optimizer, trains on its share of each global batch, and gradients are averaged across
// processes with bucketed allreduces that start during backward.

#include <trainpp/args.hpp>
#include <trainpp/distributed/launch_environment.hpp>
#include <trainpp/distributed/process_group.hpp>
#include <trainpp/optim/clip.hpp>

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace trainpp {

/// Data parallelism over the processes a launcher started (torchrun, trainpp-launch, srun, mpirun:
/// see detect_launch_environment), as torch's DistributedDataParallel does it:
/// - at prepare(): the model moves to this process's device, and rank 0's parameters and buffers are
///   broadcast, so every process starts from the same weights;
/// - gradients are summed across processes and divided by their number: parameters are grouped in
///   buckets of ddp_bucket_cap_mb (25 MiB) in reverse registration order, roughly the order backward
///   produces their gradients, and each bucket's allreduce starts from a hook on the parameters'
///   gradient accumulators as soon as its last gradient is ready, overlapping the rest of backward.
///   Buckets start in the same order on every process, as the collectives require;
/// - no communication on the micro-batches of an accumulation window before the last (DDP's no_sync):
///   the loop says which one is last through set_gradient_sync;
/// - with ddp_broadcast_buffers (default), rank 0's buffers (batch-norm statistics) are broadcast
///   before every training forward.
/// Parameters that get no gradient in a backward take part with zeros (find_unused_parameters).
/// Without a launcher (one process) it behaves as SingleDevice; a launched single process joins a
/// group of one when --ddp_backend names a backend.
class DataParallel {
 public:
  DataParallel() = default;
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;
  DataParallel(DataParallel&& other) noexcept = default;
  DataParallel& operator=(DataParallel&&) = delete;
  ~DataParallel() { remove_hooks(); }

  /// Reads ddp_backend, ddp_timeout, ddp_bucket_cap_mb, ddp_broadcast_buffers and joins the job.
  void configure(const TrainingArguments& args, torch::Device device) {
    environment_ = detect_launch_environment();
    bucket_cap_bytes_ = args.ddp_bucket_cap_mb.value_or(25) * 1024 * 1024;
    broadcast_buffers_ = args.ddp_broadcast_buffers.value_or(true);
    // One process joins only when asked for a backend under a launcher: a single-rank job that still
    // runs every collective (how the GPU check exercises NCCL on one card).
    if (environment_.is_distributed() || (environment_.launcher != Launcher::none && args.ddp_backend))
      group_ = std::make_shared<ProcessGroup>(ProcessGroup::join(environment_, args.ddp_backend.value_or(""),
                                                                 std::chrono::seconds(args.ddp_timeout), device));
  }

  void prepare(torch::nn::Module& model, torch::Device device) {
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
  void after_backward(torch::nn::Module&, bool sync) {
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

  void after_step(torch::nn::Module&) const {}

  /// Gradients are the same on every process after the allreduce: the local norm is the global one.
  [[nodiscard]] torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) const {
    return clip_grad_norm_(params, max_norm);
  }

  [[nodiscard]] int rank() const { return environment_.is_distributed() ? environment_.rank : 0; }
  [[nodiscard]] int world_size() const { return environment_.is_distributed() ? environment_.world_size : 1; }
  [[nodiscard]] const LaunchEnvironment& environment() const { return environment_; }
  /// The joined group (valid with more than one process).
  [[nodiscard]] ProcessGroup& process_group() { return *group_; }

  /// Returns once every process has called it (checkpoints: every rank's state is written first).
  void barrier() {
    if (group_) group_->barrier();
  }

  /// Sums a tensor across processes in place (evaluation's loss and counts).
  void all_reduce_sum(torch::Tensor& tensor) {
    if (world_size() > 1) group_->all_reduce_sum(tensor);
  }
  /// Evaluation results back in the data set's order: each process holds the rows of its batches
  /// (batch_size each, the last one possibly fewer: see DataLoader::real_samples); batch b of process
  /// r is the global batch b·world + r. Rows of different length (dim 1) are padded with `pad` to the
  /// longest, as accelerate's pad_across_processes does before gathering.
  [[nodiscard]] torch::Tensor gather_in_order(const torch::Tensor& local, std::int64_t batch_size,
                                              std::int64_t num_samples, double pad) {
    if (world_size() == 1) return local;
    auto t = local.dim() == 0 ? local.unsqueeze(0) : local;
    const auto long_options = torch::TensorOptions().dtype(torch::kLong).device(t.device());
    auto shape = torch::tensor({t.size(0), t.dim() >= 2 ? t.size(1) : 0}, long_options);
    const auto shapes = group_->all_gather(shape);
    std::int64_t most_rows = 0, longest = 0;
    std::vector<std::int64_t> rows;
    for (const auto& s : shapes) {
      const auto host = s.cpu();
      rows.push_back(host[0].item<std::int64_t>());
      most_rows = std::max(most_rows, rows.back());
      longest = std::max(longest, host[1].item<std::int64_t>());
    }
    auto padded_shape = t.sizes().vec();
    padded_shape[0] = most_rows;
    if (t.dim() >= 2) padded_shape[1] = longest;
    auto padded = torch::full(padded_shape, pad, t.options());
    auto target = padded.narrow(0, 0, t.size(0));
    if (t.dim() >= 2) target = target.narrow(1, 0, t.size(1));
    target.copy_(t);
    const auto parts = group_->all_gather(padded);

    const std::int64_t world = world_size();
    std::vector<torch::Tensor> ordered;
    for (std::int64_t round = 0; round * world * batch_size < num_samples; ++round)
      for (std::int64_t r = 0; r < world; ++r) {
        const auto first = round * batch_size;
        const auto count = std::clamp<std::int64_t>(num_samples - (round * world + r) * batch_size, 0, batch_size);
        if (count == 0 || first >= rows[static_cast<std::size_t>(r)]) continue;
        ordered.push_back(parts[static_cast<std::size_t>(r)].narrow(0, first, std::min(count, rows[static_cast<std::size_t>(r)] - first)));
      }
    return ordered.empty() ? padded.narrow(0, 0, 0) : torch::cat(ordered, 0);
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

  void broadcast_all(std::vector<torch::Tensor>& tensors) {
    if (tensors.empty()) return;
    torch::NoGradGuard no_grad;
    // One flat broadcast per dtype instead of one per tensor.
    std::map<c10::ScalarType, std::vector<torch::Tensor>> by_dtype;
    for (auto& t : tensors) by_dtype[t.scalar_type()].push_back(t);
    for (auto& [dtype, group] : by_dtype) {
      std::vector<torch::Tensor> flat_views;
      for (auto& t : group) flat_views.push_back(t.reshape(-1));
      std::vector<torch::Tensor> flat{torch::cat(flat_views)};
      group_->broadcast(flat, 0);
      std::int64_t offset = 0;
      for (auto& t : group) {
        t.copy_(flat[0].narrow(0, offset, t.numel()).view_as(t));
        offset += t.numel();
      }
    }
  }

  void build_buckets(State& s) {
    s.bucket_of.assign(s.params.size(), 0);
    Bucket current;
    std::int64_t bytes = 0;
    auto close = [&] {
      if (current.params.empty()) return;
      std::int64_t numel = 0;
      for (const auto i : current.params) numel += s.params[i].numel();
      const auto& first = s.params[current.params.front()];
      current.flat = torch::zeros({numel}, first.options().requires_grad(false));
      current.pending = static_cast<std::int64_t>(current.params.size());
      for (const auto i : current.params) s.bucket_of[i] = s.buckets.size();
      s.buckets.push_back(std::move(current));
      current = Bucket{};
      bytes = 0;
    };
    for (std::size_t k = s.params.size(); k-- > 0;) {
      const auto& p = s.params[k];
      const auto size = p.numel() * static_cast<std::int64_t>(p.element_size());
      if (!current.params.empty() && (bytes + size > bucket_cap_bytes_ ||
                                      s.params[current.params.front()].scalar_type() != p.scalar_type() ||
                                      s.params[current.params.front()].device() != p.device()))
        close();
      current.params.push_back(k);
      bytes += size;
    }
    close();
    s.group = group_;
  }

  static void launch(State& s, std::size_t b) {
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

  void register_hooks() {
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

  void remove_hooks() {
    for (auto& [accumulator, key] : hooks_)
      if (accumulator) accumulator->del_post_hook(key);
    hooks_.clear();
  }

  LaunchEnvironment environment_;
  std::shared_ptr<ProcessGroup> group_;
  std::int64_t bucket_cap_bytes_ = 25 * 1024 * 1024;
  bool broadcast_buffers_ = true;
  std::shared_ptr<State> state_;
  std::vector<std::pair<decltype(torch::autograd::impl::grad_accumulator(std::declval<const torch::Tensor&>())), std::uintptr_t>> hooks_;
};

}  // namespace trainpp
