#pragma once
// Dataset: what a DataLoader draws examples from (HF's map-style torch Dataset).

#include <trainpp/detail/config.hpp>
#include <trainpp/data/batch.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

namespace trainpp {

/// A random-access dataset.
///
/// Required:
///   - `d.size()`: the number of examples, convertible to std::size_t;
///   - `d.get(i)` for `i < d.size()`: the i-th example. Usually a trainpp::Batch holding one example's
///     named tensors (no batch dimension); any type works when the loader's collate accepts a
///     `std::vector` of it.
/// Optional:
///   - `d.gather(indices)` with `const std::vector<std::int64_t>&`, returning a collated Batch (leading
///     dimension = indices.size()) equal to what DefaultCollate makes of the `get` results. The
///     DataLoader prefers it over per-example `get` + stack when the collate is DefaultCollate: one
///     indexing op per key instead of one op per example. If it also takes `(indices, bool pin_memory)`,
///     the loader asks for page-locked output when it stages batches for a CUDA device.
/// Guarantees the loader relies on:
///   - `get` and `gather` are const and may run concurrently on several worker threads;
///   - the dataset outlives every DataLoader that reads it (loaders keep a reference).
/// Models: TensorDataset, FashionMnist.
template <class D>
concept Dataset = requires(const D& d, std::size_t i) {
  { d.size() } -> std::convertible_to<std::size_t>;
  d.get(i);
};

/// The type of one example of dataset `D`.
template <Dataset D>
using example_t = std::remove_cvref_t<decltype(std::declval<const D&>().get(std::size_t{0}))>;

/// A Dataset that can also collate a whole batch of examples in one go (see Dataset's `gather`).
template <class D>
concept GatherDataset = Dataset<D> && requires(const D& d, const std::vector<std::int64_t>& indices) {
  { d.gather(indices) } -> std::convertible_to<Batch>;
};

/// A GatherDataset that can gather into page-locked memory (see Dataset's `gather`).
template <class D>
concept PinnedGatherDataset = GatherDataset<D> && requires(const D& d, const std::vector<std::int64_t>& indices) {
  { d.gather(indices, true) } -> std::convertible_to<Batch>;
};

}  // namespace trainpp
