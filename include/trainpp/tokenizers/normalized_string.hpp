#pragma once
// Text with a memory of where it came from. Every step of a tokenizer (normalizer, pre-tokenizer,
// model) may change the text; each byte of the changed text keeps the byte range of the original it
// stands for, so that the final tokens can report offsets into the string the caller passed, as the
// `tokenizers` library does. Also: UTF-8 walking, the Unicode properties the pipeline asks about
// (utf8proc), and regular expressions with Unicode classes (PCRE2).

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8  // the 8-bit (UTF-8) library
#endif
#include <pcre2.h>
#include <utf8proc.h>

#include <trainpp/detail/error.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace trainpp::tokenizers {

using Offsets = std::pair<std::size_t, std::size_t>;

namespace unicode {

/// Bytes of the UTF-8 sequence that starts with `lead` (1 for a stray continuation byte).
inline std::size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}

/// The code point at `text[i]` (valid UTF-8 assumed: Tokenizer::encode makes it so).
inline char32_t decode_at(std::string_view text, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(text[i + k]); };
  switch (sequence_length(b(0))) {
    case 1: return b(0);
    case 2: return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3: return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    default: return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
}

inline std::size_t encoded_length(char32_t c) { return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4; }

inline void append(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

inline std::string encode(char32_t c) {
  std::string out;
  append(out, c);
  return out;
}

inline std::vector<char32_t> code_points(std::string_view text) {
  std::vector<char32_t> out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); i += sequence_length(static_cast<unsigned char>(text[i])))
    out.push_back(decode_at(text, i));
  return out;
}

inline std::size_t count(std::string_view text) {
  std::size_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}

/// `text` with every ill-formed UTF-8 sequence replaced by U+FFFD, one per maximal ill-formed
/// subpart: what Python's bytes.decode("utf-8", errors="replace") gives, so that C++ callers holding
/// raw bytes see the tokens a Python caller holding the decoded str would.
inline std::string repair_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  while (i < text.size()) {
    const unsigned char lead = byte(i);
    std::size_t need = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (lead < 0x80) {
      out += static_cast<char>(lead);
      ++i;
      continue;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
      need = 1;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      need = 2;
      if (lead == 0xE0) lo = 0xA0;
      if (lead == 0xED) hi = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      need = 3;
      if (lead == 0xF0) lo = 0x90;
      if (lead == 0xF4) hi = 0x8F;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    std::size_t k = 1;
    for (; k <= need && i + k < text.size(); ++k) {
      const unsigned char b = byte(i + k);
      const unsigned char low = k == 1 ? lo : 0x80, high = k == 1 ? hi : 0xBF;
      if (b < low || b > high) break;
    }
    if (k == need + 1) {
      out.append(text.substr(i, need + 1));
    } else {
      out += "\xEF\xBF\xBD";
    }
    i += k == need + 1 ? need + 1 : k;
  }
  return out;
}

inline utf8proc_category_t category(char32_t c) {
  return static_cast<utf8proc_category_t>(utf8proc_category(static_cast<utf8proc_int32_t>(c)));
}

/// The White_Space property, as Rust's char::is_whitespace and Oniguruma's \s read it.
inline bool is_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

inline bool is_mark(char32_t c) {
  const auto k = category(c);
  return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_MC || k == UTF8PROC_CATEGORY_ME;
}

inline bool is_numeric(char32_t c) {
  const auto k = category(c);
  return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

inline int combining_class(char32_t c) {
  return utf8proc_get_property(static_cast<utf8proc_int32_t>(c))->combining_class;
}

/// Rust's char::to_lowercase: the simple mapping, except U+0130, whose full mapping has two chars.
inline std::vector<char32_t> to_lowercase(char32_t c) {
  if (c == 0x130) return {U'i', 0x307};
  return {static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c)))};
}

