#pragma once
// The pre-tokenizers of tokenizer.json ("pre_tokenizer"): they cut the normalized text into words,
// which the model then tokenizes one by one. A Sequence is flattened into the list of its steps.

#include <trainpp/tokenizers/normalizers.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace trainpp::tokenizers {

/// A token of a model: its id, its text, and its byte range in the word it came from.
struct Token {
  std::uint32_t id = 0;
  std::string value;
  Offsets offsets;
};

/// The input cut into pieces; a piece that already has its tokens (an added token) is left alone by
/// later steps.
struct PreTokenizedString {
  struct Split {
    NormalizedString text;
    std::optional<std::vector<Token>> tokens;
  };
  std::string original;
  std::vector<Split> splits;

  /// Replaces every untokenized piece by the pieces `cut` makes of it (empty ones dropped).
  template <class Cut>
  void split(Cut&& cut) {
    std::vector<Split> next;
    next.reserve(splits.size());
    for (std::size_t i = 0; i < splits.size(); ++i) {
      if (splits[i].tokens) {
        next.push_back(std::move(splits[i]));
        continue;
      }
      for (auto& piece : cut(i, std::move(splits[i].text)))
        if (!piece.text.empty()) next.push_back(std::move(piece));
    }
    splits = std::move(next);
  }
};

namespace detail {

/// GPT-2's reversible map from bytes to printable characters.
inline const std::array<char32_t, 256>& byte_to_char() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[static_cast<std::size_t>(b)] = printable ? static_cast<char32_t>(b) : next++;
    }
    return t;
  }();
  return table;
}

/// GPT-2's pre-tokenizer expression.
inline const Regex& gpt2_regex() {
  static const Regex re(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)");
  return re;
}

