#pragma once
// Samplers: the order in which one epoch visits a dataset's examples.

#include <trainpp/detail/config.hpp>

#include <cstdint>
#include <vector>

#if TRAINPP_DEFINITIONS
#include <ATen/CPUGeneratorImpl.h>
#include <numeric>
#endif

namespace trainpp {

namespace detail {

/// A permutation of 0..n-1 (int64, CPU) drawn from a fresh CPU generator seeded with `seed`: what
/// `g = torch.Generator(); g.manual_seed(seed); torch.randperm(n, generator=g)` gives in Python.
[[nodiscard]] torch::Tensor seeded_randperm(std::int64_t n, std::int64_t seed);

}  // namespace detail

/// Visits 0, 1, ..., n-1 in every epoch (torch's SequentialSampler; HF's evaluation order).
class SequentialSampler {
 public:
  explicit SequentialSampler(std::int64_t num_samples) : n_(num_samples) {
    if (n_ < 0) throw error("a sampler needs a non-negative number of examples, got {}", n_);
  }
  [[nodiscard]] std::int64_t size() const { return n_; }
  /// 0..n-1, whatever the epoch.
  [[nodiscard]] std::vector<std::int64_t> epoch_indices(std::int64_t /*epoch*/) const;

 private:
  std::int64_t n_;
};

/// A fresh random order per epoch, reproducible from (seed, epoch): accelerate's SeedableRandomSampler,
/// which HF's Trainer uses for training. Epoch e reseeds a CPU generator with seed + e and draws
/// torch.randperm(n) from it, so the order is exactly what PyTorch computes in Python for the same seed
/// and epoch — a run resumed here, or started in Python, visits the examples in the same order.
class RandomSampler {
 public:
  RandomSampler(std::int64_t num_samples, std::int64_t seed) : n_(num_samples), seed_(seed) {
    if (n_ < 0) throw error("a sampler needs a non-negative number of examples, got {}", n_);
  }
  [[nodiscard]] std::int64_t size() const { return n_; }
  [[nodiscard]] std::int64_t seed() const { return seed_; }
  /// The order of epoch `epoch` as an int64 CPU tensor of n indices.
  [[nodiscard]] torch::Tensor epoch_permutation(std::int64_t epoch) const {
    return detail::seeded_randperm(n_, seed_ + epoch);
  }
  /// The order of epoch `epoch`.
  [[nodiscard]] std::vector<std::int64_t> epoch_indices(std::int64_t epoch) const;

 private:
  std::int64_t n_;
  std::int64_t seed_;
};

#if TRAINPP_DEFINITIONS

namespace detail {

TRAINPP_INLINE torch::Tensor seeded_randperm(std::int64_t n, std::int64_t seed) {
  if (n < 0) throw error("cannot permute a negative number of examples ({})", n);
  // The seed is reinterpreted as unsigned, as Python's manual_seed does with negative seeds.
  at::Generator generator = at::detail::createCPUGenerator(static_cast<std::uint64_t>(seed));
  return torch::randperm(n, generator, torch::TensorOptions().dtype(torch::kLong));
}

}  // namespace detail

TRAINPP_INLINE std::vector<std::int64_t> SequentialSampler::epoch_indices(std::int64_t /*epoch*/) const {
  std::vector<std::int64_t> out(static_cast<std::size_t>(n_));
  std::iota(out.begin(), out.end(), std::int64_t{0});
  return out;
}

TRAINPP_INLINE std::vector<std::int64_t> RandomSampler::epoch_indices(std::int64_t epoch) const {
  const torch::Tensor perm = epoch_permutation(epoch);
  const auto* p = perm.data_ptr<std::int64_t>();
  return {p, p + perm.numel()};
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