inline std::vector<char32_t> decompose(char32_t c, bool compatibility) {
  utf8proc_int32_t buffer[32];
  int boundclass = 0;
  const auto options = static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE | (compatibility ? UTF8PROC_COMPAT : 0));
  const auto n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(c), buffer, 32, options, &boundclass);
  if (n <= 0) return {c};
  return {buffer, buffer + n};
}

}  // namespace unicode

/// A compiled PCRE2 pattern with Unicode classes. `\s` and `\S` are rewritten to the White_Space
/// property that Oniguruma (the `tokenizers` library's regex engine) gives them, which PCRE2's own
/// Unicode \s does not quite match (U+0085).
class Regex {
 public:
  explicit Regex(std::string_view pattern) : source_(pattern) {
    const std::string translated = translate(pattern);
    int code = 0;
    PCRE2_SIZE where = 0;
    pcre2_code* compiled = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                         PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &code, &where, nullptr);
    if (compiled == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(code, message, sizeof message);
      throw error("the regular expression {:?} does not compile at offset {}: {}", source_, where,
                  reinterpret_cast<const char*>(message));
    }
    code_ = std::shared_ptr<pcre2_code>(compiled, Free{});
    pcre2_jit_compile(compiled, PCRE2_JIT_COMPLETE);  // a speed-up only: failing leaves the interpreter
  }

  /// Byte ranges of every non-overlapping match, left to right (empty matches skipped).
  [[nodiscard]] std::vector<Offsets> find_all(std::string_view text) const {
    std::vector<Offsets> out;
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
        pcre2_match_data_create_from_pattern(code_.get(), nullptr), &pcre2_match_data_free);
    std::size_t start = 0;
    while (start <= text.size()) {
      const int rc = pcre2_match(code_.get(), reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), start,
                                 PCRE2_NO_UTF_CHECK, data.get(), nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) throw error("matching the regular expression {:?} failed (PCRE2 error {})", source_, rc);
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
      const std::size_t begin = ovector[0], end = ovector[1];
      if (end == begin) {  // an empty match: step over one character
        if (begin >= text.size()) break;
        start = begin + unicode::sequence_length(static_cast<unsigned char>(text[begin]));
        continue;
      }
      out.emplace_back(begin, end);
      start = end;
    }
    return out;
  }

  [[nodiscard]] const std::string& source() const { return source_; }

 private:
  static std::string translate(std::string_view pattern) {
    static constexpr std::string_view space = R"(\t\n\x{0B}\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";
    std::string out;
    int class_depth = 0;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
      const char c = pattern[i];
      if (c == '\\' && i + 1 < pattern.size()) {
        const char next = pattern[i + 1];
        if (next == 's' || next == 'S') {
          if (class_depth > 0 && next == 's') {
            out += space;
          } else if (class_depth > 0) {
            out += "\\S";  // a negated class inside a class: rare enough to leave to PCRE2
          } else {
            out += next == 's' ? "[" : "[^";
            out += space;
            out += "]";
          }
        } else {
          out += c;
          out += next;
        }
        ++i;
        continue;
      }
      if (c == '[') ++class_depth;
      if (c == ']' && class_depth > 0) --class_depth;
      out += c;
    }
    return out;
  }

  struct Free {
    void operator()(pcre2_code* code) const { pcre2_code_free(code); }
  };
  std::string source_;
  std::shared_ptr<pcre2_code> code_;
};

/// What a split pattern is: a literal string or a regular expression (tokenizer.json's
/// {"String": ...} / {"Regex": ...}).
struct Pattern {
  std::string literal;
  std::shared_ptr<const Regex> regex;          ///< set for a regular expression
  std::function<bool(char32_t)> is_delimiter;  ///< set for a class of characters: each one is a match
  bool invert = false;                         ///< what matches is what lies between the matches

  static Pattern string(std::string text) { return {std::move(text), nullptr}; }
  static Pattern regular(std::string_view expression) { return {{}, std::make_shared<const Regex>(expression)}; }

