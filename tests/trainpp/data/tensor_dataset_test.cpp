// TensorDataset: rows as examples, gather equal to the default collation of get.

#include <trainpp/data/collate.hpp>
#include <trainpp/data/dataset.hpp>
#include <trainpp/data/tensor_dataset.hpp>

#include <doctest/doctest.h>

using trainpp::Batch;
using trainpp::TensorDataset;

static_assert(trainpp::Dataset<TensorDataset>);
static_assert(trainpp::GatherDataset<TensorDataset>);
static_assert(std::is_same_v<trainpp::example_t<TensorDataset>, Batch>);

namespace tensor_dataset_test {
TEST_CASE("TensorDataset: get(i) is the i-th row of every tensor") {
  const auto images = torch::arange(5 * 2 * 3, torch::kFloat).reshape({5, 2, 3});
  const auto labels = torch::tensor({4, 3, 2, 1, 0}, torch::kLong);
  const TensorDataset ds{{"pixel_values", images}, {"labels", labels}};
  REQUIRE(ds.size() == 5);
  const Batch example = ds.get(3);
  CHECK(example.keys() == std::vector<std::string>{"pixel_values", "labels"});
  CHECK(torch::equal(example.at("pixel_values"), images[3]));
  CHECK(example.at("labels").dim() == 0);
  CHECK(example.at("labels").item<std::int64_t>() == 1);
  CHECK_THROWS_AS((void)ds.get(5), trainpp::Error);
}

TEST_CASE("TensorDataset: gather equals DefaultCollate of the examples") {
  const auto images = torch::randn({7, 1, 4, 4});
  const auto labels = torch::arange(7, torch::kLong);
  const TensorDataset ds{{"pixel_values", images}, {"labels", labels}};
  const std::vector<std::int64_t> indices{6, 0, 3, 3};
  const Batch gathered = ds.gather(indices);
  std::vector<Batch> examples;
  for (auto i : indices) examples.push_back(ds.get(static_cast<std::size_t>(i)));
  const Batch collated = trainpp::DefaultCollate{}(std::move(examples));
  CHECK(gathered.keys() == collated.keys());
  for (const auto& [key, t] : collated) CHECK(torch::equal(gathered.at(key), t));
  CHECK(torch::equal(gathered.at("labels"), torch::tensor({6, 0, 3, 3}, torch::kLong)));
  CHECK_THROWS_AS((void)ds.gather({1, 7}), trainpp::Error);
  CHECK_THROWS_AS((void)ds.gather({-1}), trainpp::Error);
}

TEST_CASE("TensorDataset rejects tensors of different lengths, 0-dim tensors and no tensors") {
  try {
    const TensorDataset ds{{"pixel_values", torch::zeros({5, 2})}, {"labels", torch::zeros({4})}};
    FAIL("no error");
  } catch (const trainpp::Error& e) {
    const std::string message = e.what();
    CHECK(message.find("'labels'") != std::string::npos);
    CHECK(message.find("'pixel_values'") != std::string::npos);
  }
  CHECK_THROWS_AS(TensorDataset({{"x", torch::tensor(1)}}), trainpp::Error);
  CHECK_THROWS_AS(TensorDataset(Batch{}), trainpp::Error);
}

}  // namespace tensor_dataset_test
