// The length-grouped order against transformers' LengthGroupedSampler, accelerate's sharding of it,
// and the order a transformers Trainer with train_sampling_strategy group_by_length really visits
// (collators_hf_reference.py).

#include <trainpp/data/collators.hpp>
#include <trainpp/data/data_loader.hpp>
#include <trainpp/data/length_grouped_sampler.hpp>

#include "collators_reference.hpp"
#include "../../skip.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <vector>

namespace length_grouped_sampler_test {

using trainpp::Batch;

/// Examples whose input_ids have the given lengths and whose `idx` says which example they are.
struct IndexedLengths {
  std::vector<std::int64_t> lengths;
  [[nodiscard]] std::size_t size() const { return lengths.size(); }
  [[nodiscard]] Batch get(std::size_t i) const {
    return Batch{{"input_ids", torch::full({lengths[i]}, 5, torch::kLong)},
                 {"idx", torch::tensor(static_cast<std::int64_t>(i))}};
  }
};

/// Every example's `idx`, in the order a loader delivers them over its current pass.
template <class Loader>
std::vector<std::int64_t> visited(Loader& loader) {
  std::vector<std::int64_t> out;
  while (auto batch = loader.next()) {
    const torch::Tensor idx = batch->at("idx");
    out.insert(out.end(), idx.template data_ptr<std::int64_t>(), idx.template data_ptr<std::int64_t>() + idx.numel());
  }
  return out;
}

trainpp::PaddingOptions pad_with_zero() {
  trainpp::PaddingOptions o;
  o.pad_token_id = 0;
  return o;
}

TEST_CASE("length_grouped_indices gives transformers' LengthGroupedSampler order" * doctest::test_suite("integration")) {
  const auto ref = collators_reference::load();
  if (!ref) TRAINPP_SKIP_TEST("transformers or accelerate cannot be imported");
  const auto& cases = ref->json["length_grouped"]["cases"];
  REQUIRE(cases.size() == 8);  // 2 data set sizes × 2 seeds × 2 batch sizes
  for (const auto& c : cases) {
    const auto lengths = c["lengths"].get<std::vector<std::int64_t>>();
    const auto seed = c["seed"].get<std::int64_t>(), batch_size = c["batch_size"].get<std::int64_t>();
    CAPTURE(lengths.size());
    CAPTURE(seed);
    CAPTURE(batch_size);
    const std::vector<std::int64_t> order = trainpp::length_grouped_indices(
        lengths, batch_size, at::detail::createCPUGenerator(static_cast<std::uint64_t>(seed)));
    CHECK(order == c["order"].get<std::vector<std::int64_t>>());
  }
}

TEST_CASE("Under a data shard the length-grouped batches are accelerate's, as transformers 5.x shards them" *
          doctest::test_suite("integration")) {
  const auto ref = collators_reference::load();
  if (!ref) TRAINPP_SKIP_TEST("transformers or accelerate cannot be imported");
  for (const auto& c : ref->json["length_grouped"]["cases"]) {
    const IndexedLengths dataset{c["lengths"].get<std::vector<std::int64_t>>()};
    const auto seed = c["seed"].get<std::int64_t>(), batch_size = c["batch_size"].get<std::int64_t>();
    for (int rank = 0; rank < 2; ++rank) {
      CAPTURE(dataset.size());
      CAPTURE(seed);
      CAPTURE(batch_size);
      CAPTURE(rank);
      trainpp::DataLoaderOptions o;
      o.batch_size = batch_size;
      o.seed = seed;
      o.group_lengths = std::make_shared<const std::vector<std::int64_t>>(dataset.lengths);
      o.length_group_batch_size = batch_size;
      o.shard = {rank, 2};
      trainpp::DataLoader loader(dataset, o, trainpp::DataCollatorWithPadding{pad_with_zero()});
      std::vector<std::vector<std::int64_t>> batches;
      while (auto batch = loader.next()) {
        const torch::Tensor idx = batch->at("idx");
        batches.emplace_back(idx.data_ptr<std::int64_t>(), idx.data_ptr<std::int64_t>() + idx.numel());
      }
      CHECK(batches == c["shards"][static_cast<std::size_t>(rank)].get<std::vector<std::vector<std::int64_t>>>());
    }
  }
}

TEST_CASE("A group_by_length train loader visits the examples in a transformers Trainer's order" *
          doctest::test_suite("integration")) {
  const auto ref = collators_reference::load();
  if (!ref) TRAINPP_SKIP_TEST("transformers or accelerate cannot be imported");
  const auto& t = ref->json["length_grouped"]["trainer"];
  const IndexedLengths dataset{t["lengths"].get<std::vector<std::int64_t>>()};
  trainpp::TrainingArguments args;
  args.per_device_train_batch_size = t["batch_size"].get<std::int64_t>();
  args.gradient_accumulation_steps = t["accumulation"].get<std::int64_t>();
  args.seed = t["seed"].get<std::int64_t>();
  args.data_seed = args.seed + 1;  // not what the Trainer seeds torch's global generator with
  args.train_sampling_strategy = trainpp::SamplingStrategy::group_by_length;
  const trainpp::CollatingDataLoader<trainpp::DataCollatorWithPadding> policy{{pad_with_zero()}};
  auto loader = policy.train_loader(dataset, args, torch::kCPU);
  CHECK(visited(loader) == t["order"].get<std::vector<std::int64_t>>());
}

TEST_CASE("A group_by_length eval loader visits transformers' evaluation order, seeded with data_seed" *
          doctest::test_suite("integration")) {
  const auto ref = collators_reference::load();
  if (!ref) TRAINPP_SKIP_TEST("transformers or accelerate cannot be imported");
  // transformers' _get_eval_sampler: LengthGroupedSampler(eval batch size, generator seeded data_seed).
  for (const auto& c : ref->json["length_grouped"]["cases"]) {
    const IndexedLengths dataset{c["lengths"].get<std::vector<std::int64_t>>()};
    trainpp::TrainingArguments args;
    args.per_device_eval_batch_size = c["batch_size"].get<std::int64_t>();
    args.per_device_train_batch_size = 5;  // not what evaluation groups by
    args.seed = 1;
    args.data_seed = c["seed"].get<std::int64_t>();
    args.train_sampling_strategy = trainpp::SamplingStrategy::group_by_length;
    auto loader = trainpp::CollatingDataLoader<trainpp::DataCollatorWithPadding>{{pad_with_zero()}}.eval_loader(
        dataset, args, torch::kCPU);
    CHECK(visited(loader) == c["order"].get<std::vector<std::int64_t>>());
  }
}

TEST_CASE("Length-grouped batches hold similar lengths, the longest example first, a new order each epoch") {
  std::vector<std::int64_t> lengths(400);
  for (std::size_t i = 0; i < lengths.size(); ++i) lengths[i] = static_cast<std::int64_t>((i * 7919) % 97 + 1);
  const trainpp::LengthGroupedSampler sampler(lengths, 4, 42);
  const auto epoch0 = sampler.epoch_indices(0), epoch1 = sampler.epoch_indices(1);
  CHECK(epoch0 == sampler.epoch_indices(0));
  CHECK(epoch0 != epoch1);
  for (const auto& order : {epoch0, epoch1}) {
    std::vector<std::int64_t> sorted = order;
    std::ranges::sort(sorted);
    std::vector<std::int64_t> all(lengths.size());
    std::iota(all.begin(), all.end(), 0);
    CHECK(sorted == all);
    CHECK(lengths[static_cast<std::size_t>(order[0])] == 97);
    // 400 / (4 × 4): megabatches of 25 × 4 = 100 examples, each sorted longest first after its head.
    for (std::size_t m = 0; m < 4; ++m)
      for (std::size_t i = m * 100 + 2; i < (m + 1) * 100; ++i)
        CHECK(lengths[static_cast<std::size_t>(order[i - 1])] >= lengths[static_cast<std::size_t>(order[i])]);
  }
}

struct Unsized {
  [[nodiscard]] std::size_t size() const { return 3; }
  [[nodiscard]] Batch get(std::size_t) const { return Batch{{"pixel_values", torch::zeros({2})}}; }
};

struct WithLengthColumn {
  [[nodiscard]] std::size_t size() const { return 3; }
  [[nodiscard]] Batch get(std::size_t i) const {
    return Batch{{"input_ids", torch::zeros({5}, torch::kLong)}, {"length", torch::tensor(static_cast<std::int64_t>(10 * i))}};
  }
};

TEST_CASE("group_by_length reads the length column, else input_ids, else says what is missing") {
  CHECK(trainpp::dataset_lengths(WithLengthColumn{}, "length") == std::vector<std::int64_t>{0, 10, 20});
  CHECK(trainpp::dataset_lengths(WithLengthColumn{}, "n_tokens") == std::vector<std::int64_t>{5, 5, 5});
  trainpp::TrainingArguments args;
  args.train_sampling_strategy = trainpp::SamplingStrategy::group_by_length;
  const Unsized dataset;
  CHECK_THROWS_WITH_AS((void)trainpp::DefaultDataLoader{}.train_loader(dataset, args, torch::kCPU),
                       doctest::Contains("example 0 has neither 'length' (--length_column_name) nor 'input_ids'"),
                       trainpp::Error);
  args.train_sampling_strategy = trainpp::SamplingStrategy::random;
  CHECK_NOTHROW((void)trainpp::DefaultDataLoader{}.train_loader(dataset, args, torch::kCPU));
}

}  // namespace length_grouped_sampler_test
