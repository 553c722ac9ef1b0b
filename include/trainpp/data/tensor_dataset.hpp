#pragma once
// TensorDataset: a dataset over whole tensors whose first dimension indexes the examples.

#include <trainpp/detail/config.hpp>
#include <trainpp/data/batch.hpp>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <utility>
#include <vector>

namespace trainpp {

/// A Dataset over named tensors sharing their first dimension (torch's TensorDataset, with names):
/// `TensorDataset{{"pixel_values", images}, {"labels", labels}}`. `get(i)` is a Batch of the i-th rows
/// (views, no copy); `gather(indices)` collates a whole batch with one index_select per key, which is
/// what DefaultCollate would make of the `get` results, only without the per-example ops.
class TensorDataset {
 public:
  TensorDataset(std::initializer_list<Batch::value_type> tensors) : TensorDataset(Batch(tensors)) {}
  /// Throws trainpp::Error when there is no tensor, one is undefined or 0-dim, or the first dimensions differ.
  explicit TensorDataset(Batch tensors);

  [[nodiscard]] std::size_t size() const { return static_cast<std::size_t>(size_); }

  /// The i-th example: each tensor's i-th row (a view).
  [[nodiscard]] Batch get(std::size_t i) const;

  /// The rows `indices`, collated: each tensor index_selected along dimension 0. With `pin_memory`
  /// (CUDA builds), rows of CPU tensors are gathered straight into page-locked memory, ready for an
  /// asynchronous copy to the GPU without a second host copy.
  [[nodiscard]] Batch gather(const std::vector<std::int64_t>& indices, bool pin_memory = false) const;

  /// The whole tensors, by name.
  [[nodiscard]] const Batch& tensors() const { return tensors_; }

 private:
  Batch tensors_;
  std::int64_t size_ = 0;
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE TensorDataset::TensorDataset(Batch tensors) : tensors_(std::move(tensors)) {
  if (tensors_.empty()) throw error("a TensorDataset needs at least one tensor");
  bool first = true;
  for (const auto& [key, t] : tensors_) {
    if (!t.defined()) throw error("TensorDataset: tensor '{}' is undefined", key);
    if (t.dim() == 0) throw error("TensorDataset: tensor '{}' is 0-dim; its first dimension must index the examples", key);
    if (first) {
      size_ = t.size(0);
      first = false;
    } else if (t.size(0) != size_) {
      throw error("TensorDataset: tensor '{}' has {} rows but '{}' has {}; all tensors must share their first "
                  "dimension", key, t.size(0), tensors_.begin()->first, size_);
    }
  }
}

TRAINPP_INLINE Batch TensorDataset::get(std::size_t i) const {
  if (i >= size()) throw error("TensorDataset: index {} is out of range (size {})", i, size_);
  Batch out;
  for (const auto& [key, t] : tensors_) out[key] = t.select(0, static_cast<std::int64_t>(i));
  return out;
}

TRAINPP_INLINE Batch TensorDataset::gather(const std::vector<std::int64_t>& indices, bool pin_memory) const {
  for (const std::int64_t i : indices)
    if (i < 0 || i >= size_) throw error("TensorDataset: index {} is out of range (size {})", i, size_);
  // index_select only reads the index, so the vector's storage serves without a copy.
  const torch::Tensor index = torch::from_blob(const_cast<std::int64_t*>(indices.data()),
                                               {static_cast<std::int64_t>(indices.size())}, torch::kLong);
  Batch out;
  torch::Tensor on_device = index;  // the index on the device of the tensors before
  for (const auto& [key, t] : tensors_) {
    // Tensors kept on an accelerator are gathered there. The index copy is asynchronous: CUDA stages
    // pageable memory before returning, and a blocking copy would wait for all queued work.
    if (on_device.device() != t.device()) on_device = index.to(t.device(), /*non_blocking=*/true);
    if (pin_memory && t.is_cpu()) {
      std::vector<std::int64_t> shape = t.sizes().vec();
      shape[0] = index.numel();
      torch::Tensor pinned = torch::empty(shape, t.options().pinned_memory(true));
      out[key] = torch::index_select_out(pinned, t, 0, on_device);
    } else {
      out[key] = t.index_select(0, on_device);
    }
  }
  return out;
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