  /// The whole of `text` cut into (range, is_match) pieces, in order.
  [[nodiscard]] std::vector<std::pair<Offsets, bool>> find_matches(std::string_view text) const {
    if (text.empty()) return {{{0, 0}, invert}};
    std::vector<Offsets> matches;
    if (is_delimiter) {
      for (std::size_t i = 0; i < text.size();) {
        const std::size_t n = unicode::sequence_length(static_cast<unsigned char>(text[i]));
        if (is_delimiter(unicode::decode_at(text, i))) matches.emplace_back(i, i + n);
        i += n;
      }
    } else if (regex) {
      matches = regex->find_all(text);
    } else if (!literal.empty()) {
      for (std::size_t at = text.find(literal); at != std::string_view::npos; at = text.find(literal, at + literal.size()))
        matches.emplace_back(at, at + literal.size());
    }
    std::vector<std::pair<Offsets, bool>> out;
    std::size_t previous = 0;
    for (const auto& [begin, end] : matches) {
      if (begin > previous) out.push_back({{previous, begin}, false});
      out.push_back({{begin, end}, true});
      previous = end;
    }
    if (previous < text.size()) out.push_back({{previous, text.size()}, false});
    if (invert)
      for (auto& piece : out) piece.second = !piece.second;
    return out;
  }
};

enum class SplitBehavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

/// One code point of a transformation and how it relates to the text it replaces: 0 replaces the
/// next character, +1 is inserted, -n replaces the next character and removes the n after it.
struct Change {
  char32_t c;
  int change;
};

class NormalizedString {
 public:
  NormalizedString() = default;
  explicit NormalizedString(std::string text) : original_(text), normalized_(std::move(text)) {
    alignments_.reserve(normalized_.size());
    for (std::size_t i = 0; i < normalized_.size();) {
      const std::size_t n = unicode::sequence_length(static_cast<unsigned char>(normalized_[i]));
      for (std::size_t k = 0; k < n; ++k) alignments_.emplace_back(i, i + n);
      i += n;
    }
  }

  [[nodiscard]] const std::string& get() const { return normalized_; }
  [[nodiscard]] const std::string& original() const { return original_; }
  [[nodiscard]] bool empty() const { return normalized_.empty(); }
  [[nodiscard]] std::size_t size() const { return normalized_.size(); }
  [[nodiscard]] Offsets offsets_original() const { return {shift_, shift_ + original_.size()}; }

  /// The original byte range (relative to this piece) a normalized range stands for.
  [[nodiscard]] std::optional<Offsets> normalized_to_original(Offsets range) const {
    if (range.first == range.second) return range;
    if (range.first > range.second) return std::nullopt;
    if (normalized_.empty() && range == Offsets{0, 0}) return Offsets{0, original_.size()};
    if (range.second > alignments_.size()) return std::nullopt;
    return Offsets{alignments_[range.first].first, alignments_[range.second - 1].second};
  }

  /// The normalized byte range an original range (relative to this piece) became.
  [[nodiscard]] std::optional<Offsets> original_to_normalized(Offsets range) const {
    if (range.first == range.second) return range;
    if (range.first > range.second) return std::nullopt;
    if (original_.empty() && range == Offsets{0, 0}) return Offsets{0, normalized_.size()};
    std::optional<std::size_t> start, end;
    for (std::size_t i = 0; i < alignments_.size() && range.second >= alignments_[i].second; ++i) {
      if (!start && range.first <= alignments_[i].first && alignments_[i].first != alignments_[i].second) start = i;
      end = i + 1;
    }
    if (start && end) return Offsets{*start, *end};
    if (start) return Offsets{*start, *start};
    if (end) return Offsets{*end, *end};
    return std::nullopt;
  }

