#pragma once
// What encoding a text gives: the model's input ids and everything that describes them, field for
// field as the `tokenizers` library's Encoding (offsets are character offsets into the input).

#include <trainpp/tokenizers/normalized_string.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace trainpp::tokenizers {

struct Encoding {
  std::vector<std::uint32_t> ids;
  std::vector<std::uint32_t> type_ids;
  std::vector<std::string> tokens;
  std::vector<std::optional<std::uint32_t>> word_ids;
  std::vector<Offsets> offsets;
  std::vector<std::uint32_t> special_tokens_mask;
  std::vector<std::uint32_t> attention_mask;
  std::vector<Encoding> overflowing;  ///< the windows truncation cut off, each processed the same way

  [[nodiscard]] std::size_t size() const { return ids.size(); }

  void push(std::uint32_t id, std::string token, Offsets offset, std::optional<std::uint32_t> word, std::uint32_t type_id,
            bool special) {
    ids.push_back(id);
    type_ids.push_back(type_id);
    tokens.push_back(std::move(token));
    word_ids.push_back(word);
    offsets.push_back(offset);
    special_tokens_mask.push_back(special ? 1 : 0);
    attention_mask.push_back(1);
  }

  /// Appends `other`'s tokens (not its overflowing windows).
  void append(const Encoding& other) {
    ids.insert(ids.end(), other.ids.begin(), other.ids.end());
    type_ids.insert(type_ids.end(), other.type_ids.begin(), other.type_ids.end());
    tokens.insert(tokens.end(), other.tokens.begin(), other.tokens.end());
    word_ids.insert(word_ids.end(), other.word_ids.begin(), other.word_ids.end());
    offsets.insert(offsets.end(), other.offsets.begin(), other.offsets.end());
    special_tokens_mask.insert(special_tokens_mask.end(), other.special_tokens_mask.begin(), other.special_tokens_mask.end());
    attention_mask.insert(attention_mask.end(), other.attention_mask.begin(), other.attention_mask.end());
  }

  [[nodiscard]] Encoding range(std::size_t begin, std::size_t end) const {
    Encoding out;
    const auto cut = [&](const auto& v) { return std::decay_t<decltype(v)>(v.begin() + static_cast<std::ptrdiff_t>(begin), v.begin() + static_cast<std::ptrdiff_t>(end)); };
    out.ids = cut(ids);
    out.type_ids = cut(type_ids);
    out.tokens = cut(tokens);
    out.word_ids = cut(word_ids);
    out.offsets = cut(offsets);
    out.special_tokens_mask = cut(special_tokens_mask);
    out.attention_mask = cut(attention_mask);
    return out;
  }
};

/// Appends `pair` to `self` as the library merges encodings: the overflowing windows become every
/// combination of a window (or the whole) of one with a window (or the whole) of the other.
inline void merge_with(Encoding& self, const Encoding& pair) {
  std::vector<Encoding> overflowing;
  for (const auto& mine : self.overflowing) {
    Encoding whole = mine;
    merge_with(whole, pair);
    overflowing.push_back(std::move(whole));
    for (const auto& theirs : pair.overflowing) {
      Encoding both = mine;
      merge_with(both, theirs);
      overflowing.push_back(std::move(both));
    }
  }
  for (const auto& theirs : pair.overflowing) {
    Encoding both = self;
    merge_with(both, theirs);
    overflowing.push_back(std::move(both));
  }
  self.append(pair);
  self.overflowing = std::move(overflowing);
}

enum class Direction { right, left };

/// Keeps at most `max_length` tokens; what is cut goes, in windows of `max_length` that overlap by
/// `stride`, to `overflowing`.
inline void truncate(Encoding& encoding, std::size_t max_length, std::size_t stride, Direction direction) {
  const std::size_t n = encoding.size();
  if (max_length >= n) return;
  if (max_length == 0) {
    Encoding all = std::move(encoding);
    encoding = Encoding{};
    encoding.overflowing.push_back(std::move(all));
    return;
  }
  if (stride >= max_length)
    throw error("truncation: stride {} must be smaller than the length {} left after the special tokens", stride, max_length);
  const std::size_t step = max_length - stride;
  std::vector<Offsets> windows;
  if (direction == Direction::right) {
    for (std::size_t start = 0; start < n; start += step) {
      const std::size_t stop = std::min(start + max_length, n);
      windows.emplace_back(start, stop);
      if (stop == n) break;
    }
  } else {
    for (std::size_t last = n; last > 0;) {
      const std::size_t stop = last;
      const std::size_t start = stop > max_length ? stop - max_length : 0;
      windows.emplace_back(start, stop);
      if (start == 0) break;
      if (last <= step) break;
      last -= step;
    }
  }
  Encoding out = encoding.range(windows[0].first, windows[0].second);
  for (std::size_t i = 1; i < windows.size(); ++i) out.overflowing.push_back(encoding.range(windows[i].first, windows[i].second));
  encoding = std::move(out);
}

inline void pad(Encoding& encoding, std::size_t length, std::uint32_t pad_id, std::uint32_t pad_type_id, const std::string& pad_token,
                Direction direction) {
  for (auto& window : encoding.overflowing) pad(window, length, pad_id, pad_type_id, pad_token, direction);
  if (encoding.size() >= length) return;
  Encoding padding;
  for (std::size_t i = encoding.size(); i < length; ++i) {
    padding.push(pad_id, pad_token, {0, 0}, std::nullopt, pad_type_id, true);
    padding.attention_mask.back() = 0;
  }
  if (direction == Direction::right) {
    encoding.append(padding);
  } else {
    padding.append(encoding);
    padding.overflowing = std::move(encoding.overflowing);
    encoding = std::move(padding);
  }
}

}  // namespace trainpp::tokenizers
