// Encoding and its operations (merge_with, truncate, pad) on hand-made encodings, against what the
// `tokenizers` library's Encoding gives (truncate(max_length, stride, direction), pad(...)) on a
// WordLevel tokenizer's encoding of the same tokens.

#include <trainpp/tokenizers/encoding.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace encoding_test {

using namespace trainpp::tokenizers;
using Ids = std::vector<std::uint32_t>;

/// Tokens with ids first..first+n-1, word i at characters 2i..2i+1, as encode("a b c ...") gives.
Encoding sequence(std::uint32_t first, std::uint32_t n) {
  Encoding e;
  for (std::uint32_t i = 0; i < n; ++i) e.push(first + i, std::string(1, static_cast<char>('a' + first + i)), {2 * i, 2 * i + 1}, i, 0, false);
  return e;
}

std::vector<Ids> window_ids(const Encoding& e) {
  std::vector<Ids> out;
  for (const auto& w : e.overflowing) out.push_back(w.ids);
  return out;
}

TEST_CASE("encoding: push, append and range keep every field in step") {
  Encoding e;
  e.push(5, "[CLS]", {0, 0}, std::nullopt, 0, true);
  e.append(sequence(0, 3));
  CHECK(e.size() == 4);
  CHECK(e.ids == Ids{5, 0, 1, 2});
  CHECK(e.special_tokens_mask == Ids{1, 0, 0, 0});
  CHECK(e.attention_mask == Ids{1, 1, 1, 1});
  CHECK((e.word_ids == std::vector<std::optional<std::uint32_t>>{std::nullopt, 0, 1, 2}));
  const auto middle = e.range(1, 3);
  CHECK(middle.ids == Ids{0, 1});
  CHECK(middle.tokens == std::vector<std::string>{"a", "b"});
  CHECK(middle.offsets == std::vector<Offsets>{{0, 1}, {2, 3}});
  CHECK(middle.type_ids.size() == 2);
  CHECK(middle.special_tokens_mask == Ids{0, 0});
  // append leaves the other's windows out.
  auto with_window = sequence(3, 1);
  with_window.overflowing.push_back(sequence(4, 1));
  e.append(with_window);
  CHECK(e.ids.back() == 3);
  CHECK(e.overflowing.empty());
}

TEST_CASE("encoding: truncate cuts windows overlapping by the stride, from either side") {
  // encode("a b c d e f g").truncate(3, 1, "right"): [0, 1, 2], windows [2, 3, 4], [4, 5, 6]
  auto e = sequence(0, 7);
  truncate(e, 3, 1, Direction::right);
  CHECK(e.ids == Ids{0, 1, 2});
  CHECK(window_ids(e) == std::vector<Ids>{{2, 3, 4}, {4, 5, 6}});
  // truncate(3, 1, "left"): [4, 5, 6], windows [2, 3, 4], [0, 1, 2]
  e = sequence(0, 7);
  truncate(e, 3, 1, Direction::left);
  CHECK(e.ids == Ids{4, 5, 6});
  CHECK(window_ids(e) == std::vector<Ids>{{2, 3, 4}, {0, 1, 2}});
  CHECK(e.offsets.front() == Offsets{8, 9});
  // truncate(3, 0, "left"): the last window is what is left, shorter.
  e = sequence(0, 7);
  truncate(e, 3, 0, Direction::left);
  CHECK(window_ids(e) == std::vector<Ids>{{1, 2, 3}, {0}});
  // encode("a b c d e").truncate(2, 1, "left"): [3, 4], windows [2, 3], [1, 2], [0, 1]
  e = sequence(0, 5);
  truncate(e, 2, 1, Direction::left);
  CHECK(e.ids == Ids{3, 4});
  CHECK(window_ids(e) == std::vector<Ids>{{2, 3}, {1, 2}, {0, 1}});
}

TEST_CASE("encoding: truncate to the length or beyond is nothing, to zero moves everything to a window") {
  auto e = sequence(0, 3);
  truncate(e, 3, 2, Direction::right);
  CHECK(e.ids == Ids{0, 1, 2});
  CHECK(e.overflowing.empty());
  truncate(e, 0, 0, Direction::right);
  CHECK(e.size() == 0);
  CHECK(e.attention_mask.empty());
  CHECK(window_ids(e) == std::vector<Ids>{{0, 1, 2}});
  e = sequence(0, 5);
  CHECK_THROWS_WITH_AS(truncate(e, 3, 3, Direction::right), doctest::Contains("stride 3 must be smaller than the length 3"),
                       trainpp::Error);
}

TEST_CASE("encoding: pad fills either side with masked special tokens, windows included") {
  // encode("a b c").pad(5, direction="left", pad_id=6, pad_type_id=2, pad_token="g")
  auto e = sequence(0, 3);
  pad(e, 5, 6, 2, "g", Direction::left);
  CHECK(e.ids == Ids{6, 6, 0, 1, 2});
  CHECK(e.type_ids == Ids{2, 2, 0, 0, 0});
  CHECK(e.attention_mask == Ids{0, 0, 1, 1, 1});
  CHECK(e.special_tokens_mask == Ids{1, 1, 0, 0, 0});
  CHECK(e.tokens == std::vector<std::string>{"g", "g", "a", "b", "c"});
  CHECK(e.offsets == std::vector<Offsets>{{0, 0}, {0, 0}, {0, 1}, {2, 3}, {4, 5}});
  CHECK((e.word_ids == std::vector<std::optional<std::uint32_t>>{std::nullopt, std::nullopt, 0, 1, 2}));

  e = sequence(0, 4);
  truncate(e, 3, 0, Direction::right);  // [0, 1, 2] and the window [3]
  pad(e, 4, 9, 0, "<pad>", Direction::left);
  CHECK(e.ids == Ids{9, 0, 1, 2});
  REQUIRE(e.overflowing.size() == 1);  // padding on the left keeps the windows
  CHECK(e.overflowing[0].ids == Ids{9, 9, 9, 3});
  pad(e, 2, 9, 0, "<pad>", Direction::right);  // shorter than what is there: nothing
  CHECK(e.ids == Ids{9, 0, 1, 2});
  auto right = sequence(0, 1);
  pad(right, 3, 9, 0, "<pad>", Direction::right);
  CHECK(right.ids == Ids{0, 9, 9});
  CHECK(right.attention_mask == Ids{1, 0, 0});
}

TEST_CASE("encoding: merge_with combines every window of one with the other and its windows") {
  auto a = sequence(0, 2);
  a.overflowing.push_back(sequence(10, 1));
  auto b = sequence(20, 1);
  b.overflowing.push_back(sequence(30, 1));
  b.overflowing.push_back(sequence(31, 1));
  merge_with(a, b);
  CHECK(a.ids == Ids{0, 1, 20});
  // The library's order: each window of a with all of b, then with each window of b; then all of a
  // with each window of b.
  CHECK(window_ids(a) == std::vector<Ids>{{10, 20}, {10, 30}, {10, 31}, {0, 1, 30}, {0, 1, 31}});
  Encoding empty;
  merge_with(empty, sequence(0, 2));
  CHECK(empty.ids == Ids{0, 1});
  CHECK(empty.overflowing.empty());
}

}  // namespace encoding_test
