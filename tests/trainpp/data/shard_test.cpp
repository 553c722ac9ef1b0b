// shard_batch_positions against accelerate's BatchSamplerShard (tools/reference/gen_shard_reference.py),
// and a sharded DataLoader: every process's batches together are the single-process epoch.

#include <trainpp/data/shard.hpp>
#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include <fstream>
#include <set>

namespace shard_test {
nlohmann::json reference() {
  std::ifstream in(TRAINPP_TEST_DATA_DIR "/distributed/shard_reference.json");
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}
}  // namespace shard_test

TEST_CASE("each process takes the batches accelerate's BatchSamplerShard gives it") {
  const auto ref = shard_test::reference();
  REQUIRE(ref["cases"].size() >= 40);
  for (const auto& c : ref["cases"]) {
    const auto n = c["num_samples"].get<std::int64_t>();
    const auto batch = c["batch_size"].get<std::int64_t>();
    const auto processes = c["processes"].get<int>();
    const auto drop_last = c["drop_last"].get<bool>();
    const auto even = c["even_batches"].get<bool>();
    for (int rank = 0; rank < processes; ++rank) {
      CAPTURE(n);
      CAPTURE(batch);
      CAPTURE(processes);
      CAPTURE(drop_last);
      CAPTURE(rank);
      CAPTURE(even);
      const auto expected = c["batches"][static_cast<std::size_t>(rank)].get<std::vector<std::vector<std::int64_t>>>();
      CHECK(trainpp::shard_batch_positions(n, batch, {rank, processes}, drop_last, even) == expected);
    }
  }
}

TEST_CASE("a bad shard is refused") {
  CHECK_THROWS_AS((void)trainpp::shard_batch_positions(10, 2, {2, 2}, false), trainpp::Error);
  CHECK_THROWS_AS((void)trainpp::shard_batch_positions(10, 0, {0, 2}, false), trainpp::Error);
}

TEST_CASE("a sharded DataLoader delivers its process's batches of the shuffled epoch") {
  const auto x = torch::arange(50, torch::kLong);
  trainpp::TensorDataset data{{"x", x}};
  trainpp::DataLoaderOptions whole;
  whole.batch_size = 4;
  whole.shuffle = true;
  whole.seed = 7;
  trainpp::DataLoader single(data, whole);
  single.set_epoch(3);
  std::vector<std::vector<std::int64_t>> global;
  while (auto b = single.next()) {
    const auto t = b->at("x");
    global.emplace_back(t.data_ptr<std::int64_t>(), t.data_ptr<std::int64_t>() + t.numel());
  }
  for (const int workers : {0, 2}) {
    std::multiset<std::int64_t> seen;
    std::size_t batches = 0;
    for (int rank = 0; rank < 3; ++rank) {
      auto options = whole;
      options.num_workers = workers;
      options.shard = {rank, 3};
      trainpp::DataLoader loader(data, options);
      CHECK(loader.num_batches() == 5);  // 13 batches of the epoch: 4 full rounds, and one padded
      loader.set_epoch(3);
      std::size_t local = 0;
      while (auto b = loader.next()) {
        const auto t = b->at("x");
        CHECK(t.numel() == 4);
        const std::size_t g = local * 3 + static_cast<std::size_t>(rank);
        if (g < 12) {  // the full rounds: exactly the single-process batches, dealt round robin
          CHECK(std::vector<std::int64_t>(t.data_ptr<std::int64_t>(), t.data_ptr<std::int64_t>() + 4) == global[g]);
        }
        for (std::int64_t i = 0; i < t.numel(); ++i) seen.insert(t[i].item<std::int64_t>());
        ++local;
      }
      CHECK(local == loader.num_batches());
      batches += local;
    }
    CHECK(batches == 15);
    // Every example at least once; the padding repeats examples from the start of the epoch's order.
    for (std::int64_t v = 0; v < 50; ++v) CHECK(seen.count(v) >= 1);
    CHECK(seen.size() == 60);
  }
}