  /// The piece of this string at a normalized byte range, with its own original text.
  [[nodiscard]] NormalizedString slice(Offsets range) const {
    NormalizedString out;
    const auto original = normalized_to_original(range).value_or(Offsets{0, 0});
    out.original_ = original_.substr(original.first, original.second - original.first);
    out.normalized_ = normalized_.substr(range.first, range.second - range.first);
    out.alignments_.reserve(range.second - range.first);
    for (std::size_t i = range.first; i < range.second; ++i)
      out.alignments_.emplace_back(alignments_[i].first - original.first, alignments_[i].second - original.first);
    out.shift_ = shift_ + original.first;
    return out;
  }

  /// Replaces the normalized bytes [begin, end) by `dest`; the first `initial_offset` characters of
  /// the range are removed before the first of `dest`.
  void transform_range(std::size_t begin, std::size_t end, const std::vector<Change>& dest, std::size_t initial_offset) {
    std::vector<std::size_t> replaced;  // byte lengths of the characters of the range, in order
    for (std::size_t i = begin; i < end; i += unicode::sequence_length(static_cast<unsigned char>(normalized_[i])))
      replaced.push_back(unicode::sequence_length(static_cast<unsigned char>(normalized_[i])));
    std::size_t next = 0;
    std::size_t offset = begin;
    for (; next < initial_offset && next < replaced.size(); ++next) offset += replaced[next];
    std::string text;
    std::vector<Offsets> alignments;
    for (const auto& [c, change] : dest) {
      Offsets align;
      if (change > 0) {
        align = offset < 1 ? Offsets{0, 0} : alignments_[offset - 1];
      } else {
        align = alignments_[offset];
        if (next < replaced.size()) offset += replaced[next++];
        for (int k = 0; k < -change && next < replaced.size(); ++k) offset += replaced[next++];
      }
      const std::size_t before = text.size();
      unicode::append(text, c);
      alignments.insert(alignments.end(), text.size() - before, align);
    }
    alignments_.erase(alignments_.begin() + static_cast<std::ptrdiff_t>(begin), alignments_.begin() + static_cast<std::ptrdiff_t>(end));
    alignments_.insert(alignments_.begin() + static_cast<std::ptrdiff_t>(begin), alignments.begin(), alignments.end());
    normalized_.replace(begin, end - begin, text);
  }

  void transform(const std::vector<Change>& dest, std::size_t initial_offset) {
    transform_range(0, normalized_.size(), dest, initial_offset);
  }

  /// Each character mapped to a sequence of characters (the first replaces it, the rest are inserted).
  template <class F>
  void map_each(F&& to_chars) {
    std::vector<Change> dest;
    dest.reserve(normalized_.size());
    for (std::size_t i = 0; i < normalized_.size(); i += unicode::sequence_length(static_cast<unsigned char>(normalized_[i]))) {
      const auto chars = to_chars(unicode::decode_at(normalized_, i));
      for (std::size_t k = 0; k < chars.size(); ++k) dest.push_back({chars[k], k > 0 ? 1 : 0});
    }
    transform(dest, 0);
  }

  template <class Keep>
  void filter(Keep&& keep) {
    std::vector<Change> dest;
    int removed = 0;
    std::size_t removed_start = 0;
    std::optional<char32_t> last;
    for (const char32_t c : unicode::code_points(normalized_)) {
      if (keep(c)) {
        if (last) {
          dest.push_back({*last, -removed});
        } else {
          removed_start = static_cast<std::size_t>(removed);
        }
        last = c;
        removed = 0;
      } else {
        ++removed;
      }
    }
    if (last) dest.push_back({*last, -removed});
    transform(dest, removed_start);
  }

  void prepend(std::string_view text) {
    if (normalized_.empty()) return;
    const char32_t first = unicode::decode_at(normalized_, 0);
    std::vector<Change> dest;
    bool at_start = true;
    for (const char32_t c : unicode::code_points(text)) {
      dest.push_back({c, at_start ? 0 : 1});
      at_start = false;
    }
    dest.push_back({first, 1});
    transform_range(0, unicode::encoded_length(first), dest, 0);
  }

