// The BPE model on hand-made vocabularies, with what the `tokenizers` library gives for it
// (Tokenizer.from_str on the same JSON): merge order, byte fallback and fused unknowns.

#include <trainpp/tokenizers/models/bpe.hpp>
#include <trainpp/tokenizers.hpp>

#include <doctest/doctest.h>

namespace tokenizers_models_test {

using namespace trainpp::tokenizers;

nlohmann::json bpe_spec() {
  return nlohmann::json::parse(R"({"type": "BPE", "dropout": null, "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
    "vocab": {"<unk>": 0, "a": 1, "b": 2, "c": 3, "ab": 4, "bc": 5, "abc": 6, "<0xC3>": 7, "<0xA9>": 8, "aa": 9},
    "merges": [["b", "c"], ["a", "b"], ["a", "bc"], ["a", "a"]]})");
}

std::vector<std::uint32_t> ids(const std::vector<Token>& tokens) {
  std::vector<std::uint32_t> out;
  for (const auto& t : tokens) out.push_back(t.id);
  return out;
}

TEST_CASE("BPE merges by rank, falls back to bytes and fuses unknowns") {
  const auto bpe = BPE::from_json(bpe_spec());
  CHECK(ids(bpe.tokenize("abc")) == std::vector<std::uint32_t>{6});
  CHECK(ids(bpe.tokenize("aabbcc")) == std::vector<std::uint32_t>{1, 4, 5, 3});
  CHECK(ids(bpe.tokenize("aaa")) == std::vector<std::uint32_t>{9, 1});  // equal ranks: the leftmost first
  CHECK(ids(bpe.tokenize("aaab")) == std::vector<std::uint32_t>{9, 4});
  const auto e = bpe.tokenize("ab\xC3\xA9");
  CHECK(ids(e) == std::vector<std::uint32_t>{4, 7, 8});
  CHECK(e[1].offsets == Offsets{2, 3});
  const auto unk = bpe.tokenize("ab\xE4\xB8\xAD\xE6\x96\x87" "c");  // two CJK characters: one <unk>
  CHECK(ids(unk) == std::vector<std::uint32_t>{4, 0, 3});
  CHECK(unk[1].offsets == Offsets{2, 8});
}

TEST_CASE("BPE refuses merges outside the vocabulary and dropout") {
  auto spec = bpe_spec();
  spec["merges"].push_back({"c", "a"});
  CHECK_THROWS_WITH_AS(BPE::from_json(spec), doctest::Contains("result of merge"), trainpp::Error);
  spec = bpe_spec();
  spec["dropout"] = 0.1;
  CHECK_THROWS_WITH_AS(BPE::from_json(spec), doctest::Contains("dropout"), trainpp::Error);
}

}  // namespace tokenizers_models_test
