#pragma once
// The YAML an arguments file holds (HfArgumentParser.parse_yaml_file's input), read without a YAML
// library: a mapping of names to values, each value a scalar (plain, 'single' or "double" quoted), a
// list (`[a, b]` or `- a` lines) or a mapping (`{k: v}` or indented `k: v` lines). What such a file
// has no use for — anchors, aliases, tags, block scalars, several documents, keys that are not
// strings — is refused with the line it is on, rather than read as something else.

#include <trainpp/detail/config.hpp>
#include <trainpp/detail/error.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace trainpp {
namespace detail {

/// One node of a YAML document. A plain scalar keeps its text: what it means (a number, a bool, a
/// name) depends on the setting it is given to, as on the command line.
struct YamlNode {
  enum class Kind { scalar, sequence, mapping };
  Kind kind = Kind::scalar;
  std::string text;                 ///< a scalar's value, quotes and escapes resolved
  bool plain = false;               ///< a scalar written without quotes
  int line = 0;                     ///< where the node starts, for messages
  std::vector<YamlNode> items;      ///< a sequence's items; a mapping's values
  std::vector<std::string> keys;    ///< a mapping's keys, in order, items[i] the value of keys[i]

  [[nodiscard]] bool is_null() const {
    return kind == Kind::scalar && plain && (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL");
  }
};

/// YAML 1.1's resolution of a plain scalar, as PyYAML's safe_load (which HF uses) does it (booleans,
/// nulls, integers in every YAML 1.1 form, floats with a point), except that `1e-5` is a number here,
/// as in YAML 1.2 (PyYAML reads it as a string, which no setting wants).
[[nodiscard]] nlohmann::json resolve_plain_scalar(const std::string& text);

/// A node as JSON: plain scalars resolved as resolve_plain_scalar does, quoted ones strings.
[[nodiscard]] nlohmann::json yaml_to_json(const YamlNode& node);

/// Reads the YAML of an arguments file into a mapping node. Errors read "<source>: line N: <why>".
class YamlArgumentsReader {
 public:
  YamlArgumentsReader(std::string_view text, std::string source) : source_(std::move(source)) { split(text); }

  [[nodiscard]] YamlNode document();

 private:
  struct Line {
    int number;
    int indent;
    std::string text;  ///< without indentation, comment or trailing blanks
  };
  static constexpr std::size_t npos_key = std::string::npos;

  [[nodiscard]] Error fail(int line, std::string_view why) const {
    return error("{}: line {}: {}", source_, line, why);
  }

  /// Whether a quote at `i` opens a quoted scalar: only where a scalar may start.
  static bool scalar_starts_at(std::string_view s, std::size_t i);

  /// The line without its comment: from a '#' at its start or after a blank, outside quotes.
  static std::string_view strip_comment(std::string_view s);

  void split(std::string_view text);

  static bool is_sequence_entry(std::string_view text) { return text == "-" || text.starts_with("- "); }

  /// The key of a `key: value` line and where its value starts, or npos_key when it is no such line.
  std::pair<std::string, std::size_t> split_key(const Line& line) const;

  YamlNode block_mapping(int indent);

  /// The value of a `key:` or `-` with nothing after it: the more indented lines below (a list may sit
  /// at the key's own indentation), or null.
  YamlNode nested(int indent, int line_number);

  YamlNode block_sequence(int indent);

  /// A value written after `key:` or `-`: a flow collection (continued on the following lines until it
  /// closes), a quoted scalar or a plain one.
  YamlNode inline_node(std::string text, int indent, int line_number = 0);

  static void skip_blanks(std::string_view text, std::size_t& pos) {
    while (pos < text.size() && text[pos] == ' ') ++pos;
  }

  bool brackets_closed(std::string_view text, int line_number) const;

  YamlNode flow_node(std::string_view text, std::size_t& pos, int line_number);

  /// A 'single' or "double" quoted scalar starting at `pos`; `pos` ends after its closing quote.
  std::string quoted(std::string_view text, std::size_t& pos, int line_number) const;

