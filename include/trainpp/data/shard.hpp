#pragma once
// Which batches of an epoch each process of a data-parallel job takes: accelerate's BatchSamplerShard
// (split_batches=False, even_batches=True), which HF's Trainer uses for training and evaluation.

#include <trainpp/detail/config.hpp>
#include <trainpp/detail/error.hpp>

#include <cstdint>
#include <vector>

#if TRAINPP_DEFINITIONS
#include <algorithm>
#endif

namespace trainpp {

/// This process's share of the data: process `index` of `count` (1: everything).
struct DataShard {
  int index = 0;
  int count = 1;
};

/// The batches process `shard.index` takes, each as positions into the epoch's order (the sampler's
/// permutation, or 0..n-1): every process cuts the same epoch order into batches of `batch_size`, and
/// process r takes batches r, r + count, r + 2·count, ... A round of `count` batches is handed out
/// only when its last batch is full. Without drop_last the remainder is completed as accelerate does
/// it (even_batches): the last, short batch is filled up, and missing batches are made, with samples
/// from the start of the epoch, so that every process gets the same number of full batches and no
/// process waits for a collective the others never call. With drop_last the incomplete round is dropped.
/// Without even_batches (evaluation, where no collective runs per batch) the incomplete round is
/// handed out as it is: some processes get one batch fewer, and the last may be short.
[[nodiscard]] std::vector<std::vector<std::int64_t>> shard_batch_positions(std::int64_t num_samples,
                                                                           std::int64_t batch_size,
                                                                           DataShard shard, bool drop_last,
                                                                           bool even_batches = true);

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE std::vector<std::vector<std::int64_t>> shard_batch_positions(std::int64_t num_samples,
                                                                            std::int64_t batch_size,
                                                                            DataShard shard, bool drop_last,
                                                                            bool even_batches) {
  if (batch_size < 1) throw error("a data shard needs batch_size >= 1, got {}", batch_size);
  if (shard.count < 1 || shard.index < 0 || shard.index >= shard.count)
    throw error("a data shard needs 0 <= index < count, got index {} of {}", shard.index, shard.count);
  const std::int64_t world = shard.count, rank = shard.index;
  // The global batches, as BatchSampler(sampler, batch_size, drop_last) yields them.
  const std::int64_t full = num_samples / batch_size;
  const std::int64_t global_batches = drop_last || num_samples % batch_size == 0 ? full : full + 1;
  auto global_batch = [&](std::int64_t g) {
    std::vector<std::int64_t> positions;
    for (std::int64_t p = g * batch_size; p < std::min(num_samples, (g + 1) * batch_size); ++p) positions.push_back(p);
    return positions;
  };

  std::vector<std::vector<std::int64_t>> out;
  std::vector<std::int64_t> initial;  // the first `world` batches' samples, to circle back to
  std::vector<std::int64_t> to_yield;
  bool holding = false;
  std::vector<std::int64_t> last;
  std::int64_t idx = 0;
  for (; idx < global_batches; ++idx) {
    last = global_batch(idx);
    if (!drop_last && idx < world) initial.insert(initial.end(), last.begin(), last.end());
    if (idx % world == rank) to_yield = last, holding = true;
    if (idx % world == world - 1 && static_cast<std::int64_t>(last.size()) == batch_size) {
      out.push_back(to_yield);
      holding = false;
    }
  }
  if (drop_last || initial.empty()) return out;
  if (!even_batches) {
    if (holding) out.push_back(to_yield);
    return out;
  }
  if (holding && static_cast<std::int64_t>(to_yield.size()) == batch_size) out.push_back(to_yield);
  // A data set smaller than one round: repeat it until a round can be cut from it.
  const std::vector<std::int64_t> once = initial;
  while (static_cast<std::int64_t>(initial.size()) < world * batch_size)
    initial.insert(initial.end(), once.begin(), once.end());
  // idx is one past the last batch seen. A full last batch went out with its round (or above): go on
  // from the next slot. A short one is completed below, in its own slot.
  std::vector<std::int64_t> batch = last;
  if (static_cast<std::int64_t>(batch.size()) == batch_size) batch.clear();
  else --idx;
  std::size_t cycle = 0;
  while (idx % world != 0 || !batch.empty()) {
    const std::size_t end = cycle + static_cast<std::size_t>(batch_size) - batch.size();
    batch.insert(batch.end(), initial.begin() + static_cast<std::ptrdiff_t>(cycle),
                 initial.begin() + static_cast<std::ptrdiff_t>(std::min(end, initial.size())));
    if (idx % world == rank) out.push_back(batch);
    cycle = end;
    batch.clear();
    ++idx;
  }
  return out;
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