  void append(std::string_view text) {
    if (normalized_.empty()) {
      std::vector<Change> dest;
      for (const char32_t c : unicode::code_points(text)) dest.push_back({c, 1});
      transform_range(0, 0, dest, 0);
      return;
    }
    std::size_t last = normalized_.size() - 1;
    while (last > 0 && (static_cast<unsigned char>(normalized_[last]) & 0xC0) == 0x80) --last;
    std::vector<Change> dest{{unicode::decode_at(normalized_, last), 0}};
    for (const char32_t c : unicode::code_points(text)) dest.push_back({c, 1});
    transform_range(last, normalized_.size(), dest, 0);
  }

  /// Every match of `pattern` replaced by `content`; the new characters take the alignment of the
  /// match's last character, as the library's inserted characters do.
  void replace(const Pattern& pattern, std::string_view content) {
    const auto pieces = pattern.find_matches(normalized_);
    const auto content_chars = unicode::code_points(content);
    // Right to left, so that earlier ranges stay valid.
    for (auto piece = pieces.rbegin(); piece != pieces.rend(); ++piece) {
      if (!piece->second) continue;
      const auto [begin, end] = piece->first;
      std::vector<Change> dest;
      for (const char32_t c : content_chars) dest.push_back({c, 1});
      transform_range(begin, end, dest, unicode::count(std::string_view(normalized_).substr(begin, end - begin)));
    }
  }

  void strip(bool left, bool right) {
    const auto chars = unicode::code_points(normalized_);
    std::size_t leading = 0, trailing = 0;
    if (left)
      while (leading < chars.size() && unicode::is_whitespace(chars[leading])) ++leading;
    if (right)
      while (trailing < chars.size() - leading && unicode::is_whitespace(chars[chars.size() - 1 - trailing])) ++trailing;
    if (leading == 0 && trailing == 0) return;
    std::vector<Change> dest;
    for (std::size_t i = leading; i + trailing < chars.size(); ++i)
      dest.push_back({chars[i], i + trailing + 1 == chars.size() ? -static_cast<int>(trailing) : 0});
    transform(dest, leading);
  }

  /// Cuts this string where `pattern` matches, keeping or dropping the matches as `behavior` says.
  [[nodiscard]] std::vector<NormalizedString> split(const Pattern& pattern, SplitBehavior behavior) const {
    auto matches = pattern.find_matches(normalized_);
    std::vector<std::pair<Offsets, bool>> splits;  // (range, remove)
    switch (behavior) {
      case SplitBehavior::isolated:
        for (auto& [range, is_match] : matches) splits.push_back({range, false});
        break;
      case SplitBehavior::removed:
        splits = matches;
        break;
      case SplitBehavior::contiguous: {
        bool previous = false;
        for (auto& [range, is_match] : matches) {
          if (is_match == previous && !splits.empty()) splits.back().first.second = range.second;
          else splits.push_back({range, false});
          previous = is_match;
        }
        break;
      }
      case SplitBehavior::merged_with_previous: {
        bool previous = false;
        for (auto& [range, is_match] : matches) {
          if (is_match && !previous && !splits.empty()) splits.back().first.second = range.second;
          else splits.push_back({range, false});
          previous = is_match;
        }
        break;
      }
      case SplitBehavior::merged_with_next: {
        bool previous = false;
        for (auto it = matches.rbegin(); it != matches.rend(); ++it) {
          if (it->second && !previous && !splits.empty()) splits.back().first.first = it->first.first;
          else splits.push_back({it->first, false});
          previous = it->second;
        }
        std::reverse(splits.begin(), splits.end());
        break;
      }
    }
    std::vector<NormalizedString> out;
    for (const auto& [range, remove] : splits)
      if (!remove) out.push_back(slice(range));
    return out;
  }

 private:
  std::string original_;
  std::string normalized_;
  std::vector<Offsets> alignments_;  ///< per normalized byte: the original bytes it stands for
  std::size_t shift_ = 0;            ///< where original_ starts in the whole input
};

}  // namespace trainpp::tokenizers
