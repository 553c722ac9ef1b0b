#pragma once
// DataLoaderPolicy: how datasets become batches on the device (HF's get_train/eval/test_dataloader).

#include <trainpp/args.hpp>

#include <concepts>
#include <optional>

namespace trainpp {

/// A loader: one pass over a dataset per epoch, batch by batch.
///
/// Required: `next()` -> std::optional<Batch> (nullopt ends the epoch); `num_batches()` (HF's
/// len(dataloader)); `num_samples()`; `set_epoch(std::int64_t)` (the order of that epoch);
/// `skip_to(std::size_t)` (the next batch is that index of the epoch, without touching the ones
/// before: resume in O(1)).
/// Models: trainpp::DataLoader.
template <class L>
concept Loader = requires(L& l, std::int64_t epoch, std::size_t index) {
  { l.next() };
  requires requires(decltype(l.next()) b) { b.has_value(); *b; };
  { l.num_batches() } -> std::convertible_to<std::size_t>;
  { l.num_samples() } -> std::convertible_to<std::size_t>;
  l.set_epoch(epoch);
  l.skip_to(index);
};

/// The data_loader slot.
///
/// Required: `train_loader(const Dataset&, const TrainingArguments&, torch::Device)` and
/// `eval_loader(...)` with the same arguments, each returning a Loader.
/// Optional: `test_loader(...)`, used by predict(); eval_loader otherwise.
/// Models: trainpp::DefaultDataLoader.
template <class P, class D>
concept DataLoaderPolicy = requires(const P& p, const D& d, const TrainingArguments& a, torch::Device dev) {
  { p.train_loader(d, a, dev) } -> Loader;
  { p.eval_loader(d, a, dev) } -> Loader;
};

namespace detail {
template <class P, class D>
constexpr bool check_data_loader() {
  constexpr bool train = requires(const P& p, const D& d, const TrainingArguments& a, torch::Device dev) {
    p.train_loader(d, a, dev);
  };
  constexpr bool eval = requires(const P& p, const D& d, const TrainingArguments& a, torch::Device dev) {
    p.eval_loader(d, a, dev);
  };
  static_assert(train, "trainpp: the data_loader slot needs a member "
                       "train_loader(const Dataset&, const TrainingArguments&, torch::Device) const");
  static_assert(eval, "trainpp: the data_loader slot needs a member "
                      "eval_loader(const Dataset&, const TrainingArguments&, torch::Device) const");
  if constexpr (train && eval) {
    constexpr bool loaders = DataLoaderPolicy<P, D>;
    static_assert(loaders, "trainpp: the data_loader slot's loaders need next() -> std::optional<batch>, "
                           "num_batches(), num_samples(), set_epoch(std::int64_t) and skip_to(std::size_t)");
    return loaders;
  }
  return false;
}
}  // namespace detail

}  // namespace trainpp
