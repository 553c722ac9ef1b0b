#pragma once
// What every multi-process sharding policy shares: joining the job a launcher started, and the
// collectives the Trainer needs beside training (checkpoint barriers, evaluation sums and gathers).

#include <trainpp/detail/config.hpp>
#include <trainpp/args.hpp>
#include <trainpp/distributed/launch_environment.hpp>
#include <trainpp/distributed/process_group.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#if TRAINPP_DEFINITIONS
#include <chrono>
#include <map>
#endif

namespace trainpp::detail {

/// The processes of a job, as one sharding policy sees them. Without a launcher (one process) nothing
/// is joined and every collective is a no-op; a launched single process joins a group of one when
/// --ddp_backend names a backend (a single-rank job that still runs every collective: how the GPU
/// check exercises NCCL on one card).
class JoinedProcesses {
 public:
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
                                              std::int64_t num_samples, double pad);

 protected:
  /// Reads the launcher's environment and joins the job (ddp_backend, ddp_timeout).
  void join(const TrainingArguments& args, torch::Device device);
  [[nodiscard]] bool joined() const { return static_cast<bool>(group_); }

  /// Copies rank 0's values into every process's `tensors`.
  void broadcast_all(std::vector<torch::Tensor>& tensors);

  LaunchEnvironment environment_;
  std::shared_ptr<ProcessGroup> group_;
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE torch::Tensor JoinedProcesses::gather_in_order(const torch::Tensor& local, std::int64_t batch_size,
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

TRAINPP_INLINE void JoinedProcesses::join(const TrainingArguments& args, torch::Device device) {
  environment_ = detect_launch_environment();
  if (environment_.is_distributed() || (environment_.launcher != Launcher::none && args.ddp_backend))
    group_ = std::make_shared<ProcessGroup>(ProcessGroup::join(environment_, args.ddp_backend.value_or(""),
                                                               std::chrono::seconds(args.ddp_timeout), device));
}

TRAINPP_INLINE void JoinedProcesses::broadcast_all(std::vector<torch::Tensor>& tensors) {
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

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp::detail
