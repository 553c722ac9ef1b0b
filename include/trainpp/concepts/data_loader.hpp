#pragma once
// DataLoaderPolicy: how datasets become batches on the device (HF's get_train/eval/test_dataloader).

#include <trainpp/args.hpp>
#include <trainpp/data/shard.hpp>
#include <trainpp/detail/declares.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>

namespace trainpp {

/// A loader: one pass over a dataset per epoch, batch by batch.
///
/// Required: `next()` -> std::optional<Batch> (nullopt ends the epoch); `num_batches()` (HF's
/// len(dataloader)); `num_samples()`; `set_epoch(std::int64_t)` (the order of that epoch);
/// `skip_to(std::size_t)` (the next batch is that index of the epoch, without touching the ones
/// before: resume in O(1)).
/// Optional (a member declared under this name must be callable as shown, or the Trainer does not
/// compile): `std::int64_t real_samples(std::size_t batch_index)`: how many examples of that batch
/// of the epoch are this process's own (a shard's last batch may repeat examples to even out the
/// processes); called by evaluation after each batch, to weight the loss and drop the repeats;
/// default: the whole batch.
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
/// Required: `train_loader(const Dataset&, const TrainingArguments&, torch::Device) const` (called
/// by train() for the train_dataset) and `eval_loader(...) const` with the same arguments (called by
/// evaluate()), each returning a Loader. Each may take a trailing `trainpp::DataShard` (the part of
/// the data set this process reads); the Trainer passes one when it is taken, and refuses to run
/// several processes otherwise.
/// Optional (a member declared under this name must be callable as shown, or the Trainer does not
/// compile): `test_loader(const Dataset&, const TrainingArguments&, torch::Device[, DataShard]) const`
/// returning a Loader, called by predict(); default: eval_loader. It is checked with the type of the
/// train (else eval) dataset.
/// Models: trainpp::DefaultDataLoader.
template <class P, class D>
concept DataLoaderPolicy = requires(const P& p, const D& d, const TrainingArguments& a, torch::Device dev) {
  { p.train_loader(d, a, dev) } -> Loader;
  { p.eval_loader(d, a, dev) } -> Loader;
};

namespace detail {
/// A loader L without real_samples, or with one the evaluation loop can call.
template <class L>
concept loader_real_samples_ok = !declares_real_samples<L> ||
    requires(L& l, std::size_t i) { { l.real_samples(i) } -> std::convertible_to<std::int64_t>; };

/// The optional members of a data loader policy P and of its loaders: each one declared must be
/// callable as the Trainer calls it.
template <class P, class D>
constexpr bool check_data_loader_optional() {
  constexpr bool test = !declares_test_loader<P> ||
      requires(const P& p, const D& d, const TrainingArguments& a, torch::Device dev) {
        { p.test_loader(d, a, dev) } -> Loader;
      } ||
      requires(const P& p, const D& d, const TrainingArguments& a, torch::Device dev, DataShard s) {
        { p.test_loader(d, a, dev, s) } -> Loader;
      };
  static_assert(test, "trainpp: the data_loader slot declares 'test_loader' but it cannot be called as "
                      "test_loader(const Dataset&, const TrainingArguments&, torch::Device[, trainpp::DataShard]) const "
                      "returning a loader");
  using train_t = decltype(std::declval<const P&>().train_loader(
      std::declval<const D&>(), std::declval<const TrainingArguments&>(), std::declval<torch::Device>()));
  using eval_t = decltype(std::declval<const P&>().eval_loader(
      std::declval<const D&>(), std::declval<const TrainingArguments&>(), std::declval<torch::Device>()));
  constexpr bool real_samples = loader_real_samples_ok<std::remove_cvref_t<train_t>> &&
                                loader_real_samples_ok<std::remove_cvref_t<eval_t>>;
  static_assert(real_samples, "trainpp: the data_loader slot's loader declares 'real_samples' but it cannot be called as "
                              "std::int64_t real_samples(std::size_t batch_index)");
  return test && real_samples;
}

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
    if constexpr (!loaders) return false;
    else return check_data_loader_optional<P, D>();
  }
  return false;
}
}  // namespace detail

}  // namespace trainpp
