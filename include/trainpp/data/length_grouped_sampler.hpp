#pragma once
// Length-grouped order: transformers' LengthGroupedSampler (train_sampling_strategy group_by_length),
// which puts examples of similar length in the same batches, so padding wastes little.

#include <trainpp/detail/config.hpp>
#include <trainpp/data/batch.hpp>
#include <trainpp/data/dataset.hpp>
#include <trainpp/data/sampler.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string_view>
#include <type_traits>
#include <vector>

#if TRAINPP_DEFINITIONS
#include <ATen/CPUGeneratorImpl.h>
#endif

namespace trainpp {

/// transformers' get_length_grouped_indices: a permutation of 0..n-1 drawn as torch.randperm from
/// `generator` (a CPU generator), cut into megabatches of mega_batch_mult × batch_size (default: 50, or
/// fewer so that there are 4 megabatches, at least 1), each sorted by length, longest first (ties keep
/// their drawn order, as Python's stable sort does); then the longest example of all is swapped to the
/// very front, so that a batch too large for memory fails on the first step rather than late.
[[nodiscard]] std::vector<std::int64_t> length_grouped_indices(const std::vector<std::int64_t>& lengths,
                                                               std::int64_t batch_size, at::Generator generator,
                                                               std::optional<std::int64_t> mega_batch_mult = {});

/// A length-grouped order per epoch. Epoch 0 is exactly transformers' first epoch under the Trainer:
/// its LengthGroupedSampler draws from torch's global generator, which the Trainer seeded with `seed`
/// and from which torch's DataLoader took one int64 (its workers' base seed) just before. Later epochs in transformers continue that global generator after whatever training
/// drew from it (dropout, masking), which cannot be reproduced; here epoch e draws with seed + e, so
/// a resumed run sees the same order as an uninterrupted one. With `after_loader_seed` false, nothing
/// is drawn before the order: transformers' evaluation sampler, which has a generator of its own
/// (seeded with data_seed, else seed).
class LengthGroupedSampler {
 public:
  LengthGroupedSampler(std::vector<std::int64_t> lengths, std::int64_t batch_size, std::int64_t seed,
                       bool after_loader_seed = true);
  [[nodiscard]] std::int64_t size() const { return static_cast<std::int64_t>(lengths_.size()); }
  [[nodiscard]] const std::vector<std::int64_t>& lengths() const { return lengths_; }
  [[nodiscard]] std::vector<std::int64_t> epoch_indices(std::int64_t epoch) const;
  /// The order of epoch `epoch` as an int64 CPU tensor.
  [[nodiscard]] torch::Tensor epoch_permutation(std::int64_t epoch) const {
    const std::vector<std::int64_t> order = epoch_indices(epoch);
    return torch::tensor(order, torch::kLong);
  }

