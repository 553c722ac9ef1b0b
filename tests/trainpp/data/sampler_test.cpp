// The epoch orders of the samplers against PyTorch's (tests/data/data/randperm_reference.json, written by
// tools/reference/gen_randperm_reference.py).

#include <trainpp/data/sampler.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <numeric>

namespace sampler_test {

nlohmann::json reference() {
  std::ifstream in(TRAINPP_TEST_DATA_DIR "/data/randperm_reference.json");
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}


TEST_CASE("RandomSampler reproduces PyTorch's seeded RandomSampler order, epoch by epoch") {
  const auto ref = reference();
  REQUIRE(ref["cases"].size() >= 10);
  for (const auto& c : ref["cases"]) {
    const auto n = c["n"].get<std::int64_t>(), seed = c["seed"].get<std::int64_t>(), epoch = c["epoch"].get<std::int64_t>();
    CAPTURE(n);
    CAPTURE(seed);
    CAPTURE(epoch);
    const std::vector<std::int64_t> order = trainpp::RandomSampler(n, seed).epoch_indices(epoch);
    REQUIRE(order.size() == static_cast<std::size_t>(n));
    if (c.contains("order")) {
      CHECK(order == c["order"].get<std::vector<std::int64_t>>());
    } else {
      const auto head = c["head"].get<std::vector<std::int64_t>>(), tail = c["tail"].get<std::vector<std::int64_t>>();
      CHECK(std::vector<std::int64_t>(order.begin(), order.begin() + head.size()) == head);
      CHECK(std::vector<std::int64_t>(order.end() - tail.size(), order.end()) == tail);
      std::int64_t weighted = 0;
      for (std::size_t i = 0; i < order.size(); ++i) weighted += static_cast<std::int64_t>(i) * order[i];
      CHECK(weighted == c["weighted_sum"].get<std::int64_t>());
    }
  }
}

TEST_CASE("RandomSampler: a permutation, the same for the same epoch, different across epochs") {
  const trainpp::RandomSampler sampler(1000, 7);
  const auto e0 = sampler.epoch_indices(0), e0_again = sampler.epoch_indices(0), e1 = sampler.epoch_indices(1);
  CHECK(e0 == e0_again);
  CHECK(e0 != e1);
  auto sorted = e0;
  std::ranges::sort(sorted);
  std::vector<std::int64_t> iota(1000);
  std::iota(iota.begin(), iota.end(), 0);
  CHECK(sorted == iota);
  // Epoch e of seed s is epoch 0 of seed s + e, as accelerate reseeds with initial_seed + epoch.
  CHECK(trainpp::RandomSampler(1000, 8).epoch_indices(0) == e1);
  CHECK(trainpp::RandomSampler(0, 1).epoch_indices(3).empty());
}

TEST_CASE("SequentialSampler visits 0..n-1 in every epoch") {
  const trainpp::SequentialSampler sampler(5);
  CHECK(sampler.epoch_indices(0) == std::vector<std::int64_t>{0, 1, 2, 3, 4});
  CHECK(sampler.epoch_indices(9) == std::vector<std::int64_t>{0, 1, 2, 3, 4});
  CHECK_THROWS_AS(trainpp::SequentialSampler(-1), trainpp::Error);
}

}  // namespace sampler_test
