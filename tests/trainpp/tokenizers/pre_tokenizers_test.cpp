// The pre-tokenizers of tokenizer.json, built by PreTokenizer::from_json as Tokenizer builds them,
// against the `tokenizers` library's pre_tokenize_str on the same text (its character offsets written
// here as byte offsets); plus the errors for bad "pre_tokenizer" objects.

#include <trainpp/tokenizers/pre_tokenizers.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace pre_tokenizers_test {

using namespace trainpp::tokenizers;
using Pieces = std::vector<std::pair<std::string, Offsets>>;

PreTokenizer parse(const char* spec) { return PreTokenizer::from_json(nlohmann::json::parse(spec)); }

PreTokenizedString whole(const std::string& text) {
  PreTokenizedString s;
  s.original = text;
  s.splits.push_back({NormalizedString(text), std::nullopt});
  return s;
}

Pieces pieces(const PreTokenizedString& s) {
  Pieces out;
  for (const auto& split : s.splits) out.emplace_back(split.text.get(), split.text.offsets_original());
  return out;
}

Pieces pre_tokenize(const PreTokenizer& p, const std::string& text) {
  auto s = whole(text);
  p(s);
  return pieces(s);
}

const std::string G = "\xC4\xA0";       // Ġ, GPT-2's space
const std::string M = "\xE2\x96\x81";   // ▁, the metaspace

TEST_CASE("pre_tokenizers: ByteLevel splits by GPT-2's expression and maps bytes to printable characters") {
  // ByteLevel(add_prefix_space=True).pre_tokenize_str("Hello world's  end")
  CHECK(pre_tokenize(parse(R"({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true})"),
                     "Hello world's  end") ==
        Pieces{{G + "Hello", {0, 5}}, {G + "world", {5, 11}}, {"'s", {11, 13}}, {G, {13, 14}}, {G + "end", {14, 18}}});
  // A text that already starts with a space gets no second one.
  CHECK(pre_tokenize(parse(R"({"type": "ByteLevel"})"), " x") == Pieces{{G + "x", {0, 2}}});
  // Without the expression the text stays whole; each byte of é is a character of its own.
  CHECK(pre_tokenize(parse(R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": false})"), "a \xC3\xA9") ==
        Pieces{{"a" + G + "\xC3\x83\xC2\xA9", {0, 4}}});
}

TEST_CASE("pre_tokenizers: ByteLevel's byte map is GPT-2's bijection onto printable characters") {
  const auto& table = trainpp::tokenizers::detail::byte_to_char();
  CHECK(table['A'] == U'A');
  CHECK(table[' '] == U'\u0120');
  CHECK(table[0] == U'\u0100');
  CHECK(table[0xAD] == U'\u0143');  // the soft hyphen is not printable: the 68th remapped byte
  CHECK(table[0xFF] == U'\u00FF');
  std::vector<char32_t> sorted(table.begin(), table.end());
  std::sort(sorted.begin(), sorted.end());
  CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
}

TEST_CASE("pre_tokenizers: BertPreTokenizer drops whitespace and isolates punctuation, Unicode's included") {
  // BertPreTokenizer().pre_tokenize_str("Hello, world!  «x»"); « and » are two bytes each.
  CHECK(pre_tokenize(parse(R"({"type": "BertPreTokenizer"})"), "Hello, world!  \xC2\xABx\xC2\xBB") ==
        Pieces{{"Hello", {0, 5}}, {",", {5, 6}}, {"world", {7, 12}}, {"!", {12, 13}},
               {"\xC2\xAB", {15, 17}}, {"x", {17, 18}}, {"\xC2\xBB", {18, 20}}});
}

TEST_CASE("pre_tokenizers: Whitespace, WhitespaceSplit, Digits and a flattened Sequence") {
  CHECK(pre_tokenize(parse(R"({"type": "Whitespace"})"), "Hi!! there_x 3.5") ==
        Pieces{{"Hi", {0, 2}}, {"!!", {2, 4}}, {"there_x", {5, 12}}, {"3", {13, 14}}, {".", {14, 15}}, {"5", {15, 16}}});
  // U+00A0 is whitespace too: WhitespaceSplit().pre_tokenize_str(" a\tb\u00a0c ")
  CHECK(pre_tokenize(parse(R"({"type": "WhitespaceSplit"})"), " a\tb\xC2\xA0" "c ") ==
        Pieces{{"a", {1, 2}}, {"b", {3, 4}}, {"c", {6, 7}}});
  CHECK(pre_tokenize(parse(R"({"type": "Digits", "individual_digits": true})"), "ab123c4") ==
        Pieces{{"ab", {0, 2}}, {"1", {2, 3}}, {"2", {3, 4}}, {"3", {4, 5}}, {"c", {5, 6}}, {"4", {6, 7}}});
  CHECK(pre_tokenize(parse(R"({"type": "Digits"})"), "ab123c4") ==
        Pieces{{"ab", {0, 2}}, {"123", {2, 5}}, {"c", {5, 6}}, {"4", {6, 7}}});
  const auto seq = parse(R"({"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"},
                            {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true}]}]})");
  CHECK(seq.steps.size() == 2);
  CHECK(pre_tokenize(seq, "a1 22") == Pieces{{"a", {0, 1}}, {"1", {1, 2}}, {"2", {3, 4}}, {"2", {4, 5}}});
}

