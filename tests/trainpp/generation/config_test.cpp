// GenerationConfig: the sampling keys and several end tokens of HF's generation_config.json, read,
// written and refused.

#include <trainpp/generation/config.hpp>

#include <doctest/doctest.h>

namespace generation_config_test {

using trainpp::GenerationConfig;

TEST_CASE("GenerationConfig reads HF's sampling keys and a list of end tokens, and writes them back") {
  const auto c = GenerationConfig::from_json(nlohmann::json::parse(R"({
    "do_sample": true, "temperature": 0.7, "top_k": 20, "top_p": 0.9, "repetition_penalty": 1.2,
    "num_return_sequences": 3, "max_new_tokens": 16, "bos_token_id": 1, "eos_token_id": [2, 5, 7],
    "pad_token_id": 0, "transformers_version": "5.24.0"})"));
  CHECK(c.do_sample);
  CHECK(c.temperature == 0.7);
  CHECK(c.top_k == 20);
  CHECK(c.top_p == 0.9);
  CHECK(c.repetition_penalty == 1.2);
  CHECK(c.num_return_sequences == 3);
  CHECK(c.eos_token_id == 2);
  CHECK(c.extra_eos_token_ids == std::vector<std::int64_t>{5, 7});
  CHECK(c.eos_token_ids() == std::vector<std::int64_t>{2, 5, 7});
  CHECK(c.effective_pad_token_id() == 0);

  const auto j = c.to_json();
  CHECK(j["eos_token_id"] == nlohmann::json::array({2, 5, 7}));
  CHECK(j["do_sample"] == true);
  CHECK(j["top_k"] == 20);
  const auto again = GenerationConfig::from_json(j);
  CHECK(again.eos_token_ids() == c.eos_token_ids());
  CHECK(again.top_p == c.top_p);
  CHECK(again.temperature == c.temperature);

  // HF's defaults when the keys are absent or null; one end token stays a number.
  const auto d = GenerationConfig::from_json(nlohmann::json::parse(R"({"top_k": null, "eos_token_id": [4]})"));
  CHECK_FALSE(d.do_sample);
  CHECK(d.top_k == 50);
  CHECK(d.temperature == 1.0);
  CHECK(d.top_p == 1.0);
  CHECK(d.repetition_penalty == 1.0);
  CHECK(d.extra_eos_token_ids.empty());
  CHECK(d.to_json()["eos_token_id"] == 4);
}

TEST_CASE("GenerationConfig refuses sampling settings it cannot use, naming the key") {
  auto refused = [](const char* text, const char* message) {
    CAPTURE(text);
    CHECK_THROWS_WITH_AS((void)GenerationConfig::from_json(nlohmann::json::parse(text), "g.json"),
                         doctest::Contains(message), trainpp::Error);
  };
  refused(R"({"do_sample": "yes"})", "g.json: key \"do_sample\": expected a boolean");
  refused(R"({"temperature": "hot"})", "key \"temperature\": expected a number");
  refused(R"({"do_sample": true, "temperature": 0})", "temperature must be a positive number");
  refused(R"({"top_k": -1})", "top_k must be >= 0");
  refused(R"({"top_p": 1.5})", "top_p must be in [0, 1]");
  refused(R"({"repetition_penalty": 0})", "repetition_penalty must be a positive number");
  refused(R"({"eos_token_id": []})", "key \"eos_token_id\": expected a token id or a non-empty list");
  refused(R"({"eos_token_id": [2, -1]})", "extra_eos_token_ids must be a token id");
  refused(R"({"num_return_sequences": 2})", "needs beam search (num_beams > 1) or sampling");
  refused(R"({"num_beams": 2, "num_return_sequences": 3})", "must not exceed num_beams");
  refused(R"({"num_beams": 2, "do_sample": true})", "beam sampling");
  refused(R"({"min_p": 0.1})", "key \"min_p\" is 0.1, which trainpp generation does not implement");
  refused(R"({"typical_p": 0.5})", "key \"typical_p\"");
  CHECK_NOTHROW((void)GenerationConfig::from_json(nlohmann::json::parse(R"({"min_p": null, "typical_p": 1.0})")));
}

}  // namespace generation_config_test
