#pragma once
// The processes of a job, joined: a rendezvous through c10d's TCPStore and a collective backend:
// NCCL on CUDA devices (c10d's ProcessGroupNCCL), c10d's Gloo (ProcessGroupGloo) on CPUs. Both are
// LibTorch's own engines, the ones torch.distributed runs, so trainpp's collectives sum in the order
// torch's DDP does.

#include <trainpp/detail/config.hpp>
#include <trainpp/distributed/launch_environment.hpp>

#include <torch/csrc/distributed/c10d/Backend.hpp>
// NCCL: LibTorch's CMake config does not say whether it was built with NCCL; trainpp's CMake package
// defines USE_C10D_NCCL and puts nccl.h on the include path when LibTorch is a CUDA build
// (cmake/trainppDependencies.cmake). A build by hand defines both itself.
#if defined(USE_C10D_NCCL) && __has_include(<nccl.h>)
#define TRAINPP_HAS_NCCL 1
#endif

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

// The rendezvous store and the backends' own headers: only ProcessGroup's definitions create them.
#if TRAINPP_DEFINITIONS
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
// Gloo: trainpp's CMake package defines USE_C10D_GLOO (as LibTorch's own build does) and finds Gloo's
// headers, which the pip wheel lacks (Debian: libgloo-dev). A build by hand without them (a CUDA
// machine that only needs NCCL) leaves it undefined and loses the gloo backend alone.
#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef TRAINPP_HAS_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <algorithm>
#include <cstdlib>
#endif

namespace trainpp {

/// A collective in flight: wait() returns once it is done here, or throws what went wrong.
class CollectiveHandle {
 public:
  CollectiveHandle() = default;
  explicit CollectiveHandle(c10::intrusive_ptr<c10d::Work> work) : work_(std::move(work)) {}
  [[nodiscard]] bool valid() const { return static_cast<bool>(work_); }
  void wait(std::chrono::milliseconds timeout) const {
    if (work_) work_->wait(timeout);
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
};

/// One process's handle on the job: its rank, the world size and the collectives data parallelism
/// needs. Every collective is called by every process in the same order; a failure (another process
/// died, the timeout passed) is a trainpp::Error naming the collective, rather than a hang.
class ProcessGroup {
 public:
  /// Joins the job `env` describes: rank 0 hosts the TCPStore at MASTER_ADDR:MASTER_PORT (unless the
  /// launcher's agent does), every rank connects and creates the backend ("gloo" or "nccl"; empty:
  /// nccl for a CUDA device, else gloo). Waits at most `timeout` for the others.
  static ProcessGroup join(const LaunchEnvironment& env, std::string backend, std::chrono::milliseconds timeout,
                           torch::Device device);

  /// A group of some of the job's processes (`ranks`, global ranks in the order that gives the new
  /// ranks), on the same rendezvous store under a prefix of its own (`name`, unique in the job), as
  /// torch.distributed.new_group does. Only its members call it, and each of them must: creating the
  /// backend connects them. This process's rank in it is its position in `ranks`.
  [[nodiscard]] ProcessGroup subgroup(const std::string& name, const std::vector<int>& ranks) const;

  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int size() const { return size_; }
  [[nodiscard]] const std::string& backend_name() const { return backend_name_; }
  [[nodiscard]] bool valid() const { return static_cast<bool>(backend_); }

  /// Sums `tensors` across processes in place, asynchronously: wait on the result (see wait()).
  [[nodiscard]] CollectiveHandle all_reduce_sum_async(std::vector<torch::Tensor>& tensors);
  /// Sums `tensors` across processes in place.
  void all_reduce_sum(std::vector<torch::Tensor>& tensors) { wait(all_reduce_sum_async(tensors), "allreduce"); }
  void all_reduce_sum(torch::Tensor& tensor) {
    std::vector<torch::Tensor> one{tensor};
    all_reduce_sum(one);
  }
  /// Copies rank `root`'s `tensors` into everyone's, in place.
  void broadcast(std::vector<torch::Tensor>& tensors, int root = 0);
  /// Every process's `tensor` (same shape everywhere), in rank order.
  [[nodiscard]] std::vector<torch::Tensor> all_gather(const torch::Tensor& tensor);
  /// Sums `input` across processes and leaves part r of the sum (output.numel() elements, input
  /// holding size() × as many) in process r's `output`: ZeRO's gradient reduce-scatter.
  [[nodiscard]] CollectiveHandle reduce_scatter_sum_async(torch::Tensor output, torch::Tensor input);
  /// Every process's `input` side by side in `output` (size() × input.numel() elements), in rank
  /// order. `input` may be this rank's part of `output` itself (an in-place gather).
  [[nodiscard]] CollectiveHandle all_gather_into_async(torch::Tensor output, torch::Tensor input);

