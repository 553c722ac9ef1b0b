// DefaultCollate: stacking per key, and errors that name the key.

#include <trainpp/data/collate.hpp>

#include <doctest/doctest.h>

using trainpp::Batch;

namespace collate_test {

std::string collate_error(std::vector<Batch> examples) {
  try {
    (void)trainpp::DefaultCollate{}(std::move(examples));
  } catch (const trainpp::Error& e) {
    return e.what();
  }
  return "<no error>";
}


TEST_CASE("DefaultCollate stacks each key, and 0-dim tensors become a 1-D tensor") {
  std::vector<Batch> examples;
  for (int i = 0; i < 3; ++i)
    examples.push_back(Batch{{"pixel_values", torch::full({2, 3}, static_cast<float>(i))},
                             {"labels", torch::tensor(static_cast<std::int64_t>(10 + i))}});
  const Batch batch = trainpp::DefaultCollate{}(std::move(examples));
  CHECK(batch.keys() == std::vector<std::string>{"pixel_values", "labels"});
  CHECK(batch.at("pixel_values").sizes() == torch::IntArrayRef{3, 2, 3});
  CHECK(batch.at("labels").sizes() == torch::IntArrayRef{3});
  CHECK(batch.at("labels").dtype() == torch::kLong);
  CHECK(torch::equal(batch.at("labels"), torch::tensor({10, 11, 12}, torch::kLong)));
  CHECK(batch.at("pixel_values")[2][1][2].item<float>() == 2.0f);
  CHECK(batch.batch_size() == 3);
}

TEST_CASE("DefaultCollate: key order follows example 0, whatever the order in later examples") {
  std::vector<Batch> examples{Batch{{"a", torch::tensor(1)}, {"b", torch::tensor(2)}},
                              Batch{{"b", torch::tensor(4)}, {"a", torch::tensor(3)}}};
  const Batch batch = trainpp::DefaultCollate{}(std::move(examples));
  CHECK(batch.keys() == std::vector<std::string>{"a", "b"});
  CHECK(torch::equal(batch.at("a"), torch::tensor({1, 3})));
  CHECK(torch::equal(batch.at("b"), torch::tensor({2, 4})));
}

TEST_CASE("DefaultCollate errors name the key") {
  SUBCASE("a key missing from a later example") {
    const auto message = collate_error({Batch{{"input_ids", torch::ones({4})}, {"labels", torch::tensor(1)}},
                                        Batch{{"input_ids", torch::ones({4})}}});
    CHECK(message.find("'labels'") != std::string::npos);
    CHECK(message.find("example 1") != std::string::npos);
  }
  SUBCASE("an extra key in a later example") {
    const auto message = collate_error({Batch{{"input_ids", torch::ones({4})}},
                                        Batch{{"input_ids", torch::ones({4})}, {"attention_mask", torch::ones({4})}}});
    CHECK(message.find("'attention_mask'") != std::string::npos);
  }
  SUBCASE("different shapes name the key and both shapes") {
    const auto message = collate_error({Batch{{"input_ids", torch::ones({5})}}, Batch{{"input_ids", torch::ones({5})}},
                                        Batch{{"input_ids", torch::ones({7})}}});
    CHECK(message.find("'input_ids'") != std::string::npos);
    CHECK(message.find("[5]") != std::string::npos);
    CHECK(message.find("[7]") != std::string::npos);
    CHECK(message.find("example 2") != std::string::npos);
  }
  SUBCASE("an undefined tensor") {
    const auto message = collate_error({Batch{{"x", torch::ones({1})}}, Batch{{"x", torch::Tensor()}}});
    CHECK(message.find("'x'") != std::string::npos);
    CHECK(message.find("undefined") != std::string::npos);
  }
}

TEST_CASE("DefaultCollate of no examples is an empty batch") {
  CHECK(trainpp::DefaultCollate{}({}).empty());
}

static_assert(trainpp::CollateFor<trainpp::DefaultCollate, Batch>);
static_assert(!trainpp::CollateFor<trainpp::DefaultCollate, int>);

}  // namespace collate_test
