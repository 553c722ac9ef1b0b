#pragma once
// Collation: turning a list of examples into one batch (HF's data_collator / torch's default_collate).

#include <trainpp/detail/config.hpp>
#include <trainpp/data/batch.hpp>

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

namespace trainpp {

/// A collate function for examples of type `Example`: called with the examples of one batch (moved in)
/// and returning the batch. The DataLoader calls it through a const reference, possibly from several
/// worker threads at once, so it must be const-callable and free of unsynchronized state.
template <class C, class Example>
concept CollateFor = std::is_invocable_r_v<Batch, const C&, std::vector<Example>&&>;

/// Which batch of its run a collate is making: epoch × batches per epoch + the batch's index in the
/// epoch, counted per process. A DataLoader passes it to collates that also take it as a second
/// argument, so a random collate (masked LM) can seed each batch on its own and give the same batches
/// whichever worker thread builds them.
struct BatchOrdinal {
  std::int64_t value = 0;
};

/// A collate that also takes the BatchOrdinal of the batch it makes.
template <class C, class Example>
concept OrdinalCollateFor = std::is_invocable_r_v<Batch, const C&, std::vector<Example>&&, BatchOrdinal>;

/// The default collation of Batch examples: for each key, `torch::stack` of the examples' tensors, so
/// a 0-dim tensor per example (a class label) becomes a 1-D tensor and a [C,H,W] image becomes
/// [N,C,H,W]. Every example must have the same keys and, per key, the same shape; otherwise it throws
/// trainpp::Error naming the key (and the shapes). Variable-length examples need a padding collate.
struct DefaultCollate {
  [[nodiscard]] Batch operator()(std::vector<Batch>&& examples) const;
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE Batch DefaultCollate::operator()(std::vector<Batch>&& examples) const {
  Batch out;
  if (examples.empty()) return out;
  const Batch& first = examples.front();
  std::vector<torch::Tensor> parts(examples.size());
  for (const auto& [key, reference] : first) {
    if (!reference.defined()) throw error("cannot collate '{}': example 0 holds an undefined tensor", key);
    for (std::size_t e = 0; e < examples.size(); ++e) {
      if (e > 0 && !examples[e].contains(key))
        throw error("cannot collate '{}': example {} has no such key (its keys: {}; example 0's: {})", key, e,
                    fmt::join(examples[e].keys(), ", "), fmt::join(first.keys(), ", "));
      const torch::Tensor& t = e == 0 ? reference : examples[e].at(key);
      if (!t.defined()) throw error("cannot collate '{}': example {} holds an undefined tensor", key, e);
      if (t.sizes() != reference.sizes())
        throw error("cannot collate '{}': example 0 has shape [{}] but example {} has shape [{}] (examples "
                    "of different lengths need a collate that pads them)",
                    key, fmt::join(reference.sizes(), ", "), e, fmt::join(t.sizes(), ", "));
      parts[e] = t;
    }
    out[key] = torch::stack(parts);
  }
  // Every key of example 0 was found in each example; a larger key count means an extra key.
  for (std::size_t e = 1; e < examples.size(); ++e) {
    if (examples[e].size() == first.size()) continue;
    for (const auto& [key, t] : examples[e])
      if (!first.contains(key))
        throw error("cannot collate '{}': example {} has it but example 0 does not (example 0's keys: {})", key,
                    e, fmt::join(first.keys(), ", "));
  }
  return out;
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