TEST_CASE("pre_tokenizers: Punctuation and Split with each behavior") {
  const auto punct = [](const char* behavior) {
    return pre_tokenize(PreTokenizer::from_json({{"type", "Punctuation"}, {"behavior", behavior}}), "a,b!?c");
  };
  CHECK(punct("Removed") == Pieces{{"a", {0, 1}}, {"b", {2, 3}}, {"c", {5, 6}}});
  CHECK(punct("Isolated") == Pieces{{"a", {0, 1}}, {",", {1, 2}}, {"b", {2, 3}}, {"!", {3, 4}}, {"?", {4, 5}}, {"c", {5, 6}}});
  CHECK(punct("MergedWithPrevious") == Pieces{{"a,", {0, 2}}, {"b!", {2, 4}}, {"?", {4, 5}}, {"c", {5, 6}}});
  CHECK(punct("MergedWithNext") == Pieces{{"a", {0, 1}}, {",b", {1, 3}}, {"!", {3, 4}}, {"?c", {4, 6}}});
  CHECK(punct("Contiguous") == Pieces{{"a", {0, 1}}, {",", {1, 2}}, {"b", {2, 3}}, {"!?", {3, 5}}, {"c", {5, 6}}});
  CHECK(pre_tokenize(parse(R"({"type": "Punctuation"})"), "a,b") == Pieces{{"a", {0, 1}}, {",", {1, 2}}, {"b", {2, 3}}});

  CHECK(pre_tokenize(parse(R"({"type": "Split", "pattern": {"Regex": "\\d+"}, "behavior": "Isolated", "invert": false})"), "ab12cd3") ==
        Pieces{{"ab", {0, 2}}, {"12", {2, 4}}, {"cd", {4, 6}}, {"3", {6, 7}}});
  // invert: the matches are the pieces, the rest is what is removed.
  CHECK(pre_tokenize(parse(R"({"type": "Split", "pattern": {"Regex": "\\d+"}, "behavior": "Removed", "invert": true})"), "ab12cd3") ==
        Pieces{{"12", {2, 4}}, {"3", {6, 7}}});
  CHECK(pre_tokenize(parse(R"({"type": "Split", "pattern": {"String": "--"}, "behavior": "MergedWithPrevious"})"), "a--b--") ==
        Pieces{{"a--", {0, 3}}, {"b--", {3, 6}}});
}

TEST_CASE("pre_tokenizers: Metaspace replaces spaces and prepends by its scheme") {
  const auto meta = [](const char* scheme, bool split, const std::string& text) {
    return pre_tokenize(PreTokenizer::from_json({{"type", "Metaspace"}, {"replacement", M}, {"prepend_scheme", scheme}, {"split", split}}),
                        text);
  };
  CHECK(meta("always", true, "Hey friend") == Pieces{{M + "Hey", {0, 3}}, {M + "friend", {3, 10}}});
  CHECK(meta("never", true, "Hey friend") == Pieces{{"Hey", {0, 3}}, {M + "friend", {3, 10}}});
  CHECK(meta("always", false, "Hey  friend") == Pieces{{M + "Hey" + M + M + "friend", {0, 11}}});
  CHECK(meta("first", true, " Hey") == Pieces{{M + "Hey", {0, 4}}});  // no second ▁ before a leading space

  // "first" prepends only to the piece at the start of the input: a later piece (after an added
  // token, say) gets none, while "always" gives it one.
  const auto later = [&](const char* scheme) {
    PreTokenizedString s;
    s.original = "ab cd";
    s.splits.push_back({NormalizedString("ab cd").slice({3, 5}), std::nullopt});
    PreTokenizer::from_json({{"type", "Metaspace"}, {"prepend_scheme", scheme}})(s);
    return pieces(s);
  };
  CHECK(later("first") == Pieces{{"cd", {3, 5}}});
  CHECK(later("always") == Pieces{{M + "cd", {3, 5}}});
}

TEST_CASE("pre_tokenizers: pieces that already have their tokens are left alone") {
  PreTokenizedString s;
  s.original = "a b<x>c d";
  const NormalizedString all(s.original);
  s.splits.push_back({all.slice({0, 3}), std::nullopt});
  s.splits.push_back({all.slice({3, 6}), std::vector<Token>{{7, "<x>", {0, 3}}}});
  s.splits.push_back({all.slice({6, 9}), std::nullopt});
  parse(R"({"type": "WhitespaceSplit"})")(s);
  CHECK(pieces(s) == Pieces{{"a", {0, 1}}, {"b", {2, 3}}, {"<x>", {3, 6}}, {"c", {6, 7}}, {"d", {8, 9}}});
  REQUIRE(s.splits[2].tokens.has_value());
  CHECK(s.splits[2].tokens->front().id == 7);
  // ByteLevel does not remap the added token's text either.
  parse(R"({"type": "ByteLevel", "add_prefix_space": false})")(s);
  CHECK(s.splits[2].text.get() == "<x>");
  CHECK(s.splits[1].text.get() == "b");
}

TEST_CASE("pre_tokenizers: a bad pre_tokenizer object is an error naming the key") {
  CHECK_THROWS_WITH_AS(parse(R"({"type": "CharDelimiterSplit", "delimiter": "x"})"),
                       doctest::Contains("pre_tokenizer type \"CharDelimiterSplit\" is not supported"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"type": "Punctuation", "behavior": "Dropped"})"),
                       doctest::Contains("\"behavior\" \"Dropped\" is not one of Removed"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"type": "Split", "pattern": {"String": " "}})"), doctest::Contains("pre_tokenizer has no \"behavior\""),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"type": "Metaspace", "prepend_scheme": "sometimes"})"),
                       doctest::Contains("\"prepend_scheme\" \"sometimes\" is not one of always, first, never"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"type": "Metaspace", "split": 1})"), doctest::Contains("\"split\" has the wrong type"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse("\"Whitespace\""), doctest::Contains("pre_tokenizer must be an object, got string"), trainpp::Error);
  CHECK(PreTokenizer::from_json(nullptr).steps.empty());
}

}  // namespace pre_tokenizers_test
