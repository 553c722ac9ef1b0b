// NormalizedString keeps, through every change, the original bytes each normalized byte stands for;
// invalid UTF-8 is repaired as Python's decode(errors="replace") does; \s in patterns is Oniguruma's.

#include <trainpp/tokenizers/normalized_string.hpp>

#include <doctest/doctest.h>

namespace tokenizers_normalized_string_test {

using namespace trainpp::tokenizers;

TEST_CASE("NormalizedString maps normalized ranges back to the original through changes") {
  NormalizedString s("Héllo");
  s.map_each(unicode::to_lowercase);
  s.prepend("_");
  CHECK(s.get() == "_héllo");
  // The prepended '_' and the 'h' both stand for the original 'H'.
  CHECK(s.normalized_to_original({0, 1}) == Offsets{0, 1});
  CHECK(s.normalized_to_original({1, 2}) == Offsets{0, 1});
  CHECK(s.normalized_to_original({2, 4}) == Offsets{1, 3});  // é, two bytes
  s.filter([](char32_t c) { return c != U'l'; });
  CHECK(s.get() == "_héo");
  CHECK(s.normalized_to_original({4, 5}) == Offsets{5, 6});
  const auto piece = s.slice({2, 5});
  CHECK(piece.get() == "éo");
  CHECK(piece.offsets_original() == Offsets{1, 6});
}

TEST_CASE("NormalizedString replace and split keep alignments") {
  NormalizedString s("a  b");
  s.replace(Pattern::string(" "), "\xE2\x96\x81");
  CHECK(s.get() == "a\xE2\x96\x81\xE2\x96\x81" "b");
  CHECK(s.normalized_to_original({1, 4}) == Offsets{1, 2});
  const auto parts = s.split(Pattern::string("\xE2\x96\x81"), SplitBehavior::merged_with_next);
  REQUIRE(parts.size() == 3);
  CHECK(parts[2].get() == "\xE2\x96\x81" "b");
  CHECK(parts[2].offsets_original() == Offsets{2, 4});
}

TEST_CASE("repair_utf8 replaces ill-formed bytes as Python's decode(errors=replace)") {
  // b"a\xed\xa0\x80b\xe2\x82\xc0\xafz\xf0\x9f\x98".decode("utf-8", "replace") == 'a���b���z�'
  const std::string fffd = "\xEF\xBF\xBD";
  CHECK(unicode::repair_utf8("a\xed\xa0\x80" "b\xe2\x82\xc0\xafz\xf0\x9f\x98") ==
        "a" + fffd + fffd + fffd + "b" + fffd + fffd + fffd + "z" + fffd);
  CHECK(unicode::repair_utf8("caf\xC3\xA9 \xF0\x9F\x98\x80") == "caf\xC3\xA9 \xF0\x9F\x98\x80");
}

TEST_CASE("Regex reads \\s as the White_Space property, U+0085 included") {
  const Regex re(R"(\s+)");
  CHECK(re.find_all("a\xC2\x85" "b") == std::vector<Offsets>{{1, 3}});
  CHECK(Regex(R"(\S+)").find_all("a\xC2\x85" "b") == std::vector<Offsets>{{0, 1}, {3, 4}});
  CHECK_THROWS_WITH_AS(Regex("(unclosed"), doctest::Contains("does not compile"), trainpp::Error);
}

}  // namespace tokenizers_normalized_string_test
