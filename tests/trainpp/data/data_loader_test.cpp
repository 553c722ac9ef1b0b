// DataLoader: batch counts, epoch orders (PyTorch's), resuming, background workers and their failure modes.

#include <trainpp/data/data_loader.hpp>
#include <trainpp/data/tensor_dataset.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <numeric>
#include <ranges>
#include <stdexcept>
#include <thread>

using trainpp::Batch;
using trainpp::DataLoader;
using trainpp::DataLoaderOptions;
using trainpp::TensorDataset;

namespace data_loader_test {

/// A dataset whose example i is {"idx": i, "x": [i, -i]}; counts get() calls; optionally throws at one
/// index or sleeps in every get. No gather, so the loader goes through get + collate.
struct ProbeDataset {
  std::size_t n = 0;
  std::int64_t throw_at = -1;
  bool throw_trainpp_error = false;
  std::chrono::microseconds delay{0};
  mutable std::atomic<std::size_t> gets{0};

  std::size_t size() const { return n; }
  Batch get(std::size_t i) const {
    gets.fetch_add(1, std::memory_order_relaxed);
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    if (static_cast<std::int64_t>(i) == throw_at) {
      if (throw_trainpp_error) throw trainpp::Error("example " + std::to_string(i) + " is unreadable");
      throw std::runtime_error("disk on fire at " + std::to_string(i));
    }
    const auto v = static_cast<std::int64_t>(i);
    return Batch{{"idx", torch::tensor(v)}, {"x", torch::tensor({v, -v})}};
  }
};

TensorDataset index_dataset(std::int64_t n) {
  // The same examples as ProbeDataset's, with "x" stored as float.
  const auto idx = torch::arange(n, torch::kLong);
  return TensorDataset{{"idx", idx}, {"x", torch::stack({idx, -idx}, 1).to(torch::kFloat)}};
}

DataLoaderOptions opts(std::int64_t batch_size, bool shuffle, std::int64_t workers = 0, bool drop_last = false,
                       std::int64_t seed = 42) {
  DataLoaderOptions o;
  o.batch_size = batch_size;
  o.shuffle = shuffle;
  o.num_workers = workers;
  o.drop_last = drop_last;
  o.seed = seed;
  return o;
}

std::vector<std::int64_t> as_vector(const torch::Tensor& t) {
  const auto c = t.contiguous();
  return {c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel()};
}

/// The "idx" of every batch of one pass, batch by batch.
template <class Loader>
std::vector<std::vector<std::int64_t>> pass(Loader& loader) {
  std::vector<std::vector<std::int64_t>> out;
  while (auto batch = loader.next()) out.push_back(as_vector(batch->at("idx")));
  return out;
}

std::vector<std::int64_t> flatten(const std::vector<std::vector<std::int64_t>>& batches) {
  std::vector<std::int64_t> out;
  for (const auto& b : batches) out.insert(out.end(), b.begin(), b.end());
  return out;
}

bool same_batches(const Batch& a, const Batch& b) {
  if (a.keys() != b.keys()) return false;
  for (const auto& [key, t] : a)
    if (!torch::equal(t, b.at(key))) return false;
  return true;
}


static_assert(std::ranges::input_range<DataLoader<TensorDataset>>);
static_assert(!std::is_copy_constructible_v<DataLoader<TensorDataset>>);
static_assert(std::is_move_constructible_v<DataLoader<TensorDataset>>);
// A loader must not be built over a temporary dataset it would outlive.
static_assert(!std::is_constructible_v<DataLoader<TensorDataset>, TensorDataset&&, DataLoaderOptions>);

TEST_CASE("num_batches rounds up, or down with drop_last, and num_samples is the dataset size") {
  const auto ds10 = index_dataset(10), ds9 = index_dataset(9);
  CHECK(DataLoader(ds10, opts(3, false)).num_batches() == 4);
  CHECK(DataLoader(ds10, opts(3, false, 0, true)).num_batches() == 3);
  CHECK(DataLoader(ds9, opts(3, false)).num_batches() == 3);
  CHECK(DataLoader(ds9, opts(3, false, 0, true)).num_batches() == 3);
  CHECK(DataLoader(ds9, opts(20, false, 0, true)).num_batches() == 0);
  CHECK(DataLoader(ds10, opts(3, false)).num_samples() == 10);

  DataLoader loader(ds10, opts(3, false));
  const auto batches = pass(loader);
  REQUIRE(batches.size() == 4);
  CHECK(batches.back() == std::vector<std::int64_t>{9});
  DataLoader dropping(ds10, opts(3, false, 0, true));
  CHECK(pass(dropping).size() == 3);
}

TEST_CASE("sequential order is 0..n-1, and a shuffled epoch holds every index exactly once") {
  const auto ds = index_dataset(103);
  DataLoader sequential(ds, opts(10, false));
  std::vector<std::int64_t> iota(103);
  std::iota(iota.begin(), iota.end(), 0);
  CHECK(flatten(pass(sequential)) == iota);

  for (const std::int64_t workers : {0, 2}) {
    CAPTURE(workers);
    DataLoader shuffled(ds, opts(10, true, workers));
    auto seen = flatten(pass(shuffled));
    CHECK(seen != iota);
    std::ranges::sort(seen);
    CHECK(seen == iota);
    // drop_last: 100 distinct indices, the 3 left out being the tail of the epoch's order.
    DataLoader dropping(ds, opts(10, true, workers, true));
    auto kept = flatten(pass(dropping));
    CHECK(kept.size() == 100);
    std::ranges::sort(kept);
    CHECK(std::ranges::adjacent_find(kept) == kept.end());
  }
}

TEST_CASE("shuffled order is PyTorch's for (seed, epoch): same epoch same order, epochs differ") {
  const auto ds = index_dataset(10);
  DataLoader loader(ds, opts(4, true, 0, false, 42));
  // torch.randperm(10, generator=torch.Generator().manual_seed(42 + e)) for e = 0, 1, 2
  // (tests/data/data/randperm_reference.json).
  const std::vector<std::int64_t> e0{2, 6, 1, 8, 4, 5, 0, 9, 3, 7}, e1{8, 4, 9, 0, 5, 1, 6, 7, 2, 3},
      e2{2, 6, 3, 8, 7, 9, 1, 4, 5, 0};
  const auto first = pass(loader);
  CHECK(first.size() == 3);
  CHECK(flatten(first) == e0);
  // A call after the end of a pass moves on to the next epoch, as accelerate's sampler does.
  CHECK(flatten(pass(loader)) == e1);
  CHECK(loader.epoch() == 1);
  loader.set_epoch(2);
  CHECK(flatten(pass(loader)) == e2);
  loader.set_epoch(0);
  CHECK(flatten(pass(loader)) == e0);
  // Another seed, another order; data_seed 41 at epoch 1 is seed 42 at epoch 0.
  DataLoader other(ds, opts(4, true, 0, false, 41));
  CHECK(flatten(pass(other)) != e0);
  other.set_epoch(1);
  CHECK(flatten(pass(other)) == e0);
}

TEST_CASE("num_workers 0 and 2 deliver identical batches, in the same order") {
  const auto tensors = index_dataset(57);
  ProbeDataset probe{.n = 57};
  for (const bool shuffle : {false, true}) {
    for (const bool drop_last : {false, true}) {
      CAPTURE(shuffle);
      CAPTURE(drop_last);
      DataLoader ref_loader(tensors, opts(5, shuffle, 0, drop_last));
      DataLoader probe_ref(probe, opts(5, shuffle, 0, drop_last));
      std::vector<Batch> reference, probe_reference;
      for (std::int64_t epoch = 0; epoch < 2; ++epoch) {
        ref_loader.set_epoch(epoch);
        probe_ref.set_epoch(epoch);
        while (auto b = ref_loader.next()) reference.push_back(*b);
        while (auto b = probe_ref.next()) probe_reference.push_back(*b);
      }
      for (const std::int64_t workers : {1, 2, 3}) {
        for (const std::int64_t prefetch : {1, 2, 4}) {
          CAPTURE(workers);
          CAPTURE(prefetch);
          auto o = opts(5, shuffle, workers, drop_last);
          o.prefetch_factor = prefetch;
          DataLoader loader(tensors, o);
          DataLoader probe_loader(probe, o);
          std::vector<Batch> got, probe_got;
          for (std::int64_t epoch = 0; epoch < 2; ++epoch) {
            loader.set_epoch(epoch);
            probe_loader.set_epoch(epoch);
            while (auto b = loader.next()) got.push_back(*b);
            while (auto b = probe_loader.next()) probe_got.push_back(*b);
          }
          REQUIRE(got.size() == reference.size());
          REQUIRE(probe_got.size() == probe_reference.size());
          bool all_same = true;
          for (std::size_t i = 0; i < got.size(); ++i)
            all_same = all_same && same_batches(got[i], reference[i]) && same_batches(probe_got[i], probe_reference[i]);
          CHECK(all_same);
        }
      }
    }
  }
}

TEST_CASE("the gather path equals get + DefaultCollate") {
  const auto tensors = index_dataset(23);
  ProbeDataset probe{.n = 23};
  DataLoader a(tensors, opts(4, true));
  DataLoader b(probe, opts(4, true));
  while (true) {
    auto x = a.next();
    auto y = b.next();
    REQUIRE(x.has_value() == y.has_value());
    if (!x) break;
    CHECK(torch::equal(x->at("idx"), y->at("idx")));
    CHECK(torch::equal(x->at("x").to(torch::kLong), y->at("x")));
    CHECK(x->at("x").sizes() == torch::IntArrayRef{x->batch_size(), 2});
  }
}

TEST_CASE("skip_to(k) then next() delivers batch k of the current epoch") {
  const auto ds = index_dataset(50);
  for (const std::int64_t workers : {0, 2}) {
    for (const bool shuffle : {false, true}) {
      CAPTURE(workers);
      CAPTURE(shuffle);
      DataLoader full(ds, opts(7, shuffle, workers));
      full.set_epoch(3);
      const auto expected = pass(full);
      REQUIRE(expected.size() == 8);
      DataLoader loader(ds, opts(7, shuffle, workers));
      loader.set_epoch(3);
      loader.skip_to(5);
      CHECK(loader.position() == 5);
      const auto rest = pass(loader);
      REQUIRE(rest.size() == 3);
      CHECK(rest[0] == expected[5]);
      CHECK(rest[2] == expected[7]);
      // Skipping mid-pass, backwards too: workers restart where asked.
      loader.set_epoch(3);
      (void)loader.next();
      (void)loader.next();
      loader.skip_to(1);
      CHECK(as_vector(loader.next()->at("idx")) == expected[1]);
      loader.skip_to(8);
      CHECK_FALSE(loader.next().has_value());
      CHECK_THROWS_AS(loader.skip_to(9), trainpp::Error);
    }
  }
}

TEST_CASE("skip_to is O(1) in the examples: on 10M examples it reads only the batch it delivers") {
  ProbeDataset big{.n = 10'000'000};
  for (const bool shuffle : {false, true}) {
    CAPTURE(shuffle);
    big.gets = 0;
    DataLoader loader(big, opts(32, shuffle));
    const std::size_t target = loader.num_batches() - 3;
    const auto start = std::chrono::steady_clock::now();
    loader.skip_to(target);
    const auto batch = loader.next();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    REQUIRE(batch.has_value());
    CHECK(big.gets.load() == 32);
    std::vector<std::int64_t> expected(32);
    std::iota(expected.begin(), expected.end(), static_cast<std::int64_t>(target * 32));
    if (shuffle) {
      const auto order = trainpp::RandomSampler(10'000'000, 42).epoch_indices(0);
      expected.assign(order.begin() + static_cast<std::ptrdiff_t>(target * 32),
                      order.begin() + static_cast<std::ptrdiff_t>(target * 32 + 32));
    }
    CHECK(as_vector(batch->at("idx")) == expected);
    // Drawing the permutation of 10M indices is the only O(n) work (~0.1 s); touching every example
    // would take minutes.
    CHECK(seconds < 10.0);
  }
  // With workers, nothing before the target is read either; at most the prefetch window after it.
  big.gets = 0;
  DataLoader loader(big, opts(32, false, 2));
  loader.skip_to(loader.num_batches() - 3);
  REQUIRE(loader.next().has_value());
  CHECK(big.gets.load() <= 3 * 32);
}

TEST_CASE("an exception while building a batch surfaces from next(), then the pass goes on") {
  for (const std::int64_t workers : {0, 2}) {
    CAPTURE(workers);
    ProbeDataset failing{.n = 12, .throw_at = 5};
    DataLoader loader(failing, opts(2, false, workers));
    CHECK(as_vector(loader.next()->at("idx")) == std::vector<std::int64_t>{0, 1});
    CHECK(as_vector(loader.next()->at("idx")) == std::vector<std::int64_t>{2, 3});
    CHECK_THROWS_WITH_AS((void)loader.next(), "disk on fire at 5", std::runtime_error);
    CHECK(as_vector(loader.next()->at("idx")) == std::vector<std::int64_t>{6, 7});
    // The exception keeps its type.
    ProbeDataset typed{.n = 12, .throw_at = 0, .throw_trainpp_error = true};
    DataLoader typed_loader(typed, opts(4, false, workers));
    CHECK_THROWS_AS((void)typed_loader.next(), trainpp::Error);
  }
}

TEST_CASE("destroying, restarting or moving a loader with running workers neither hangs nor loses order") {
  ProbeDataset slow{.n = 400, .delay = std::chrono::microseconds(200)};
  const auto start = std::chrono::steady_clock::now();
  {
    DataLoader loader(slow, opts(4, true, 4));
    REQUIRE(loader.next().has_value());
  }  // workers are mid-batch here
  {
    const auto fast = index_dataset(1000);
    DataLoader loader(fast, opts(2, false, 3));
    REQUIRE(loader.next().has_value());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the workers fill the window and wait
  }
  {
    DataLoader loader(slow, opts(4, true, 2));
    (void)loader.next();
    loader.set_epoch(1);
    (void)loader.next();
    loader.skip_to(50);
    (void)loader.next();
    loader.set_epoch(0);
    CHECK(pass(loader).size() == 100);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(seconds < 10.0);

  const auto ds = index_dataset(40);
  DataLoader reference(ds, opts(3, true, 0));
  const auto expected = pass(reference);
  DataLoader loader(ds, opts(3, true, 2));
  std::vector<std::vector<std::int64_t>> got;
  got.push_back(as_vector(loader.next()->at("idx")));
  DataLoader moved(std::move(loader));
  for (auto& b : pass(moved)) got.push_back(b);
  CHECK(got == expected);
}

TEST_CASE("range-for iterates the rest of the pass, and a new begin() starts the next epoch") {
  const auto ds = index_dataset(10);
  DataLoader loader(ds, opts(4, false, 2));
  (void)loader.next();
  std::size_t count = 0;
  for (const Batch& batch : loader) count += static_cast<std::size_t>(batch.batch_size());
  CHECK(count == 6);
  count = 0;
  for (const Batch& batch : loader) count += static_cast<std::size_t>(batch.batch_size());
  CHECK(count == 10);
}

TEST_CASE("a custom example type goes through a custom collate") {
  struct Numbers {
    std::size_t size() const { return 5; }
    std::int64_t get(std::size_t i) const { return static_cast<std::int64_t>(i * i); }
  } numbers;
  struct ToBatch {
    Batch operator()(std::vector<std::int64_t>&& xs) const { return Batch{{"labels", torch::tensor(xs)}}; }
  };
  for (const std::int64_t workers : {0, 1}) {
    DataLoader<Numbers, ToBatch> loader(numbers, opts(2, false, workers));
    std::vector<std::int64_t> all;
    while (auto b = loader.next()) for (auto v : as_vector(b->at("labels"))) all.push_back(v);
    CHECK(all == std::vector<std::int64_t>{0, 1, 4, 9, 16});
  }
}

TEST_CASE("batches come out with no autograd history and on the requested device") {
  const auto ds = index_dataset(6);
  DataLoader loader(ds, opts(3, false, 1));
  const auto batch = loader.next();
  REQUIRE(batch);
  CHECK(batch->at("x").device() == torch::Device(torch::kCPU));
  CHECK_FALSE(batch->at("x").requires_grad());
  CHECK_FALSE(batch->at("x").is_inference());  // a model may save it for backward
}

TEST_CASE("worker threads run single-threaded ops, as torch's worker processes do, and the caller keeps its threads") {
  struct ThreadProbe {
    mutable std::atomic<int> threads_seen{-1};
    std::size_t size() const { return 8; }
    Batch get(std::size_t i) const {
      threads_seen = at::get_num_threads();
      return Batch{{"idx", torch::tensor(static_cast<std::int64_t>(i))}};
    }
  } probe;
  const int caller_threads = at::get_num_threads();
  {
    DataLoader loader(probe, opts(4, false, 0));
    (void)loader.next();
    CHECK(probe.threads_seen == caller_threads);
  }
  {
    DataLoader loader(probe, opts(4, false, 2));
    (void)pass(loader);
    CHECK(probe.threads_seen == 1);
  }
  CHECK(at::get_num_threads() == caller_threads);
}

TEST_CASE("invalid options are rejected") {
  const auto ds = index_dataset(6);
  CHECK_THROWS_AS(DataLoader(ds, opts(0, false)), trainpp::Error);
  CHECK_THROWS_AS(DataLoader(ds, opts(2, false, -1)), trainpp::Error);
  auto o = opts(2, false, 1);
  o.prefetch_factor = 0;
  CHECK_THROWS_AS(DataLoader(ds, o), trainpp::Error);
}

TEST_CASE("train/eval loader options follow HF's get_train/eval_dataloader") {
  trainpp::TrainingArguments args;
  auto train = trainpp::train_loader_options(args, torch::kCPU);
  CHECK(train.batch_size == 8);
  CHECK(train.shuffle);
  CHECK_FALSE(train.drop_last);
  CHECK(train.num_workers == 0);
  CHECK(train.prefetch_factor == 2);
  CHECK(train.seed == 42);
  CHECK_FALSE(train.pin_memory);  // dataloader_pin_memory is true, but pinning means nothing for CPU
  CHECK(train.device == torch::Device(torch::kCPU));

  args.per_device_train_batch_size = 16;
  args.per_device_eval_batch_size = 64;
  args.dataloader_drop_last = true;
  args.dataloader_num_workers = 3;
  args.dataloader_prefetch_factor = 5;
  args.seed = 1;
  args.data_seed = 7;
  train = trainpp::train_loader_options(args, torch::Device(torch::kCUDA, 1));
  CHECK(train.batch_size == 16);
  CHECK(train.drop_last);
  CHECK(train.num_workers == 3);
  CHECK(train.prefetch_factor == 5);
  CHECK(train.seed == 7);
  CHECK(train.pin_memory);
  CHECK(train.device == torch::Device(torch::kCUDA, 1));

  const auto eval = trainpp::eval_loader_options(args, torch::kCPU);
  CHECK(eval.batch_size == 64);
  CHECK_FALSE(eval.shuffle);
  CHECK(eval.drop_last);  // HF passes dataloader_drop_last to eval loaders too
  CHECK(eval.num_workers == 3);

  args.train_sampling_strategy = trainpp::SamplingStrategy::sequential;
  args.dataloader_pin_memory = false;
  train = trainpp::train_loader_options(args, torch::kCUDA);
  CHECK_FALSE(train.shuffle);
  CHECK_FALSE(train.pin_memory);
}

TEST_CASE("DefaultDataLoader builds HF's train, eval and test loaders") {
  const auto ds = index_dataset(20);
  trainpp::TrainingArguments args;
  args.per_device_train_batch_size = 3;
  args.per_device_eval_batch_size = 6;
  const trainpp::DefaultDataLoader policy;
  auto train = policy.train_loader(ds, args, torch::kCPU);
  static_assert(std::is_same_v<decltype(train), DataLoader<TensorDataset>>);
  CHECK(train.num_batches() == 7);
  CHECK(train.options().shuffle);
  auto eval = policy.eval_loader(ds, args, torch::kCPU);
  CHECK(eval.num_batches() == 4);
  CHECK(as_vector(eval.next()->at("idx")) == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5});
  auto test = policy.test_loader(ds, args, torch::kCPU);
  CHECK_FALSE(test.options().shuffle);
}

}  // namespace data_loader_test
