// data/batch.hpp: Batch as HF's inputs dict: insertion order, lookups and their error message, the
// batch size from the first defined tensor, moves between devices that share what is already there,
// and copies without some keys.

#include <trainpp/data/batch.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace batch_test {

using trainpp::Batch;

TEST_CASE("batch: keys keep their insertion order, and operator[] appends an undefined tensor for a new key") {
  Batch b{{"input_ids", torch::arange(6).reshape({2, 3})}, {"labels", torch::tensor({1, 0})}};
  CHECK(b.size() == 2);
  CHECK_FALSE(b.empty());
  CHECK(b.keys() == std::vector<std::string>{"input_ids", "labels"});

  torch::Tensor& added = b["attention_mask"];
  CHECK_FALSE(added.defined());
  CHECK(b.contains("attention_mask"));
  CHECK(b.keys() == std::vector<std::string>{"input_ids", "labels", "attention_mask"});
  added = torch::ones({2, 3});
  CHECK(torch::equal(b.at("attention_mask"), torch::ones({2, 3})));

  // An existing key is found, not added again, and assigning through it replaces its tensor in place.
  b["labels"] = torch::tensor({7, 8});
  CHECK(b.size() == 3);
  CHECK(b.keys() == std::vector<std::string>{"input_ids", "labels", "attention_mask"});
  CHECK(torch::equal(b.at("labels"), torch::tensor({7, 8})));

  std::vector<std::string> iterated;
  for (const auto& [key, tensor] : b) iterated.push_back(key);
  CHECK(iterated == b.keys());
}

TEST_CASE("batch: at() of a missing key is an Error that lists the keys there are") {
  const Batch b{{"x", torch::zeros({2})}, {"labels", torch::zeros({2})}};
  CHECK_THROWS_WITH_AS((void)b.at("label"), "batch has no tensor named 'label' (it has: x, labels)", trainpp::Error);
  CHECK_FALSE(b.contains("label"));
  CHECK_FALSE(b.contains(""));
  const Batch empty;
  CHECK(empty.empty());
  CHECK(empty.keys().empty());
  CHECK_THROWS_WITH_AS((void)empty.at("x"), "batch has no tensor named 'x' (it has: )", trainpp::Error);
  // A lookup does not insert: the const at() leaves the batch as it was.
  CHECK(b.size() == 2);
}

TEST_CASE("batch: batch_size is the leading dimension of the first defined tensor") {
  CHECK(Batch{}.batch_size() == 0);
  CHECK(Batch{{"x", torch::zeros({5, 3})}, {"labels", torch::zeros({4})}}.batch_size() == 5);
  // Undefined tensors (a key reserved by operator[]) are skipped.
  Batch b;
  (void)b["reserved"];
  CHECK(b.batch_size() == 0);
  b["labels"] = torch::zeros({7});
  CHECK(b.batch_size() == 7);
  // One example of a dataset holds 0-dim tensors (a scalar label): that is one example.
  CHECK(Batch{{"labels", torch::tensor(3)}}.batch_size() == 1);
  CHECK(Batch{{"x", torch::zeros({0, 2})}}.batch_size() == 0);
}

TEST_CASE("batch: without() drops the named keys, keeps the order and shares the tensors") {
  const auto x = torch::randn({2, 2});
  const auto mask = torch::ones({2, 2});
  const auto labels = torch::tensor({1, 0});
  const Batch b{{"x", x}, {"labels", labels}, {"mask", mask}};
  const Batch inputs = b.without({"labels", "not_there"});
  CHECK(inputs.keys() == std::vector<std::string>{"x", "mask"});
  CHECK(inputs.at("x").is_same(x));
  CHECK(inputs.at("mask").is_same(mask));
  CHECK(b.keys() == std::vector<std::string>{"x", "labels", "mask"});  // the original keeps them
  CHECK(b.without({}).keys() == b.keys());
  CHECK(b.without({"x", "labels", "mask"}).empty());
}

TEST_CASE("batch: to() shares tensors already on the device, copies the others, and keeps undefined ones") {
  Batch b{{"x", torch::arange(4, torch::kFloat)}, {"labels", torch::tensor({1, 2})}};
  (void)b["reserved"];
  const Batch same = b.to(torch::kCPU);
  CHECK(same.keys() == b.keys());
  CHECK(same.at("x").is_same(b.at("x")));
  CHECK(same.at("labels").is_same(b.at("labels")));
  CHECK_FALSE(same.at("reserved").defined());

  // The meta device stands for another device here: the copy lands there, the original stays put.
  const Batch moved = b.to(torch::Device(torch::kMeta));
  CHECK(moved.keys() == b.keys());
  CHECK(moved.at("x").device().is_meta());
  CHECK(moved.at("labels").device().is_meta());
  CHECK(moved.at("x").sizes() == b.at("x").sizes());
  CHECK((moved.at("labels").scalar_type() == b.at("labels").scalar_type()));
  CHECK_FALSE(moved.at("reserved").defined());
  CHECK(b.at("x").device().is_cpu());
  CHECK(moved.batch_size() == 4);
}

}  // namespace batch_test
