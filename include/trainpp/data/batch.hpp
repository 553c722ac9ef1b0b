#pragma once
// Batch: HF's "inputs" dictionary — named tensors, one of them (or several, see label_names) the labels.

#include <trainpp/detail/config.hpp>

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if TRAINPP_DEFINITIONS
#include <algorithm>
#endif

namespace trainpp {

/// An ordered dictionary of named tensors: one example as a dataset returns it, or a collated batch
/// (leading dimension = batch size) as a model receives it. Lookups are linear: a batch has a handful
/// of keys, and a flat vector beats a tree or a hash at that size.
class Batch {
 public:
  using value_type = std::pair<std::string, torch::Tensor>;

  Batch() = default;
  Batch(std::initializer_list<value_type> items) : items_(items) {}

  /// The tensor named `name`, inserted (undefined) if absent.
  torch::Tensor& operator[](std::string_view name) {
    if (auto* t = find(name)) return *t;
    return items_.emplace_back(std::string(name), torch::Tensor()).second;
  }
  /// The tensor named `name`; throws trainpp::Error listing the keys that exist.
  [[nodiscard]] const torch::Tensor& at(std::string_view name) const {
    if (const auto* t = find(name)) return *t;
    throw error("batch has no tensor named '{}' (it has: {})", name, fmt::join(keys(), ", "));
  }
  [[nodiscard]] bool contains(std::string_view name) const { return find(name) != nullptr; }
  [[nodiscard]] std::size_t size() const { return items_.size(); }
  [[nodiscard]] bool empty() const { return items_.empty(); }
  [[nodiscard]] auto begin() const { return items_.begin(); }
  [[nodiscard]] auto end() const { return items_.end(); }
  [[nodiscard]] auto begin() { return items_.begin(); }
  [[nodiscard]] auto end() { return items_.end(); }

  [[nodiscard]] std::vector<std::string> keys() const;

  /// Number of examples: the leading dimension of the first tensor (0 when empty).
  [[nodiscard]] std::int64_t batch_size() const {
    for (const auto& [k, v] : items_)
      if (v.defined()) return v.dim() == 0 ? 1 : v.size(0);
    return 0;
  }

  /// A copy with every tensor on `device`; tensors already there are shared, not copied.
  [[nodiscard]] Batch to(const torch::Device& device, bool non_blocking = false) const;

  /// A copy without the keys in `names` (e.g. the labels, for a forward without them).
  [[nodiscard]] Batch without(const std::vector<std::string>& names) const;

 private:
  [[nodiscard]] torch::Tensor* find(std::string_view name) {
    for (auto& [k, v] : items_)
      if (k == name) return &v;
    return nullptr;
  }
  [[nodiscard]] const torch::Tensor* find(std::string_view name) const {
    for (const auto& [k, v] : items_)
      if (k == name) return &v;
    return nullptr;
  }

  std::vector<value_type> items_;
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE std::vector<std::string> Batch::keys() const {
  std::vector<std::string> out;
  out.reserve(items_.size());
  for (const auto& [k, v] : items_) out.push_back(k);
  return out;
}

TRAINPP_INLINE Batch Batch::to(const torch::Device& device, bool non_blocking) const {
  Batch out;
  out.items_.reserve(items_.size());
  for (const auto& [k, v] : items_)
    out.items_.emplace_back(k, v.defined() ? v.to(device, non_blocking) : v);
  return out;
}

TRAINPP_INLINE Batch Batch::without(const std::vector<std::string>& names) const {
  Batch out;
  for (const auto& item : items_)
    if (std::ranges::find(names, item.first) == names.end()) out.items_.push_back(item);
  return out;
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
