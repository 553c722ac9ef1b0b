// The normalizers of tokenizer.json, built by Normalizer::from_json as Tokenizer builds them, against
// what the `tokenizers` library's normalizers give for the same input (normalize_str, and the
// original offsets of the pieces for the alignments); plus the errors for bad "normalizer" objects.

#include <trainpp/tokenizers/normalizers.hpp>

#include <doctest/doctest.h>

#include <string>

namespace normalizers_test {

using namespace trainpp::tokenizers;

Normalizer parse(const char* spec) { return Normalizer::from_json(nlohmann::json::parse(spec)); }

std::string normalize(const Normalizer& normalizer, const std::string& text) {
  NormalizedString s(text);
  normalizer(s);
  return s.get();
}

TEST_CASE("BertNormalizer cleans, spaces CJK, strips accents and lowercases with offsets") {
  // tokenizers: BertNormalizer().normalize(NormalizedString("Héllo\u0085 中文!")) -> 'hello  中  文 !'
  NormalizedString s("H\xC3\xA9llo\xC2\x85 \xE4\xB8\xAD\xE6\x96\x87!");
  BertNormalizer{}(s);
  CHECK(s.get() == "hello  \xE4\xB8\xAD  \xE6\x96\x87 !");
  CHECK(s.normalized_to_original({1, 2}) == Offsets{1, 3});  // 'e' from 'é'
  CHECK(s.normalized_to_original({5, 6}) == Offsets{8, 9});  // U+0085 (a control character) removed: the space
}

TEST_CASE("normalizers: BertNormalizer options each switch off one step") {
  // BertNormalizer(strip_accents=False, lowercase=True).normalize_str("Héllo") == 'héllo'
  CHECK(normalize(parse(R"({"type": "BertNormalizer", "strip_accents": false, "lowercase": true})"), "H\xC3\xA9llo") ==
        "h\xC3\xA9llo");
  // BertNormalizer(handle_chinese_chars=False, lowercase=False).normalize_str("Héllo中\t") == 'Héllo中 ':
  // unset strip_accents follows lowercase, so the accent stays too.
  CHECK(normalize(parse(R"({"type": "BertNormalizer", "handle_chinese_chars": false, "lowercase": false})"),
                  "H\xC3\xA9llo\xE4\xB8\xAD\t") == "H\xC3\xA9llo\xE4\xB8\xAD ");
  // clean_text=False keeps NUL and the tab.
  CHECK(normalize(parse(R"({"type": "BertNormalizer", "clean_text": false, "lowercase": false, "strip_accents": false})"),
                  std::string("a\0b\tc", 5)) == std::string("a\0b\tc", 5));
  // The defaults of a bare object are BERT's uncased ones.
  CHECK(normalize(parse(R"({"type": "BertNormalizer"})"), "\xC3\x89t\xC3\xA9") == "ete");
}

TEST_CASE("normalizers: BertNormalizer's classes are the library's, not the newest Unicode's") {
  // Cf (soft hyphen, zero-width space) and Co (private use) go; an unassigned U+0378 stays:
  // BertNormalizer(lowercase=False, strip_accents=False, handle_chinese_chars=False)
  //   .normalize_str('a\u00adb\u200bc\ue000d\u0378e') == 'abcd\u0378e'
  const BertNormalizer clean{.handle_chinese_chars = false, .strip_accents = false, .lowercase = false};
  NormalizedString s("a\xC2\xAD" "b\xE2\x80\x8B" "c\xEE\x80\x80" "d\xCD\xB8" "e");
  clean(s);
  CHECK(s.get() == "abcd\xCD\xB8" "e");
  // Stripping accents drops the non-spacing marks (U+0301, U+093C) and keeps a spacing one (U+0903):
  // BertNormalizer(lowercase=False, strip_accents=True, ...).normalize_str('e\u0301\u0903\u093c') == 'e\u0903'
  NormalizedString marks("e\xCC\x81\xE0\xA4\x83\xE0\xA4\xBC");
  BertNormalizer{.handle_chinese_chars = false, .strip_accents = true, .lowercase = false}(marks);
  CHECK(marks.get() == "e\xE0\xA4\x83");
}

TEST_CASE("normalizers: NFD, NFC, NFKD and NFKC as the library's unicode normalizers") {
  CHECK(normalize(parse(R"({"type": "NFD"})"), "\xC3\xA9") == "e\xCC\x81");
  CHECK(normalize(parse(R"({"type": "NFC"})"), "e\xCC\x81") == "\xC3\xA9");
  CHECK(normalize(parse(R"({"type": "NFKD"})"), "\xEF\xAC\x81") == "fi");           // the ligature ﬁ
  CHECK(normalize(parse(R"({"type": "NFKC"})"), "\xEF\xAC\x81\xE2\x91\xA0") == "fi1");  // ﬁ① -> fi1
  // Marks are put in canonical order (U+0323 below, class 220, before U+0301 above, class 230) ...
  CHECK(normalize(parse(R"({"type": "NFD"})"), "a\xCC\x81\xCC\xA3") == "a\xCC\xA3\xCC\x81");
  // ... and NFC then composes the first with its base: NFC().normalize_str('a\u0301\u0323') == '\u1ea1\u0301'
  CHECK(normalize(parse(R"({"type": "NFC"})"), "a\xCC\x81\xCC\xA3") == "\xE1\xBA\xA1\xCC\x81");
  // A second mark of the same class is blocked by the first: 'a\u0301\u0301' -> '\u00e1\u0301'
  CHECK(normalize(parse(R"({"type": "NFC"})"), "a\xCC\x81\xCC\x81") == "\xC3\xA1\xCC\x81");
}

TEST_CASE("normalizers: NFKC keeps every normalized byte aligned to the character it came from") {
  // Split on ' ' after NFKC: [('fi', (0, 1)), ('x', (2, 3))] in characters; ﬁ is three bytes here.
  NormalizedString s("\xEF\xAC\x81 x");
  parse(R"({"type": "NFKC"})")(s);
  REQUIRE(s.get() == "fi x");
  CHECK(s.normalized_to_original({0, 1}) == Offsets{0, 3});
  CHECK(s.normalized_to_original({1, 2}) == Offsets{0, 3});
  CHECK(s.normalized_to_original({3, 4}) == Offsets{4, 5});
}

TEST_CASE("normalizers: Lowercase, StripAccents, Strip, Prepend and Replace") {
  // Lowercase().normalize_str("ÀB İ") == 'àb i̇': İ lowercases to two characters, both from İ.
  NormalizedString lower("\xC3\x80" "B \xC4\xB0");
  parse(R"({"type": "Lowercase"})")(lower);
  CHECK(lower.get() == "\xC3\xA0" "b i\xCC\x87");
  CHECK(lower.normalized_to_original({4, 7}) == Offsets{4, 6});
  // StripAccents alone keeps a precomposed é; after NFD it removes the mark.
  CHECK(normalize(parse(R"({"type": "StripAccents"})"), "caf\xC3\xA9") == "caf\xC3\xA9");
  CHECK(normalize(parse(R"({"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "StripAccents"}]})"), "caf\xC3\xA9") ==
        "cafe");
  CHECK(normalize(parse(R"({"type": "Strip", "strip_left": true, "strip_right": false})"), "  a  ") == "a  ");
  CHECK(normalize(parse(R"({"type": "Strip"})"), " \t a b \n") == "a b");
  // Prepend leaves an empty text empty; the prefix stands for the first character.
  const auto prepend = parse(R"({"type": "Prepend", "prepend": "\u2581"})");
  CHECK(normalize(prepend, "").empty());
  NormalizedString p("ab c");
  prepend(p);
  CHECK(p.get() == "\xE2\x96\x81" "ab c");
  CHECK(p.normalized_to_original({0, 5}) == Offsets{0, 2});
  CHECK(normalize(parse(R"({"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"})"), "a b  c") ==
        "a\xE2\x96\x81" "b\xE2\x96\x81\xE2\x96\x81" "c");
  CHECK(normalize(parse(R"({"type": "Replace", "pattern": {"Regex": "\\d+"}, "content": "#"})"), "a12b3") == "a#b#");
}

TEST_CASE("normalizers: a Sequence is flattened, null is the identity") {
  const auto n = parse(R"({"type": "Sequence", "normalizers": [
      {"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "StripAccents"}]}, {"type": "Lowercase"}]})");
  CHECK(n.steps.size() == 3);
  CHECK(std::holds_alternative<UnicodeNormalizer>(n.steps[0]));
  CHECK(std::holds_alternative<Lowercase>(n.steps[2]));
  CHECK(normalize(n, "\xC3\x89T\xC3\xA9") == "ete");
  const auto none = Normalizer::from_json(nullptr);
  CHECK(none.empty());
  CHECK(normalize(none, "\xC3\x89 X") == "\xC3\x89 X");
}

TEST_CASE("normalizers: a bad normalizer object is an error naming the key") {
  CHECK_THROWS_WITH_AS(parse(R"({"type": "Precompiled", "precompiled_charsmap": ""})"),
                       doctest::Contains("normalizer type \"Precompiled\" is not supported"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse("[]"), doctest::Contains("normalizer must be an object, got array"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"lowercase": true})"), doctest::Contains("normalizer has no \"type\""), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"type": "BertNormalizer", "clean_text": "yes"})"),
                       doctest::Contains("\"clean_text\" has the wrong type (string)"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"type": "Replace", "pattern": {"Glob": "*"}, "content": ""})"),
                       doctest::Contains("\"pattern\" must be {\"String\": ...} or {\"Regex\": ...}"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"type": "Prepend"})"), doctest::Contains("normalizer has no \"prepend\""), trainpp::Error);
  // A bad step inside a Sequence is reported as well.
  CHECK_THROWS_WITH_AS(parse(R"({"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Nmt"}]})"),
                       doctest::Contains("\"Nmt\" is not supported"), trainpp::Error);
}

}  // namespace normalizers_test
