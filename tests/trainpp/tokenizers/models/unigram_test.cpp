// The Unigram model on hand-made vocabularies, against what the `tokenizers` library's
// models.Unigram(vocab, unk_id, byte_fallback).tokenize gives for the same words (byte offsets);
// plus the errors for bad "model" objects.

#include <trainpp/tokenizers/models/unigram.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace unigram_test {

using namespace trainpp::tokenizers;
using Ids = std::vector<std::uint32_t>;

std::vector<std::uint32_t> ids(const std::vector<Token>& tokens) {
  std::vector<std::uint32_t> out;
  for (const auto& t : tokens) out.push_back(t.id);
  return out;
}

Unigram parse(const char* spec) { return Unigram::from_json(nlohmann::json::parse(spec)); }

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

TEST_CASE("unigram: multi-byte pieces, unknown runs and their byte offsets") {
  const auto u = parse(R"({"type": "Unigram", "unk_id": 0,
      "vocab": [["<unk>", 0.0], ["ab", -1.0], ["a", -2.0], ["b", -2.0], ["\u00e9", -1.0], ["\u00e9a", -5.0]]})");
  // tokenize("ééa"): é + é + a (-4) beats é + éa (-6).
  const auto t = u.tokenize("\xC3\xA9\xC3\xA9" "a");
  CHECK(ids(t) == Ids{4, 4, 2});
  CHECK(t[1].offsets == Offsets{2, 4});
  CHECK(t[2].offsets == Offsets{4, 5});
  CHECK(ids(u.tokenize("\xC3\xA9" "ab")) == Ids{4, 1});
  CHECK(ids(u.tokenize("aba")) == Ids{1, 2});
  // An unknown run at the start, and a word that is all unknown.
  const auto z = u.tokenize("zzab");
  CHECK(ids(z) == Ids{0, 1});
  CHECK(z[0].value == "zz");
  CHECK(z[0].offsets == Offsets{0, 2});
  const auto cjk = u.tokenize("\xE4\xB8\xAD");
  REQUIRE(cjk.size() == 1);
  CHECK(cjk[0].id == 0);
  CHECK(cjk[0].offsets == Offsets{0, 3});
}

TEST_CASE("unigram: byte fallback spells an unknown character in <0xNN> pieces when all of them exist") {
  const auto u = parse(R"({"type": "Unigram", "unk_id": 0, "byte_fallback": true,
      "vocab": [["<unk>", 0.0], ["a", -1.0], ["b", -1.0], ["<0xC3>", -2.0], ["<0xA9>", -2.0], ["x", -3.0]]})");
  // tokenize("aéb"): both bytes of é have a piece, each with the whole character's offsets.
  const auto e = u.tokenize("a\xC3\xA9" "b");
  CHECK(ids(e) == Ids{1, 3, 4, 2});
  CHECK(e[1].value == "<0xC3>");
  CHECK(e[1].offsets == Offsets{1, 3});
  CHECK(e[2].offsets == Offsets{1, 3});
  // ü is C3 BC: <0xBC> is missing, so the character is the unknown token; so is 中.
  const auto u_umlaut = u.tokenize("a\xC3\xBC" "b");
  CHECK(ids(u_umlaut) == Ids{1, 0, 2});
  CHECK(u_umlaut[1].value == "\xC3\xBC");
  CHECK(ids(u.tokenize("a\xE4\xB8\xAD" "b")) == Ids{1, 0, 2});
}

TEST_CASE("unigram: id and token lookups") {
  const auto u = parse(R"({"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0], ["a", -1.0], ["b", -1.5]]})");
  CHECK(u.id_to_token(2) == "b");
  CHECK_FALSE(u.id_to_token(3).has_value());
  CHECK(u.token_to_id("a") == 1u);
  CHECK_FALSE(u.token_to_id("c").has_value());
  CHECK_FALSE(u.byte_fallback);
}

TEST_CASE("unigram: without an unknown token a character no piece covers is an error") {
  // The library: "Encountered an unknown token but `unk_id` is missing".
  const auto u = parse(R"({"type": "Unigram", "vocab": [["a", -1.0]]})");
  CHECK(ids(u.tokenize("aa")) == Ids{0, 0});
  CHECK_THROWS_WITH_AS((void)u.tokenize("ab"), doctest::Contains("has a character no piece covers and there is no \"unk_id\""),
                       trainpp::Error);
}

TEST_CASE("unigram: a bad model object is an error naming the key") {
  CHECK_THROWS_WITH_AS(parse(R"({"type": "Unigram", "unk_id": 3, "vocab": [["<unk>", 0.0], ["a", -1.0]]})"),
                       doctest::Contains("\"unk_id\" 3 is outside the vocabulary of 2"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"type": "Unigram", "vocab": [["a", "-1"]]})"),
                       doctest::Contains("vocabulary entry [\"a\",\"-1\"] is not [piece, score]"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"type": "Unigram", "vocab": {"a": -1.0}})"), doctest::Contains("\"vocab\" must be an array"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"type": "Unigram"})"), doctest::Contains("model (Unigram) has no \"vocab\""), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"type": "Unigram", "byte_fallback": 1, "vocab": []})"),
                       doctest::Contains("\"byte_fallback\" has the wrong type"), trainpp::Error);
}

}  // namespace unigram_test