  std::uint32_t hex(std::string_view text, std::size_t& pos, std::size_t digits, int line_number) const;

  void append_code_point(std::string& out, std::uint32_t code, int line_number) const;

  static constexpr int max_depth = 64;  ///< as parse_json_strict's limit
  std::string source_;
  std::vector<Line> lines_;
  std::size_t at_ = 0;
};

}  // namespace detail

#if TRAINPP_DEFINITIONS

namespace detail {

/// YAML 1.1's integer forms, as PyYAML's int resolver reads them: 0b binary, 0x hexadecimal, a leading
/// 0 octal (010 is 8), decimal (0, or no leading 0) and base 60 (1:30 is 90). `s` comes without its
/// sign and digit separators; nullopt when it is none of them or does not fit.
TRAINPP_INLINE std::optional<std::int64_t> yaml11_unsigned_integer(std::string_view s) {
  auto digits_in = [](std::string_view run, int base) {
    return !run.empty() && std::ranges::all_of(run, [base](char c) {
      const int v = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                    : std::isxdigit(static_cast<unsigned char>(c)) ? std::tolower(static_cast<unsigned char>(c)) - 'a' + 10
                                                                     : 99;
      return v < base;
    });
  };
  auto parse = [](std::string_view run, int base) -> std::optional<std::int64_t> {
    std::int64_t value = 0;
    const auto r = std::from_chars(run.data(), run.data() + run.size(), value, base);
    if (r.ec != std::errc{} || r.ptr != run.data() + run.size()) return std::nullopt;
    return value;
  };
  if (s.starts_with("0b")) return digits_in(s.substr(2), 2) ? parse(s.substr(2), 2) : std::nullopt;
  if (s.starts_with("0x")) return digits_in(s.substr(2), 16) ? parse(s.substr(2), 16) : std::nullopt;
  if (s == "0") return 0;
  if (s.size() > 1 && s.front() == '0') return digits_in(s.substr(1), 8) ? parse(s.substr(1), 8) : std::nullopt;
  if (s.find(':') == std::string_view::npos) return digits_in(s, 10) ? parse(s, 10) : std::nullopt;
  // Base 60: a first part without a leading 0, then parts of one or two digits below 60.
  std::int64_t value = 0;
  std::size_t start = 0;
  for (bool first = true;; first = false) {
    const auto colon = s.find(':', start);
    const auto part = s.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start);
    if (!digits_in(part, 10) || (first ? part.front() == '0' : part.size() > 2)) return std::nullopt;
    const auto number = parse(part, 10);
    if (!number || (!first && *number >= 60) || value > (std::numeric_limits<std::int64_t>::max() - *number) / 60)
      return std::nullopt;
    value = value * 60 + *number;
    if (colon == std::string_view::npos) return value;
    start = colon + 1;
  }
}

TRAINPP_INLINE nlohmann::json resolve_plain_scalar(const std::string& text) {
  for (const char* t : {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"})
    if (text == t) return true;
  for (const char* f : {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"})
    if (text == f) return false;
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") return nullptr;
  std::string digits;  // without the digit separators YAML 1.1 allows
  for (const char c : text)
    if (c != '_') digits += c;
  std::string_view body = digits;
  const bool negative = body.starts_with('-');
  if (negative || body.starts_with('+')) body.remove_prefix(1);
  if (const auto integer = yaml11_unsigned_integer(body)) return negative ? -*integer : *integer;
  // A float needs a point or (unlike YAML 1.1, as in 1.2) an exponent: 08 stays a string, as in PyYAML.
  // A decimal integer beyond int64 becomes a float too (PyYAML's int of any size reaches HF's float
  // fields as one), not a wrapped integer.
  const bool decimal = !body.empty() && body.front() != '0' &&
                       std::ranges::all_of(body, [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; });
  const bool looks_real = decimal || (body.find_first_of(".eE") != std::string_view::npos && !body.empty() &&
                                      (std::isdigit(static_cast<unsigned char>(body.front())) || body.front() == '.'));
  if (looks_real) {
    double real = 0;
    const auto r = std::from_chars(body.data(), body.data() + body.size(), real, std::chars_format::general);
    if (r.ec == std::errc{} && r.ptr == body.data() + body.size() && std::isfinite(real)) return negative ? -real : real;
  }
  return text;
}

TRAINPP_INLINE nlohmann::json yaml_to_json(const YamlNode& node) {
  switch (node.kind) {
    case YamlNode::Kind::scalar: return node.plain ? resolve_plain_scalar(node.text) : nlohmann::json(node.text);
    case YamlNode::Kind::sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : node.items) out.push_back(yaml_to_json(item));
      return out;
    }
    case YamlNode::Kind::mapping: {
      nlohmann::json out = nlohmann::json::object();
      for (std::size_t i = 0; i < node.keys.size(); ++i) out[node.keys[i]] = yaml_to_json(node.items[i]);
      return out;
    }
  }
  return nullptr;
}

TRAINPP_INLINE YamlNode YamlArgumentsReader::document() {
  if (lines_.empty()) throw error("{}: holds no arguments (an empty mapping is written {{}})", source_);
  const Line& first = lines_.front();
  YamlNode root;
  if (first.text.starts_with("{")) {
    root = inline_node(first.text, first.indent);
    if (root.kind != YamlNode::Kind::mapping) throw fail(first.number, "expected a mapping");
  } else if (is_sequence_entry(first.text) || first.text.starts_with("[")) {
    throw error("{}: must hold a mapping of argument names to values, got a list", source_);
  } else if (split_key(first).second == npos_key) {
    throw error("{}: must hold a mapping of argument names to values, got '{}'", source_, first.text);
  } else {
    root = block_mapping(first.indent);
  }
  if (at_ < lines_.size()) throw fail(lines_[at_].number, "unexpected indentation");
  return root;
}

TRAINPP_INLINE bool YamlArgumentsReader::scalar_starts_at(std::string_view s, std::size_t i) {
  std::size_t k = i;
  while (k > 0 && s[k - 1] == ' ') --k;
  return k == 0 || std::string_view(":-[{,?").find(s[k - 1]) != std::string_view::npos;
}

TRAINPP_INLINE std::string_view YamlArgumentsReader::strip_comment(std::string_view s) {
  char quote = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (quote == '"') {
      if (c == '\\') ++i;
      else if (c == '"') quote = 0;
    } else if (quote == '\'') {
      if (c == '\'' && i + 1 < s.size() && s[i + 1] == '\'') ++i;
      else if (c == '\'') quote = 0;
    } else if ((c == '"' || c == '\'') && scalar_starts_at(s, i)) {
      quote = c;
    } else if (c == '#' && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t')) {
      return s.substr(0, i);
    }
  }
  return s;
}

TRAINPP_INLINE void YamlArgumentsReader::split(std::string_view text) {
  if (const auto nul = text.find('\0'); nul != std::string_view::npos)
    throw error("{}: a NUL byte at offset {}", source_, nul);
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // a byte order mark
  int number = 0;
  bool started = false;
  while (!text.empty() || number == 0) {
    const auto newline = text.find('\n');
    std::string_view raw = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view{} : text.substr(newline + 1);
    ++number;
    if (raw.ends_with('\r')) raw.remove_suffix(1);
    std::size_t indent = 0;
    while (indent < raw.size() && raw[indent] == ' ') ++indent;
    std::string_view content = strip_comment(raw.substr(indent));
    while (!content.empty() && (content.back() == ' ' || content.back() == '\t')) content.remove_suffix(1);
    if (content.empty()) continue;
    if (content.front() == '\t') throw fail(number, "a tab in the indentation (YAML indents with spaces)");
    if (indent == 0 && (content == "---" || content.starts_with("--- "))) {
      if (started) throw fail(number, "a second document: an arguments file holds one");
      started = true;
      content.remove_prefix(3);
      while (!content.empty() && content.front() == ' ') content.remove_prefix(1);
      if (content.empty()) continue;
    }
    if (indent == 0 && content == "...") break;
    if (indent == 0 && content.starts_with("%")) throw fail(number, "YAML directives are not read in an arguments file");
    started = true;
    lines_.push_back({number, static_cast<int>(indent), std::string(content)});
    if (newline == std::string_view::npos) break;
  }
}

TRAINPP_INLINE std::pair<std::string, std::size_t> YamlArgumentsReader::split_key(const Line& line) const {
  const std::string& t = line.text;
  if (t.starts_with("\"") || t.starts_with("'")) {
    std::size_t pos = 0;
    std::string key = quoted(t, pos, line.number);
    if (pos < t.size() && t[pos] == ':' && (pos + 1 == t.size() || t[pos + 1] == ' ')) return {key, pos + 1};
    return {"", npos_key};
  }
  for (std::size_t i = 0; i < t.size(); ++i)
    if (t[i] == ':' && (i + 1 == t.size() || t[i + 1] == ' ')) {
      std::string key = t.substr(0, i);
      while (!key.empty() && key.back() == ' ') key.pop_back();
      if (key.empty()) return {"", npos_key};
      return {key, i + 1};
    }
  return {"", npos_key};
}

TRAINPP_INLINE YamlNode YamlArgumentsReader::block_mapping(int indent) {
  YamlNode node;
  node.kind = YamlNode::Kind::mapping;
  node.line = lines_[at_].number;
  while (at_ < lines_.size() && lines_[at_].indent == indent) {
    const Line& line = lines_[at_];
    if (is_sequence_entry(line.text)) throw fail(line.number, "a list entry where a `name: value` line belongs");
    if (line.text.starts_with("? ") || line.text == "?") throw fail(line.number, "complex keys are not read in an arguments file");
    auto [key, value_at] = split_key(line);
    if (value_at == npos_key) throw fail(line.number, fmt::format("expected `name: value`, got '{}'", line.text));
    for (const auto& seen : node.keys)
      if (seen == key) throw fail(line.number, fmt::format("duplicate key \"{}\"", key));
    ++at_;
    std::string_view rest = std::string_view(line.text).substr(value_at);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    node.keys.push_back(std::move(key));
    node.items.push_back(rest.empty() ? nested(indent, line.number) : inline_node(std::string(rest), indent, line.number));
  }
  if (at_ < lines_.size() && lines_[at_].indent > indent) throw fail(lines_[at_].number, "unexpected indentation");
  return node;
}

TRAINPP_INLINE YamlNode YamlArgumentsReader::nested(int indent, int line_number) {
  if (at_ < lines_.size()) {
    const Line& next = lines_[at_];
    if (is_sequence_entry(next.text) && next.indent >= indent) return block_sequence(next.indent);
    if (next.indent > indent) {
      if (split_key(next).second == npos_key)
        throw fail(next.number, "a value continued on another line: write it on the key's line, or quote it");
      return block_mapping(next.indent);
    }
  }
  YamlNode null;
  null.plain = true;
  null.line = line_number;
  return null;
}

TRAINPP_INLINE YamlNode YamlArgumentsReader::block_sequence(int indent) {
  YamlNode node;
  node.kind = YamlNode::Kind::sequence;
  node.line = lines_[at_].number;
  while (at_ < lines_.size() && lines_[at_].indent == indent && is_sequence_entry(lines_[at_].text)) {
    const Line& line = lines_[at_];
    ++at_;
    std::string_view rest = std::string_view(line.text).substr(1);
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    if (rest.empty()) {
      node.items.push_back(nested(indent, line.number));
      continue;
    }
    if (is_sequence_entry(rest)) throw fail(line.number, "a list inside a list: write the inner one as [a, b]");
    if (split_key({line.number, 0, std::string(rest)}).second != npos_key && rest.front() != '"' && rest.front() != '\'' &&
        rest.front() != '{' && rest.front() != '[')
      throw fail(line.number, "a mapping inside a list: write it as {name: value}");
    node.items.push_back(inline_node(std::string(rest), indent, line.number));
  }
  if (at_ < lines_.size() && lines_[at_].indent > indent) throw fail(lines_[at_].number, "unexpected indentation");
  return node;
}

TRAINPP_INLINE YamlNode YamlArgumentsReader::inline_node(std::string text, int indent, int line_number) {
  if (line_number == 0) line_number = lines_[at_].number, ++at_;
  const char c = text.front();
  if (c == '|' || c == '>') throw fail(line_number, "block scalars (| and >) are not read in an arguments file: quote the value");
  if (c == '&' || c == '*') throw fail(line_number, "anchors and aliases are not read in an arguments file");
  if (c == '!') throw fail(line_number, "tags are not read in an arguments file");
  if (c == '[' || c == '{') {
    // A flow collection may run over several lines: join them until its brackets close.
    while (!brackets_closed(text, line_number)) {
      if (at_ >= lines_.size() || lines_[at_].indent <= indent)
        throw fail(line_number, fmt::format("a '{}' that is not closed", c));
      text += ' ';
      text += lines_[at_++].text;
    }
    std::size_t pos = 0;
    YamlNode node = flow_node(text, pos, line_number);
    skip_blanks(text, pos);
    if (pos != text.size()) throw fail(line_number, fmt::format("unexpected text after the closing '{}'", c == '[' ? ']' : '}'));
    return node;
  }
  if (c == '"' || c == '\'') {
    std::size_t pos = 0;
    YamlNode node;
    node.line = line_number;
    node.text = quoted(text, pos, line_number);
    skip_blanks(text, pos);
    if (pos != text.size()) throw fail(line_number, "unexpected text after a quoted value");
    return node;
  }
  if (text.find(": ") != std::string::npos || text.ends_with(":"))
    throw fail(line_number, "a value holding ': ' must be quoted");
  YamlNode node;
  node.plain = true;
  node.line = line_number;
  node.text = std::move(text);
  return node;
}

TRAINPP_INLINE bool YamlArgumentsReader::brackets_closed(std::string_view text, int line_number) const {
  int depth = 0;
  char quote = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quote == '"') {
      if (c == '\\') ++i;
      else if (c == '"') quote = 0;
    } else if (quote == '\'') {
      if (c == '\'' && i + 1 < text.size() && text[i + 1] == '\'') ++i;
      else if (c == '\'') quote = 0;
    } else if ((c == '"' || c == '\'') && scalar_starts_at(text, i)) {
      quote = c;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) throw fail(line_number, fmt::format("nested deeper than {} levels", max_depth));
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return depth <= 0;
}

TRAINPP_INLINE YamlNode YamlArgumentsReader::flow_node(std::string_view text, std::size_t& pos, int line_number) {
  skip_blanks(text, pos);
  if (pos >= text.size()) throw fail(line_number, "a value is missing");
  const char c = text[pos];
  YamlNode node;
  node.line = line_number;
  if (c == '[' || c == '{') {
    const bool mapping = c == '{';
    const char close = mapping ? '}' : ']';
    node.kind = mapping ? YamlNode::Kind::mapping : YamlNode::Kind::sequence;
    ++pos;
    while (true) {
      skip_blanks(text, pos);
      if (pos < text.size() && text[pos] == close) {
        ++pos;
        return node;
      }
      if (mapping) {
        std::string key;
        if (pos < text.size() && (text[pos] == '"' || text[pos] == '\'')) {
          key = quoted(text, pos, line_number);
        } else {
          const auto colon = text.find(':', pos);
          if (colon == std::string_view::npos) throw fail(line_number, "expected `name: value` in a {} mapping");
          key = std::string(text.substr(pos, colon - pos));
          while (!key.empty() && key.back() == ' ') key.pop_back();
          pos = colon;
        }
        skip_blanks(text, pos);
        if (pos >= text.size() || text[pos] != ':') throw fail(line_number, "expected ':' after a key in a {} mapping");
        ++pos;
        for (const auto& seen : node.keys)
          if (seen == key) throw fail(line_number, fmt::format("duplicate key \"{}\"", key));
        node.keys.push_back(std::move(key));
      }
      node.items.push_back(flow_node(text, pos, line_number));
      skip_blanks(text, pos);
      if (pos < text.size() && text[pos] == ',') {
        ++pos;
        continue;
      }
      if (pos < text.size() && text[pos] == close) continue;
      throw fail(line_number, fmt::format("expected ',' or '{}'", close));
    }
  }
  if (c == '"' || c == '\'') {
    node.text = quoted(text, pos, line_number);
    return node;
  }
  if (c == '&' || c == '*' || c == '!') throw fail(line_number, "anchors, aliases and tags are not read in an arguments file");
  const auto end = text.find_first_of(",]}", pos);
  std::string plain(text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos));
  while (!plain.empty() && plain.back() == ' ') plain.pop_back();
  if (plain.find(": ") != std::string::npos) throw fail(line_number, "a value holding ': ' must be quoted");
  pos = end == std::string_view::npos ? text.size() : end;
  node.plain = true;
  node.text = std::move(plain);
  return node;
}

