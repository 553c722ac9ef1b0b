// The WordPiece model on hand-made vocabularies, against what the `tokenizers` library's
// models.WordPiece(vocab, unk_token, ...).tokenize gives for the same words (byte offsets); plus the
// errors for bad "model" objects.

#include <trainpp/tokenizers/models/wordpiece.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace wordpiece_test {

using namespace trainpp::tokenizers;
using Ids = std::vector<std::uint32_t>;

std::vector<std::uint32_t> ids(const std::vector<Token>& tokens) {
  std::vector<std::uint32_t> out;
  for (const auto& t : tokens) out.push_back(t.id);
  return out;
}

WordPiece parse(const char* spec) { return WordPiece::from_json(nlohmann::json::parse(spec)); }

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

TEST_CASE("wordpiece: multi-byte characters, offsets in bytes, the limit in characters") {
  const auto wp = parse(R"({"type": "WordPiece", "unk_token": "[UNK]", "max_input_chars_per_word": 3,
      "vocab": {"[UNK]": 0, "\u00e9": 1, "##\u00e9": 2, "##a": 3, "a": 4, "@@b": 5}})");
  // tokenize("éaé") == [(1, 'é', (0, 2)), (3, '##a', (2, 3)), (2, '##é', (3, 5))]
  const auto t = wp.tokenize("\xC3\xA9" "a\xC3\xA9");
  CHECK(ids(t) == Ids{1, 3, 2});
  CHECK(t[2].value == "##\xC3\xA9");
  CHECK(t[2].offsets == Offsets{3, 5});
  CHECK(ids(wp.tokenize("a\xC3\xA9" "a")) == Ids{4, 2, 3});
  // Four characters (six bytes) are over the limit of three: the whole word is [UNK], with its byte range.
  const auto long_word = wp.tokenize("\xC3\xA9" "a\xC3\xA9" "a");
  REQUIRE(long_word.size() == 1);
  CHECK(long_word[0].id == 0);
  CHECK(long_word[0].value == "[UNK]");
  CHECK(long_word[0].offsets == Offsets{0, 6});
  // One unknown piece makes the whole word unknown, even after known ones.
  const auto ab = wp.tokenize("ab");
  CHECK(ids(ab) == Ids{0});
  CHECK(ab[0].offsets == Offsets{0, 2});
}

TEST_CASE("wordpiece: the continuing prefix is the model's") {
  const auto wp = parse(R"({"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "@@",
      "vocab": {"[UNK]": 0, "a": 4, "@@b": 5, "##b": 6}})");
  CHECK(ids(wp.tokenize("abb")) == Ids{4, 5, 5});
  CHECK(wp.tokenize("ab")[1].value == "@@b");
  CHECK(wp.tokenize("").empty());
  CHECK(wp.id_to_token(6) == "##b");
  CHECK_FALSE(wp.id_to_token(7).has_value());
  CHECK(wp.token_to_id("@@b") == 5u);
  CHECK_FALSE(wp.token_to_id("b").has_value());
  CHECK(wp.max_input_chars_per_word == 100);  // the default
}

TEST_CASE("wordpiece: a bad model object is an error naming the key") {
  CHECK_THROWS_WITH_AS(parse(R"({"type": "WordPiece", "unk_token": "<unk>", "vocab": {"[UNK]": 0}})"),
                       doctest::Contains("\"unk_token\" \"<unk>\" is not in the vocabulary"), trainpp::Error);
  // The default unknown token must be there too.
  CHECK_THROWS_WITH_AS(parse(R"({"type": "WordPiece", "vocab": {"a": 0}})"), doctest::Contains("\"[UNK]\" is not in the vocabulary"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"type": "WordPiece", "vocab": {"[UNK]": -1}})"),
                       doctest::Contains("the id of \"[UNK]\" is not an unsigned integer"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"type": "WordPiece", "vocab": [["[UNK]", 0]]})"), doctest::Contains("\"vocab\" must be an object"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"type": "WordPiece", "max_input_chars_per_word": "10", "vocab": {"[UNK]": 0}})"),
                       doctest::Contains("\"max_input_chars_per_word\" has the wrong type"), trainpp::Error);
}

}  // namespace wordpiece_test