  /// Returns once every process has called it.
  void barrier() {
    auto token = torch::zeros({1});
    all_reduce_sum(token);
  }

  /// Waits for an asynchronous collective; a failure names it and says what probably happened.
  void wait(const CollectiveHandle& handle, const char* what) const;

 private:
  template <class F>
  c10::intrusive_ptr<c10d::Work> guarded(const char* what, F&& start) const {
    if (!backend_) throw error("the process group is not joined");
    try {
      return start();
    } catch (const std::exception& e) {
      throw error("rank {}: the {} across {} processes failed (another process probably exited, or "
                  "ddp_timeout passed): {}", rank_, what, size_, detail::first_line(e.what()));
    }
  }

  /// The collective engine for `rank` of `size` processes, meeting under `prefix` on `store`.
  static c10::intrusive_ptr<c10d::Backend> make_backend(const std::string& prefix, const std::string& backend, int rank,
                                                        int size, const c10::intrusive_ptr<c10d::Store>& shared_store,
                                                        std::chrono::milliseconds timeout);

  int rank_ = 0;
  int size_ = 1;
  std::chrono::milliseconds timeout_{0};
  std::string backend_name_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::Backend> backend_;  ///< ProcessGroupNCCL or ProcessGroupGloo
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE ProcessGroup ProcessGroup::join(const LaunchEnvironment& env, std::string backend,
                                               std::chrono::milliseconds timeout, torch::Device device) {
  if (backend.empty()) backend = device.is_cuda() ? "nccl" : "gloo";
  ProcessGroup group;
  group.rank_ = env.rank;
  group.size_ = env.world_size;
  group.timeout_ = timeout;
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(env.master_port);
  options.isServer = env.rank == 0 && !env.use_agent_store;
  options.numWorkers = env.use_agent_store ? std::nullopt : std::optional<std::size_t>(env.world_size);
  options.waitWorkers = !env.use_agent_store;
  options.timeout = timeout;
  try {
    group.store_ = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
  } catch (const std::exception& e) {
    throw error("rank {}: cannot {} the rendezvous at {}:{} within ddp_timeout ({} s): {}", env.rank,
                options.isServer ? "host" : "reach", env.master_addr, env.master_port,
                std::chrono::duration_cast<std::chrono::seconds>(timeout).count(), detail::first_line(e.what()));
  }
  // A prefix per backend, as torch does, so that a second group on the same store does not collide.
  group.backend_ = make_backend("trainpp/" + backend, backend, env.rank, env.world_size, group.store_, timeout);
  group.backend_name_ = backend;
  return group;
}

TRAINPP_INLINE ProcessGroup ProcessGroup::subgroup(const std::string& name, const std::vector<int>& ranks) const {
  if (!backend_) throw error("the process group is not joined");
  const auto me = std::ranges::find(ranks, rank_);
  if (me == ranks.end()) throw error("rank {} is not a member of the process group {}", rank_, name);
  ProcessGroup group;
  group.rank_ = static_cast<int>(me - ranks.begin());
  group.size_ = static_cast<int>(ranks.size());
  group.timeout_ = timeout_;
  group.store_ = store_;
  group.backend_name_ = backend_name_;
  group.backend_ = make_backend(fmt::format("trainpp/{}/{}", backend_name_, name), backend_name_, group.rank_,
                                group.size_, store_, timeout_);
  return group;
}

TRAINPP_INLINE CollectiveHandle ProcessGroup::all_reduce_sum_async(std::vector<torch::Tensor>& tensors) {
  c10d::AllreduceOptions options;
  options.reduceOp = c10d::ReduceOp::SUM;  // Gloo has no AVG: callers divide
  return CollectiveHandle(guarded("allreduce", [&] { return backend_->allreduce(tensors, options); }));
}

TRAINPP_INLINE void ProcessGroup::broadcast(std::vector<torch::Tensor>& tensors, int root) {
  if (tensors.empty()) return;
  c10d::BroadcastOptions options;
  options.rootRank = root;
  wait(CollectiveHandle(guarded("broadcast", [&] { return backend_->broadcast(tensors, options); })), "broadcast");
}

TRAINPP_INLINE std::vector<torch::Tensor> ProcessGroup::all_gather(const torch::Tensor& tensor) {
  std::vector<std::vector<torch::Tensor>> outputs(1);
  for (int r = 0; r < size_; ++r) outputs[0].push_back(torch::empty_like(tensor));
  std::vector<torch::Tensor> inputs{tensor.contiguous()};
  wait(CollectiveHandle(guarded("allgather", [&] { return backend_->allgather(outputs, inputs); })), "allgather");
  return outputs[0];
}

TRAINPP_INLINE CollectiveHandle ProcessGroup::reduce_scatter_sum_async(torch::Tensor output, torch::Tensor input) {
  if (input.numel() != output.numel() * size_)
    throw error("reduce-scatter: {} elements do not split into {} parts of {}", input.numel(), size_, output.numel());
  c10d::ReduceScatterOptions options;
  options.reduceOp = c10d::ReduceOp::SUM;
  auto out = output.view(-1), in = input.view(-1);
  return CollectiveHandle(guarded("reduce-scatter", [&] { return backend_->_reduce_scatter_base(out, in, options); }));
}

TRAINPP_INLINE CollectiveHandle ProcessGroup::all_gather_into_async(torch::Tensor output, torch::Tensor input) {
  if (output.numel() != input.numel() * size_)
    throw error("all-gather: {} elements are not {} parts of {}", output.numel(), size_, input.numel());
  auto flat = output.view(-1);
  auto in = input.view(-1);
  return CollectiveHandle(guarded("allgather", [&] { return backend_->_allgather_base(flat, in); }));
}

TRAINPP_INLINE void ProcessGroup::wait(const CollectiveHandle& handle, const char* what) const {
  try {
    handle.wait(timeout_);
  } catch (const std::exception& e) {
    throw error("rank {}: the {} across {} processes failed (another process probably exited, or "
                "ddp_timeout passed): {}", rank_, what, size_, detail::first_line(e.what()));
  }
}

TRAINPP_INLINE c10::intrusive_ptr<c10d::Backend> ProcessGroup::make_backend(
    const std::string& prefix, const std::string& backend, int rank, int size,
    const c10::intrusive_ptr<c10d::Store>& shared_store, std::chrono::milliseconds timeout) {
  auto store = c10::make_intrusive<c10d::PrefixStore>(prefix, shared_store);
  try {
    if (backend == "gloo") {
#ifdef USE_C10D_GLOO
      auto gloo = c10d::ProcessGroupGloo::Options::create(timeout);
      const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
      gloo->devices.push_back(interface != nullptr && *interface != '\0'
                                  ? c10d::ProcessGroupGloo::createDeviceForInterface(interface)
                                  : c10d::ProcessGroupGloo::createDefaultDevice());
      return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, gloo);
#else
      throw error("ddp_backend gloo: trainpp was compiled without Gloo (define USE_C10D_GLOO with Gloo's "
                  "headers on the include path, as trainpp's CMake package does); use nccl");
#endif
    } else if (backend == "nccl") {
#ifdef TRAINPP_HAS_NCCL
      auto nccl = c10d::ProcessGroupNCCL::Options::create();
      nccl->timeout = timeout;
      return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, nccl);
#else
      throw error("ddp_backend nccl: trainpp was compiled without NCCL (define USE_C10D_NCCL with nccl.h on the "
                  "include path, for a CUDA build of LibTorch); use gloo");
#endif
    }
    throw error("ddp_backend must be nccl or gloo, got '{}'", backend);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw error("rank {}: cannot create the {} backend ({}): {}", rank, backend, prefix, detail::first_line(e.what()));
  }
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