 private:
  std::vector<std::int64_t> lengths_;
  std::int64_t batch_size_;
  std::int64_t seed_;
  bool after_loader_seed_;
};

/// A Dataset that knows its examples' lengths without reading them: `d.lengths()`, one per example.
template <class D>
concept LengthsDataset = Dataset<D> && requires(const D& d) {
  { d.lengths() } -> std::convertible_to<std::vector<std::int64_t>>;
};

/// The length of every example of `dataset`, as transformers' Trainer finds them for group_by_length:
/// the dataset's own lengths() when it has one; else, per example, the number in its
/// `length_column_name` key (HF's precomputed length column), or the length of its `model_input_name`
/// sequence. Throws trainpp::Error naming the example and both keys when an example has neither.
template <Dataset D>
[[nodiscard]] std::vector<std::int64_t> dataset_lengths(const D& dataset, std::string_view length_column_name,
                                                        std::string_view model_input_name = "input_ids") {
  const auto n = static_cast<std::size_t>(dataset.size());
  if constexpr (LengthsDataset<D>) {
    std::vector<std::int64_t> lengths = dataset.lengths();
    if (lengths.size() != n)
      throw error("group_by_length: the dataset's lengths() gave {} lengths for {} examples", lengths.size(), n);
    return lengths;
  } else if constexpr (std::is_same_v<example_t<D>, Batch>) {
    std::vector<std::int64_t> lengths(n);
    for (std::size_t i = 0; i < n; ++i) {
      const Batch example = dataset.get(i);
      if (example.contains(length_column_name)) {
        const torch::Tensor& t = example.at(length_column_name);
        if (!t.defined() || t.numel() != 1 || at::isFloatingType(t.scalar_type()))
          throw error("group_by_length: '{}' (--length_column_name) of example {} must be one integer", length_column_name,
                      i);
        lengths[i] = t.item<std::int64_t>();
      } else if (example.contains(model_input_name)) {
        const torch::Tensor& t = example.at(model_input_name);
        if (!t.defined() || t.dim() < 1)
          throw error("group_by_length: '{}' of example {} must be a sequence", model_input_name, i);
        lengths[i] = t.size(0);
      } else {
        throw error("group_by_length needs each example's length, but example {} has neither '{}' "
                    "(--length_column_name) nor '{}' (its keys: {}), and the dataset has no lengths()",
                    i, length_column_name, model_input_name, fmt::join(example.keys(), ", "));
      }
    }
    return lengths;
  } else {
    throw error("group_by_length needs the examples' lengths: give the dataset a `std::vector<std::int64_t> "
                "lengths() const` (its examples are not trainpp::Batch, so no '{}' key can be read)",
                length_column_name);
  }
}

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE std::vector<std::int64_t> length_grouped_indices(const std::vector<std::int64_t>& lengths,
                                                                std::int64_t batch_size, at::Generator generator,
                                                                std::optional<std::int64_t> mega_batch_mult) {
  if (batch_size < 1) throw error("length-grouped order: batch_size must be at least 1, got {}", batch_size);
  const auto n = static_cast<std::int64_t>(lengths.size());
  std::int64_t mult = mega_batch_mult.value_or(std::min<std::int64_t>(n / (batch_size * 4), 50));
  if (mult < 1) mult = 1;
  const torch::Tensor perm = torch::randperm(n, generator, torch::TensorOptions().dtype(torch::kLong));
  const auto* p = perm.data_ptr<std::int64_t>();
  std::vector<std::int64_t> out(p, p + n);
  if (n == 0) return out;
  const std::int64_t megabatch = mult * batch_size;
  const auto longer = [&](std::int64_t a, std::int64_t b) {
    return lengths[static_cast<std::size_t>(a)] > lengths[static_cast<std::size_t>(b)];
  };
  std::size_t longest_front = 0;  // the position of the megabatch whose first example is longest
  for (std::int64_t begin = 0; begin < n; begin += megabatch) {
    const auto first = out.begin() + begin, last = out.begin() + std::min(n, begin + megabatch);
    std::stable_sort(first, last, longer);
    // argmax picks the first of equal maxima: a later megabatch wins only when strictly longer.
    if (longer(*first, out[longest_front])) longest_front = static_cast<std::size_t>(begin);
  }
  std::swap(out[0], out[longest_front]);
  return out;
}

TRAINPP_INLINE LengthGroupedSampler::LengthGroupedSampler(std::vector<std::int64_t> lengths, std::int64_t batch_size, std::int64_t seed,
                                                          bool after_loader_seed) : lengths_(std::move(lengths)), batch_size_(batch_size), seed_(seed), after_loader_seed_(after_loader_seed) {
  if (batch_size_ < 1) throw error("LengthGroupedSampler: batch_size must be at least 1, got {}", batch_size_);
}

TRAINPP_INLINE std::vector<std::int64_t> LengthGroupedSampler::epoch_indices(std::int64_t epoch) const {
  // The seed is reinterpreted as unsigned, as Python's manual_seed does with negative seeds.
  at::Generator generator = at::detail::createCPUGenerator(static_cast<std::uint64_t>(seed_ + epoch));
  if (after_loader_seed_) (void)torch::empty({}, torch::kLong).random_(generator);  // the loader's base seed
  return length_grouped_indices(lengths_, batch_size_, generator);
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