inline bool is_bert_punctuation(char32_t c) {
  return (c < 0x80 && ((c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') || (c >= '{' && c <= '~'))) ||
         unicode::tables::contains(unicode::tables::punctuation, c);
}

inline std::vector<PreTokenizedString::Split> as_splits(std::vector<NormalizedString> pieces) {
  std::vector<PreTokenizedString::Split> out;
  out.reserve(pieces.size());
  for (auto& p : pieces) out.push_back({std::move(p), std::nullopt});
  return out;
}

inline SplitBehavior behavior_from_json(const nlohmann::json& j, std::string_view where) {
  const auto name = j.get<std::string>();
  if (name == "Removed") return SplitBehavior::removed;
  if (name == "Isolated") return SplitBehavior::isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::merged_with_previous;
  if (name == "MergedWithNext") return SplitBehavior::merged_with_next;
  if (name == "Contiguous") return SplitBehavior::contiguous;
  throw error("tokenizer.json: {}: \"behavior\" \"{}\" is not one of Removed, Isolated, MergedWithPrevious, "
              "MergedWithNext, Contiguous", where, name);
}

}  // namespace detail

/// Bytes as GPT-2's printable characters, after an optional split by GPT-2's expression.
struct ByteLevelPreTokenizer {
  bool add_prefix_space = false;
  bool use_regex = true;

  void operator()(PreTokenizedString& text) const {
    text.split([&](std::size_t, NormalizedString piece) {
      if (add_prefix_space && piece.get().rfind(' ', 0) != 0) piece.prepend(" ");
      if (!use_regex) return detail::as_splits({std::move(piece)});
      return detail::as_splits(piece.split(Pattern{.regex = std::shared_ptr<const Regex>(&detail::gpt2_regex(), [](const Regex*) {})},
                                           SplitBehavior::isolated));
    });
    for (auto& split : text.splits) {
      if (split.tokens) continue;
      const std::string& s = split.text.get();
      std::vector<Change> dest;
      dest.reserve(s.size());
      for (std::size_t i = 0; i < s.size(); i += unicode::sequence_length(static_cast<unsigned char>(s[i]))) {
        const std::size_t n = unicode::sequence_length(static_cast<unsigned char>(s[i]));
        for (std::size_t k = 0; k < n; ++k)
          dest.push_back({detail::byte_to_char()[static_cast<unsigned char>(s[i + k])], k > 0 ? 1 : 0});
      }
      split.text.transform(dest, 0);
    }
  }
};

/// Split on whitespace (dropped), then on punctuation (kept alone).
struct BertPreTokenizer {
  void operator()(PreTokenizedString& text) const {
    text.split([](std::size_t, NormalizedString piece) {
      return detail::as_splits(piece.split(Pattern{.is_delimiter = unicode::is_whitespace}, SplitBehavior::removed));
    });
    text.split([](std::size_t, NormalizedString piece) {
      return detail::as_splits(piece.split(Pattern{.is_delimiter = detail::is_bert_punctuation}, SplitBehavior::isolated));
    });
  }
};

/// A Pattern-driven split: Split, WhitespaceSplit, Whitespace, Punctuation and Digits are all this.
struct SplitPreTokenizer {
  Pattern pattern;
  SplitBehavior behavior = SplitBehavior::removed;
  void operator()(PreTokenizedString& text) const {
    text.split([&](std::size_t, NormalizedString piece) { return detail::as_splits(piece.split(pattern, behavior)); });
  }
};

enum class PrependScheme { always, first, never };

/// Spaces become `replacement` (U+2581), one is put before the text, and words start at each.
struct Metaspace {
  std::string replacement = "\xE2\x96\x81";
  PrependScheme prepend_scheme = PrependScheme::always;
  bool split = true;

  void operator()(PreTokenizedString& text) const {
    text.split([&](std::size_t, NormalizedString piece) {
      piece.replace(Pattern::string(" "), replacement);
      const bool starts = piece.get().rfind(replacement, 0) == 0;
      if (!starts && (prepend_scheme == PrependScheme::always ||
                      (prepend_scheme == PrependScheme::first && piece.offsets_original().first == 0)))
        piece.prepend(replacement);
      if (!split) return detail::as_splits({std::move(piece)});
      return detail::as_splits(piece.split(Pattern::string(replacement), SplitBehavior::merged_with_next));
    });
  }
};

struct PreTokenizer {
  using Step = std::variant<ByteLevelPreTokenizer, BertPreTokenizer, SplitPreTokenizer, Metaspace>;
  std::vector<Step> steps;

  void operator()(PreTokenizedString& text) const {
    for (const auto& step : steps) std::visit([&](const auto& s) { s(text); }, step);
  }

  static PreTokenizer from_json(const nlohmann::json& j) {
    PreTokenizer out;
    if (!j.is_null()) out.add(j);
    return out;
  }

 private:
  void add(const nlohmann::json& j) {
    const std::string where = "pre_tokenizer";
    if (!j.is_object()) throw error("tokenizer.json: {} must be an object, got {}", where, j.type_name());
    const auto type = detail::member(j, "type", where).get<std::string>();
    if (type == "Sequence") {
      for (const auto& item : detail::member(j, "pretokenizers", where)) add(item);
    } else if (type == "ByteLevel") {
      steps.emplace_back(ByteLevelPreTokenizer{detail::value_or(j, "add_prefix_space", true, where),
                                               detail::value_or(j, "use_regex", true, where)});
    } else if (type == "BertPreTokenizer") {
      steps.emplace_back(BertPreTokenizer{});
    } else if (type == "WhitespaceSplit") {
      steps.emplace_back(SplitPreTokenizer{Pattern{.is_delimiter = unicode::is_whitespace}, SplitBehavior::removed});
    } else if (type == "Whitespace") {
      Pattern words = Pattern::regular(R"(\w+|[^\w\s]+)");
      words.invert = true;
      steps.emplace_back(SplitPreTokenizer{words, SplitBehavior::removed});
    } else if (type == "Punctuation") {
      steps.emplace_back(SplitPreTokenizer{Pattern{.is_delimiter = detail::is_bert_punctuation},
                                           detail::behavior_from_json(j.value("behavior", nlohmann::json("Isolated")), where)});
    } else if (type == "Digits") {
      steps.emplace_back(SplitPreTokenizer{Pattern{.is_delimiter = unicode::is_numeric},
                                           detail::value_or(j, "individual_digits", false, where) ? SplitBehavior::isolated
                                                                                                  : SplitBehavior::contiguous});
    } else if (type == "Split") {
      Pattern pattern = detail::pattern_from_json(detail::member(j, "pattern", where), where);
      pattern.invert = detail::value_or(j, "invert", false, where);
      steps.emplace_back(SplitPreTokenizer{pattern, detail::behavior_from_json(detail::member(j, "behavior", where), where)});
    } else if (type == "Metaspace") {
      Metaspace m;
      m.replacement = detail::value_or<std::string>(j, "replacement", m.replacement, where);
      const auto scheme = detail::value_or<std::string>(j, "prepend_scheme", "always", where);
      if (scheme == "always") m.prepend_scheme = PrependScheme::always;
      else if (scheme == "first") m.prepend_scheme = PrependScheme::first;
      else if (scheme == "never") m.prepend_scheme = PrependScheme::never;
      else throw error("tokenizer.json: {}: \"prepend_scheme\" \"{}\" is not one of always, first, never", where, scheme);
      m.split = detail::value_or(j, "split", true, where);
      steps.emplace_back(m);
    } else {
      throw error("tokenizer.json: pre_tokenizer type \"{}\" is not supported (supported: Sequence, ByteLevel, "
                  "BertPreTokenizer, Whitespace, WhitespaceSplit, Punctuation, Digits, Split, Metaspace)", type);
    }
  }
};

}  // namespace trainpp::tokenizers
