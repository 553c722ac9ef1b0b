// The generated character classes of the `tokenizers` library (Unicode 8.0's categories): lookups at
// range edges, the tables' order, and where they differ from today's Unicode (the library's NFD leaves
// 'a\u1df6\u0323' as it is, where Python's unicodedata reorders it).

#include <trainpp/tokenizers/unicode_tables.hpp>

#include <doctest/doctest.h>

#include <trainpp/tokenizers/normalizers.hpp>

#include <iterator>
#include <string>

namespace unicode_tables_test {

namespace tables = trainpp::tokenizers::unicode::tables;

template <std::size_t N>
bool sorted_and_disjoint(const tables::CodePointRange (&ranges)[N]) {
  for (std::size_t i = 0; i < N; ++i) {
    if (ranges[i].first > ranges[i].last) return false;
    if (i > 0 && ranges[i].first <= ranges[i - 1].last) return false;
  }
  return true;
}

TEST_CASE("unicode_tables: contains finds both ends of a range and nothing around it") {
  CHECK_FALSE(tables::contains(tables::control, 0x0));  // below the first range
  CHECK(tables::contains(tables::control, 0x1));
  CHECK(tables::contains(tables::control, 0x8));
  CHECK_FALSE(tables::contains(tables::control, 0x9));  // tab and newline are whitespace, not control
  CHECK_FALSE(tables::contains(tables::control, 0xA));
  CHECK(tables::contains(tables::control, 0x7F));
  CHECK(tables::contains(tables::control, 0x9F));
  CHECK_FALSE(tables::contains(tables::control, 0xA0));
  CHECK(tables::contains(tables::control, 0xAD));  // a one-character range
  CHECK_FALSE(tables::contains(tables::control, 0xAE));
  CHECK(tables::contains(tables::control, 0x10FFFD));  // the end of the last range
  CHECK_FALSE(tables::contains(tables::control, 0x10FFFE));
  CHECK_FALSE(tables::contains(tables::control, 0x378));  // unassigned (Cn) is not control
}

TEST_CASE("unicode_tables: punctuation, non-spacing marks and unknown combining classes") {
  CHECK(tables::contains(tables::punctuation, 0xA1));   // ¡
  CHECK_FALSE(tables::contains(tables::punctuation, 0xA2));  // ¢ is a symbol
  CHECK(tables::contains(tables::punctuation, 0xAB));   // «
  CHECK(tables::contains(tables::punctuation, 0x3001)); // 、
  CHECK_FALSE(tables::contains(tables::punctuation, '!'));  // ASCII is left to the callers
  CHECK(tables::contains(tables::nonspacing_mark, 0x300));
  CHECK(tables::contains(tables::nonspacing_mark, 0x36F));
  CHECK_FALSE(tables::contains(tables::nonspacing_mark, 0x370));
  CHECK_FALSE(tables::contains(tables::nonspacing_mark, 0x903));  // a spacing mark (Mc)
  CHECK(tables::contains(tables::unknown_combining, 0x1DF6));
  CHECK_FALSE(tables::contains(tables::unknown_combining, 0x1DF5));  // known to Unicode 8.0
  CHECK_FALSE(tables::contains(tables::unknown_combining, 0x301));
}

TEST_CASE("unicode_tables: every table is sorted and its ranges are disjoint, as the lookup needs") {
  CHECK(sorted_and_disjoint(tables::control));
  CHECK(sorted_and_disjoint(tables::punctuation));
  CHECK(sorted_and_disjoint(tables::nonspacing_mark));
  CHECK(sorted_and_disjoint(tables::unknown_combining));
  static_assert(tables::contains(tables::control, 0x7F), "contains is usable in constant expressions");
}

TEST_CASE("unicode_tables: a mark with an unknown combining class is a starter when marks are reordered") {
  using namespace trainpp::tokenizers;
  // U+1DF6 has class 232 today, U+0323 220: Unicode would put U+0323 first; the library does not.
  NormalizedString s("a\xE1\xB7\xB6\xCC\xA3");
  Normalizer::from_json(nlohmann::json{{"type", "NFD"}})(s);
  CHECK(s.get() == "a\xE1\xB7\xB6\xCC\xA3");
  // Marks it knows are still reordered.
  NormalizedString known("a\xCC\x81\xCC\xA3");
  Normalizer::from_json(nlohmann::json{{"type", "NFD"}})(known);
  CHECK(known.get() == "a\xCC\xA3\xCC\x81");
  CHECK(trainpp::tokenizers::detail::combining_class(0x1DF6) == 0);
  CHECK(trainpp::tokenizers::detail::combining_class(0x323) == 220);
}

}  // namespace unicode_tables_test