TRAINPP_INLINE std::string YamlArgumentsReader::quoted(std::string_view text, std::size_t& pos, int line_number) const {
  const char quote = text[pos++];
  std::string out;
  while (true) {
    if (pos >= text.size())
      throw fail(line_number, "a quoted value that does not close on its line");
    const char c = text[pos++];
    if (c == quote) {
      if (quote == '\'' && pos < text.size() && text[pos] == '\'') {
        out += '\'';
        ++pos;
        continue;
      }
      return out;
    }
    if (quote == '\'' || c != '\\') {
      out += c;
      continue;
    }
    if (pos >= text.size()) throw fail(line_number, "a quoted value that does not close on its line");
    const char escape = text[pos++];
    switch (escape) {
      case '0': out += '\0'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 't': case '\t': out += '\t'; break;
      case 'n': out += '\n'; break;
      case 'v': out += '\v'; break;
      case 'f': out += '\f'; break;
      case 'r': out += '\r'; break;
      case 'e': out += '\x1b'; break;
      case ' ': case '"': case '/': case '\\': out += escape; break;
      case 'x': append_code_point(out, hex(text, pos, 2, line_number), line_number); break;
      case 'u': append_code_point(out, hex(text, pos, 4, line_number), line_number); break;
      case 'U': append_code_point(out, hex(text, pos, 8, line_number), line_number); break;
      default: throw fail(line_number, fmt::format("unknown escape '\\{}' in a quoted value", escape));
    }
  }
}

TRAINPP_INLINE std::uint32_t YamlArgumentsReader::hex(std::string_view text,
                                                      std::size_t& pos,
                                                      std::size_t digits,
                                                      int line_number) const {
  std::uint32_t value = 0;
  const auto r = std::from_chars(text.data() + pos, text.data() + std::min(text.size(), pos + digits), value, 16);
  if (r.ec != std::errc{} || r.ptr != text.data() + pos + digits)
    throw fail(line_number, fmt::format("an escape needs {} hex digits", digits));
  pos += digits;
  return value;
}

TRAINPP_INLINE void YamlArgumentsReader::append_code_point(std::string& out,
                                                           std::uint32_t code,
                                                           int line_number) const {
  if (code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF))
    throw fail(line_number, fmt::format("the escape U+{:X} is not a character", code));
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xC0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else if (code < 0x10000) {
    out += static_cast<char>(0xE0 | (code >> 12));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (code >> 18));
    out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (code & 0x3F));
  }
}

}  // namespace detail

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
