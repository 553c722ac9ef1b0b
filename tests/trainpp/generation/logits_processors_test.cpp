// The logits processors against transformers' classes of the same name on the same scores
// (causal_generate_hf_reference.py runs them), and the properties generate relies on.

#include <trainpp/generation/logits_processors.hpp>

#include <doctest/doctest.h>

#include "skip.hpp"
#include "trainpp/generation/causal_reference.hpp"

#include <cmath>
#include <limits>

namespace logits_processors_test {

using generation_reference::matrix;

/// Equal within `tolerance`, and -inf exactly where the other is -inf.
void check_close(const torch::Tensor& got, const torch::Tensor& want, double tolerance = 1e-6) {
  REQUIRE(got.sizes() == want.sizes());
  CHECK(torch::equal(got.isinf(), want.isinf()));
  const auto finite = want.isfinite();
  const double difference = (got.index({finite}) - want.index({finite})).abs().max().item<double>();
  INFO("largest difference " << difference);
  CHECK(difference <= tolerance);
}

TEST_CASE("repetition penalty, temperature, top-k and top-p equal transformers' logits processors" *
          doctest::test_suite("integration")) {
  const auto dir = generation_reference::causal_reference_dir();
  if (!dir) TRAINPP_SKIP_TEST("transformers cannot be imported here, or there is no interpreter");
  const auto reference = trainpp::read_json_file(*dir / "reference.json").at("processors");
  const auto scores = matrix(reference["scores"], torch::kFloat32);
  const auto tie_scores = matrix(reference["tie_scores"], torch::kFloat32);
  const auto input_ids = matrix(reference["input_ids"], torch::kInt64);
  const auto ignored_prefix = torch::tensor(reference["ignored_prefix"].get<std::vector<std::int64_t>>());
  auto want = [&](const char* key) { return matrix(reference[key], torch::kFloat32); };

  check_close(trainpp::apply_repetition_penalty(scores, input_ids, 1.7), want("repetition_penalty_1.7"));
  check_close(trainpp::apply_repetition_penalty(scores, input_ids, 0.6, ignored_prefix),
              want("repetition_penalty_0.6_ignored_prefix"));
  check_close(trainpp::apply_temperature(scores, 0.7), want("temperature_0.7"));
  check_close(trainpp::apply_top_k(tie_scores, 5), want("top_k_5"));
  check_close(trainpp::apply_top_k(tie_scores, 3, 4), want("top_k_3_keep_4"));
  check_close(trainpp::apply_top_p(tie_scores, 0.8), want("top_p_0.8"));
  check_close(trainpp::apply_top_p(tie_scores, 0.01, 2), want("top_p_0.01_keep_2"));
}

TEST_CASE("the processors: what each keeps, penalises and leaves alone") {
  const auto scores = torch::tensor({{2.0f, -1.0f, 0.5f, 3.0f, -4.0f}, {0.0f, 1.0f, 2.0f, 3.0f, 4.0f}});
  constexpr float inf = std::numeric_limits<float>::infinity();

  // A repeated token is penalised once; the ignored prefix does not count.
  const auto sequences = torch::tensor({{0, 1, 1}, {4, 4, 2}});
  CHECK(torch::allclose(trainpp::apply_repetition_penalty(scores, sequences, 2.0),
                        torch::tensor({{1.0f, -2.0f, 0.5f, 3.0f, -4.0f}, {0.0f, 1.0f, 1.0f, 3.0f, 2.0f}})));
  CHECK(torch::allclose(trainpp::apply_repetition_penalty(scores, sequences, 2.0, torch::tensor({1, 2})),
                        torch::tensor({{2.0f, -2.0f, 0.5f, 3.0f, -4.0f}, {0.0f, 1.0f, 1.0f, 3.0f, 4.0f}})));

  CHECK(torch::equal(trainpp::apply_top_k(scores, 2),
                     torch::tensor({{2.0f, -inf, -inf, 3.0f, -inf}, {-inf, -inf, -inf, 3.0f, 4.0f}})));
  CHECK(torch::equal(trainpp::apply_top_k(scores, 0), scores));
  CHECK(torch::equal(trainpp::apply_top_k(scores, 99), scores));

  // Row 2: softmax of 0..4 puts 0.64 on 4 and 0.24 on 3: top_p 0.7 keeps both, 0.5 only the first.
  CHECK(torch::equal(trainpp::apply_top_p(scores, 0.7).select(0, 1), torch::tensor({-inf, -inf, -inf, 3.0f, 4.0f})));
  CHECK(torch::equal(trainpp::apply_top_p(scores, 0.5).select(0, 1), torch::tensor({-inf, -inf, -inf, -inf, 4.0f})));
  CHECK(torch::equal(trainpp::apply_top_p(scores, 1.0), scores));

  const auto eos = torch::tensor({1, 3});
  CHECK(torch::equal(trainpp::apply_min_length(scores, eos, 2, 3).select(1, 3), torch::full({2}, -inf)));
  CHECK(torch::equal(trainpp::apply_min_length(scores, eos, 3, 3), scores));
}

}  // namespace logits_processors_test
