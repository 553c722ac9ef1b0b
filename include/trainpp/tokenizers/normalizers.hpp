#pragma once
// The normalizers of tokenizer.json ("normalizer"): each changes a NormalizedString in place and
// keeps its alignments. A Sequence is flattened into the list of its steps.

#include <trainpp/detail/error.hpp>
#include <trainpp/tokenizers/normalized_string.hpp>
#include <trainpp/tokenizers/unicode_tables.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace trainpp::tokenizers {

namespace detail {

inline const nlohmann::json& member(const nlohmann::json& object, const char* key, std::string_view where) {
  const auto it = object.find(key);
  if (it == object.end()) throw error("tokenizer.json: {} has no \"{}\"", where, key);
  return *it;
}

template <class T>
T value_or(const nlohmann::json& object, const char* key, T fallback, std::string_view where) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw error("tokenizer.json: {}: \"{}\" has the wrong type ({})", where, key, it->type_name());
  }
}

/// {"String": "..."} or {"Regex": "..."}.
inline Pattern pattern_from_json(const nlohmann::json& j, std::string_view where) {
  if (j.is_object() && j.contains("String")) return Pattern::string(j.at("String").get<std::string>());
  if (j.is_object() && j.contains("Regex")) return Pattern::regular(j.at("Regex").get<std::string>());
  throw error("tokenizer.json: {}: \"pattern\" must be {{\"String\": ...}} or {{\"Regex\": ...}}, got {}", where, j.dump());
}

inline bool is_chinese_char(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/// The canonical combining class as the library's Unicode tables have it: characters newer than
/// them are starters there.
inline int combining_class(char32_t c) {
  return unicode::tables::contains(unicode::tables::unknown_combining, c) ? 0 : unicode::combining_class(c);
}

/// Canonical or compatibility decomposition: each character's first piece replaces it, the others
/// are inserted after it; then each run of combining marks is put in canonical order, the changes
/// travelling with their characters.
inline std::vector<Change> decomposed(const std::string& text, bool compatibility) {
  std::vector<Change> dest;
  for (const char32_t c : unicode::code_points(text)) {
    const auto pieces = unicode::decompose(c, compatibility);
    for (std::size_t k = 0; k < pieces.size(); ++k) dest.push_back({pieces[k], k > 0 ? 1 : 0});
  }
  for (std::size_t i = 0; i < dest.size();) {
    if (combining_class(dest[i].c) == 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < dest.size() && combining_class(dest[j].c) != 0) ++j;
    std::stable_sort(dest.begin() + static_cast<std::ptrdiff_t>(i), dest.begin() + static_cast<std::ptrdiff_t>(j),
                     [](const Change& a, const Change& b) { return combining_class(a.c) < combining_class(b.c); });
    i = j;
  }
  return dest;
}

inline void decompose(NormalizedString& text, bool compatibility) { text.transform(decomposed(text.get(), compatibility), 0); }

/// The primary composite of two characters, if there is one.
inline std::optional<char32_t> compose_pair(char32_t a, char32_t b) {
  if (b < 0x300) return std::nullopt;  // every second half of a composition is at U+0300 or above
  std::string pair;
  unicode::append(pair, a);
  unicode::append(pair, b);
  utf8proc_uint8_t* mapped = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(pair.data()), static_cast<utf8proc_ssize_t>(pair.size()),
                              &mapped, static_cast<utf8proc_option_t>(UTF8PROC_COMPOSE | UTF8PROC_STABLE));
  std::optional<char32_t> out;
  if (n > 0) {
    const std::string_view result(reinterpret_cast<char*>(mapped), static_cast<std::size_t>(n));
    if (unicode::count(result) == 1) out = unicode::decode_at(result, 0);
  }
  std::free(mapped);
  return out;
}

/// Canonical composition of a decomposed sequence, as the library composes it: a composed character
/// carries the changes of both halves less one; marks blocked from their starter follow it.
inline std::vector<Change> recomposed(const std::vector<Change>& input) {
  std::vector<Change> out;
  std::vector<Change> blocked;  // marks after the composee that did not compose with it
  std::optional<Change> composee;
  int last_class = -1;          // -1: no mark since the composee
  const auto flush = [&] {
    if (composee) out.push_back(*composee);
    out.insert(out.end(), blocked.begin(), blocked.end());
    blocked.clear();
  };
  for (const Change& ch : input) {
    const int ch_class = combining_class(ch.c);
    if (!composee) {
      if (ch_class != 0) {
        out.push_back(ch);
        continue;
      }
      composee = ch;
      continue;
    }
    if (last_class < 0 || last_class < ch_class) {
      if (const auto r = compose_pair(composee->c, ch.c)) {
        composee = Change{*r, composee->change + ch.change - 1};
        continue;
      }
    }
    if (ch_class == 0) {
      flush();
      composee = ch;
      last_class = -1;
      continue;
    }
    blocked.push_back(ch);
    last_class = ch_class;
  }
  flush();
  return out;
}

inline void compose(NormalizedString& text, bool compatibility) {
  text.transform(recomposed(decomposed(text.get(), compatibility)), 0);
}

}  // namespace detail

