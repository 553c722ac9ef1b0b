#pragma once
// Device choice and seeding, as HF's TrainingArguments.device and set_seed / enable_full_determinism.

#include <trainpp/args.hpp>
#include <trainpp/logging.hpp>

#include <cstdlib>
#include <string>

namespace trainpp {

/// CUDA when available (the index from LOCAL_RANK, within what CUDA_VISIBLE_DEVICES exposes), else
/// MPS, else the CPU; `use_cpu` forces the CPU.
[[nodiscard]] torch::Device select_device(const TrainingArguments& args);

/// HF's set_seed: the CPU generator and every CUDA device's.
inline void set_seed(std::int64_t seed) {
  torch::manual_seed(static_cast<std::uint64_t>(seed));
  if (torch::cuda::is_available()) torch::cuda::manual_seed_all(static_cast<std::uint64_t>(seed));
}

/// HF's enable_full_determinism: seed, deterministic algorithms, cuDNN/cuBLAS settings.
void enable_full_determinism(std::int64_t seed);

/// HF's --tf32: true turns on TF32 for float32 matmuls and convolutions on CUDA, false turns it off,
/// unset leaves torch's defaults. TF32 exists only on NVIDIA GPUs (Ampere and newer): asking for it on
/// another device is an Error, as in HF.
void apply_tf32(const TrainingArguments& args, torch::Device device);

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE torch::Device select_device(const TrainingArguments& args) {
  if (args.use_cpu) return torch::kCPU;
  if (torch::cuda::is_available()) {
    const auto local_rank = trainpp::local_process_index();  // a malformed LOCAL_RANK fails in finalize()
    const auto count = static_cast<int>(torch::cuda::device_count());
    if (local_rank < 0 || local_rank >= count)
      throw error("LOCAL_RANK={} but only {} CUDA device(s) are visible (CUDA_VISIBLE_DEVICES)", local_rank, count);
    return {torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank)};
  }
  if (torch::mps::is_available()) return torch::kMPS;
  return torch::kCPU;
}

TRAINPP_INLINE void enable_full_determinism(std::int64_t seed) {
  set_seed(seed);
  ::setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8", 1);
  at::globalContext().setDeterministicAlgorithms(true, /*warn_only=*/false);
  at::globalContext().setDeterministicCuDNN(true);
  at::globalContext().setBenchmarkCuDNN(false);
}

TRAINPP_INLINE void apply_tf32(const TrainingArguments& args, torch::Device device) {
  if (!args.tf32) return;
  if (*args.tf32 && !device.is_cuda())
    throw error("--tf32 requires a CUDA GPU (TF32 matmuls exist on NVIDIA Ampere and newer); this run's device is {}",
                device.str());
  if (!device.is_cuda()) return;  // --tf32 false off CUDA: nothing to turn off
  at::globalContext().setAllowTF32CuBLAS(*args.tf32);
  at::globalContext().setAllowTF32CuDNN(*args.tf32);
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
