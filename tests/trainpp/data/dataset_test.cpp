// data/dataset.hpp: the Dataset, GatherDataset and PinnedGatherDataset concepts and example_t,
// against small dataset types that have, lack or misdeclare each member the concepts ask for.

#include <trainpp/data/dataset.hpp>

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace dataset_test {

using trainpp::Batch;
using trainpp::Dataset;
using trainpp::GatherDataset;
using trainpp::PinnedGatherDataset;

struct OnlyGet {
  std::size_t size() const { return 3; }
  int get(std::size_t i) const { return static_cast<int>(i); }
};
struct NoSize {
  int get(std::size_t i) const { return static_cast<int>(i); }
};
struct NoGet {
  std::size_t size() const { return 3; }
};
// Workers call get on a shared const dataset: a get that needs a mutable one does not qualify.
struct MutableGet {
  std::size_t size() const { return 3; }
  int get(std::size_t i) { return static_cast<int>(i); }
};
struct SizeIsText {
  std::string size() const { return "3"; }
  int get(std::size_t i) const { return static_cast<int>(i); }
};
struct SignedSize {
  int size() const { return 3; }
  Batch get(std::size_t) const { return {}; }
};
struct ReturnsReference {
  Batch example;
  std::size_t size() const { return 1; }
  const Batch& get(std::size_t) const { return example; }
};
struct Gathers {
  std::size_t size() const { return 2; }
  Batch get(std::size_t) const { return {}; }
  Batch gather(const std::vector<std::int64_t>&) const { return {}; }
};
struct GathersPinned : Gathers {
  using Gathers::gather;
  Batch gather(const std::vector<std::int64_t>&, bool) const { return {}; }
};
struct GatherNotABatch {
  std::size_t size() const { return 2; }
  Batch get(std::size_t) const { return {}; }
  std::vector<int> gather(const std::vector<std::int64_t>&) const { return {}; }
};
struct MutableGather {
  std::size_t size() const { return 2; }
  Batch get(std::size_t) const { return {}; }
  Batch gather(const std::vector<std::int64_t>&) { return {}; }
};
struct GatherWithoutDataset {  // gathers, but has no get
  std::size_t size() const { return 2; }
  Batch gather(const std::vector<std::int64_t>&) const { return {}; }
  Batch gather(const std::vector<std::int64_t>&, bool) const { return {}; }
};

TEST_CASE("dataset: Dataset needs a const get(i) and a size() convertible to std::size_t") {
  static_assert(trainpp::Dataset<OnlyGet> && !trainpp::GatherDataset<OnlyGet>);
  static_assert(!trainpp::Dataset<NoSize>);
  static_assert(!Dataset<NoGet>);
  static_assert(!Dataset<MutableGet>);
  static_assert(!Dataset<SizeIsText>);
  static_assert(Dataset<SignedSize>);
  CHECK(Dataset<OnlyGet>);
  CHECK_FALSE(Dataset<NoSize>);
  CHECK_FALSE(Dataset<NoGet>);
  CHECK_FALSE(Dataset<MutableGet>);
  CHECK_FALSE(Dataset<SizeIsText>);
  CHECK(Dataset<SignedSize>);
  CHECK_FALSE(Dataset<int>);
}

TEST_CASE("dataset: example_t is get's result without reference or const") {
  static_assert(std::is_same_v<trainpp::example_t<OnlyGet>, int>);
  static_assert(std::is_same_v<trainpp::example_t<ReturnsReference>, Batch>);
  static_assert(std::is_same_v<trainpp::example_t<Gathers>, Batch>);
  CHECK(std::is_same_v<trainpp::example_t<OnlyGet>, int>);
  CHECK(std::is_same_v<trainpp::example_t<ReturnsReference>, Batch>);
}

TEST_CASE("dataset: GatherDataset needs a const gather(indices) returning a Batch, on top of Dataset") {
  static_assert(GatherDataset<Gathers>);
  static_assert(!PinnedGatherDataset<Gathers>);
  static_assert(!GatherDataset<GatherNotABatch>);
  static_assert(!GatherDataset<MutableGather>);
  static_assert(!GatherDataset<GatherWithoutDataset>);
  CHECK(GatherDataset<Gathers>);
  CHECK_FALSE(PinnedGatherDataset<Gathers>);
  CHECK_FALSE(GatherDataset<GatherNotABatch>);
  CHECK_FALSE(GatherDataset<MutableGather>);
  CHECK_FALSE(GatherDataset<GatherWithoutDataset>);
  CHECK_FALSE(PinnedGatherDataset<GatherWithoutDataset>);
}

TEST_CASE("dataset: PinnedGatherDataset also takes gather(indices, pin_memory)") {
  static_assert(PinnedGatherDataset<GathersPinned>);
  static_assert(GatherDataset<GathersPinned>);
  CHECK(PinnedGatherDataset<GathersPinned>);
  CHECK(GatherDataset<GathersPinned>);
}

}  // namespace dataset_test
