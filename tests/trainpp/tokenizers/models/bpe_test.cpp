// The three models on hand-made vocabularies, with what the `tokenizers` library gives for them
// (Tokenizer.from_str on the same JSON): BPE's merge order, byte fallback and fused unknowns,
// WordPiece's greedy longest match, Unigram's best segmentation.

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

TEST_CASE("WordPiece takes the longest known piece from the left, else the unknown token") {
  const auto wp = WordPiece::from_json(nlohmann::json::parse(
      R"({"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 10,
          "vocab": {"[UNK]": 0, "un": 1, "##aff": 2, "##able": 3, "una": 4, "##ffable": 5}})"));
  const auto t = wp.tokenize("unaffable");  // "una" + "##ffable" beats "un" + "##aff" + "##able"
  CHECK(ids(t) == std::vector<std::uint32_t>{4, 5});
  CHECK(t[1].offsets == Offsets{3, 9});
  CHECK(ids(wp.tokenize("unx")) == std::vector<std::uint32_t>{0});
  CHECK(ids(wp.tokenize("unaffableun")) == std::vector<std::uint32_t>{0});  // longer than 10 characters
}

TEST_CASE("Unigram picks the segmentation with the best score and fuses unknown characters") {
  const auto u = Unigram::from_json(nlohmann::json::parse(
      R"({"type": "Unigram", "unk_id": 0, "byte_fallback": false,
          "vocab": [["<unk>", 0.0], ["a", -1.0], ["b", -1.0], ["ab", -1.5], ["abc", -4.0], ["c", -1.0]]})"));
  CHECK(ids(u.tokenize("abc")) == std::vector<std::uint32_t>{3, 5});  // -2.5 beats abc's -4 and a+b+c's -3
  const auto t = u.tokenize("axyb");
  CHECK(ids(t) == std::vector<std::uint32_t>{1, 0, 2});
  CHECK(t[1].value == "xy");
  CHECK(t[1].offsets == Offsets{1, 3});
}

}  // namespace tokenizers_models_test