/// BERT's: control characters removed and whitespace made ' ', spaces around CJK ideographs, accents
/// stripped, lowercase. Its character classes are those of the library (unicode_tables.hpp).
struct BertNormalizer {
  bool clean_text = true;
  bool handle_chinese_chars = true;
  std::optional<bool> strip_accents;  ///< unset: follows lowercase
  bool lowercase = true;

  void operator()(NormalizedString& text) const {
    if (clean_text) {
      text.filter([](char32_t c) { return !(c == 0 || c == 0xFFFD || unicode::tables::contains(unicode::tables::control, c)); });
      text.map_each([](char32_t c) {
        return std::vector<char32_t>{(c == '\t' || c == '\n' || c == '\r' || unicode::is_whitespace(c)) ? U' ' : c};
      });
    }
    if (handle_chinese_chars) {
      std::vector<Change> dest;
      for (const char32_t c : unicode::code_points(text.get())) {
        if (detail::is_chinese_char(c)) {
          dest.push_back({U' ', 0});
          dest.push_back({c, 1});
          dest.push_back({U' ', 1});
        } else {
          dest.push_back({c, 0});
        }
      }
      text.transform(dest, 0);
    }
    if (strip_accents.value_or(lowercase)) {
      detail::decompose(text, false);
      text.filter([](char32_t c) { return !unicode::tables::contains(unicode::tables::nonspacing_mark, c); });
    }
    if (lowercase) text.map_each(unicode::to_lowercase);
  }
};

struct UnicodeNormalizer {
  bool compose = false;        ///< NFC / NFKC rather than NFD / NFKD
  bool compatibility = false;  ///< NFKC / NFKD
  void operator()(NormalizedString& text) const {
    if (compose) detail::compose(text, compatibility);
    else detail::decompose(text, compatibility);
  }
};

struct Lowercase {
  void operator()(NormalizedString& text) const { text.map_each(unicode::to_lowercase); }
};

struct StripAccents {
  void operator()(NormalizedString& text) const {
    text.filter([](char32_t c) { return !unicode::is_mark(c); });
  }
};

struct StripNormalizer {
  bool left = true, right = true;
  void operator()(NormalizedString& text) const { text.strip(left, right); }
};

struct Prepend {
  std::string prefix;
  void operator()(NormalizedString& text) const {
    if (!text.empty()) text.prepend(prefix);
  }
};

struct Replace {
  Pattern pattern;
  std::string content;
  void operator()(NormalizedString& text) const { text.replace(pattern, content); }
};

/// The normalizer of a tokenizer: its steps in order (none: the identity).
struct Normalizer {
  using Step = std::variant<BertNormalizer, UnicodeNormalizer, Lowercase, StripAccents, StripNormalizer, Prepend, Replace>;
  std::vector<Step> steps;

  void operator()(NormalizedString& text) const {
    for (const auto& step : steps) std::visit([&](const auto& s) { s(text); }, step);
  }
  [[nodiscard]] bool empty() const { return steps.empty(); }

  static Normalizer from_json(const nlohmann::json& j) {
    Normalizer out;
    if (!j.is_null()) out.add(j);
    return out;
  }

 private:
  void add(const nlohmann::json& j) {
    const std::string where = "normalizer";
    if (!j.is_object()) throw error("tokenizer.json: {} must be an object, got {}", where, j.type_name());
    const auto type = detail::member(j, "type", where).get<std::string>();
    if (type == "Sequence") {
      for (const auto& item : detail::member(j, "normalizers", where)) add(item);
    } else if (type == "BertNormalizer") {
      BertNormalizer b;
      b.clean_text = detail::value_or(j, "clean_text", true, where);
      b.handle_chinese_chars = detail::value_or(j, "handle_chinese_chars", true, where);
      b.lowercase = detail::value_or(j, "lowercase", true, where);
      if (j.contains("strip_accents") && !j.at("strip_accents").is_null()) b.strip_accents = j.at("strip_accents").get<bool>();
      steps.emplace_back(b);
    } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
      steps.emplace_back(UnicodeNormalizer{.compose = type.back() == 'C', .compatibility = type.size() == 4});
    } else if (type == "Lowercase") {
      steps.emplace_back(Lowercase{});
    } else if (type == "StripAccents") {
      steps.emplace_back(StripAccents{});
    } else if (type == "Strip") {
      steps.emplace_back(StripNormalizer{detail::value_or(j, "strip_left", true, where), detail::value_or(j, "strip_right", true, where)});
    } else if (type == "Prepend") {
      steps.emplace_back(Prepend{detail::member(j, "prepend", where).get<std::string>()});
    } else if (type == "Replace") {
      steps.emplace_back(Replace{detail::pattern_from_json(detail::member(j, "pattern", where), where),
                                 detail::member(j, "content", where).get<std::string>()});
    } else {
      throw error("tokenizer.json: normalizer type \"{}\" is not supported (supported: Sequence, BertNormalizer, NFC, NFD, "
                  "NFKC, NFKD, Lowercase, StripAccents, Strip, Prepend, Replace)", type);
    }
  }
};

}  // namespace trainpp::tokenizers
