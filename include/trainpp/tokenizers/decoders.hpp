#pragma once
// The decoders of tokenizer.json ("decoder"): from tokens back to text. Each step maps the list of
// token strings to a new list; the text is their concatenation. A Sequence chains its steps.

#include <trainpp/tokenizers/pre_tokenizers.hpp>

#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

namespace trainpp::tokenizers {

/// GPT-2's printable characters back to bytes; invalid UTF-8 in the result becomes U+FFFD.
struct ByteLevelDecoder {
  void operator()(std::vector<std::string>& tokens) const {
    static const std::unordered_map<char32_t, unsigned char> to_byte = [] {
      std::unordered_map<char32_t, unsigned char> m;
      for (int b = 0; b < 256; ++b) m[detail::byte_to_char()[static_cast<std::size_t>(b)]] = static_cast<unsigned char>(b);
      return m;
    }();
    std::string bytes;
    for (const auto& token : tokens) {
      std::string mapped;
      bool all = true;
      for (const char32_t c : unicode::code_points(token)) {
        const auto it = to_byte.find(c);
        if (it == to_byte.end()) {
          all = false;
          break;
        }
        mapped += static_cast<char>(it->second);
      }
      bytes += all ? mapped : token;
    }
    tokens = {unicode::repair_utf8(bytes)};
  }
};

/// BERT's: pieces that start with the prefix join the previous one, others get a space before them.
struct WordPieceDecoder {
  std::string prefix = "##";
  bool cleanup = true;
  void operator()(std::vector<std::string>& tokens) const {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      auto& token = tokens[i];
      if (i != 0) {
        if (token.rfind(prefix, 0) == 0) token = token.substr(prefix.size());
        else token = " " + token;
      }
      if (cleanup) token = clean(token);
    }
  }
  static std::string clean(std::string text) {
    static const std::pair<std::string_view, std::string_view> rules[] = {
        {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
        {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    for (const auto& [from, to] : rules) {
      std::string out;
      std::size_t at = 0;
      for (std::size_t hit = text.find(from); hit != std::string::npos; hit = text.find(from, at)) {
        out.append(text, at, hit - at);
        out += to;
        at = hit + from.size();
      }
      out.append(text, at);
      text = std::move(out);
    }
    return text;
  }
};

struct MetaspaceDecoder {
  std::string replacement = "\xE2\x96\x81";
  bool prepend = true;  ///< the prepend scheme is not "never": the first token loses its leading one
  void operator()(std::vector<std::string>& tokens) const {
    const char32_t r = unicode::code_points(replacement).front();
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      for (const char32_t c : unicode::code_points(tokens[i])) {
        if (c == r) {
          if (!(i == 0 && prepend)) out += ' ';
        } else {
          unicode::append(out, c);
        }
      }
      tokens[i] = std::move(out);
    }
  }
};

/// Runs of <0xNN> tokens become the text of their bytes (one U+FFFD per byte if they are not UTF-8).
struct ByteFallbackDecoder {
  void operator()(std::vector<std::string>& tokens) const {
    std::vector<std::string> out;
    std::string pending;
    std::size_t pending_count = 0;
    const auto flush = [&] {
      if (pending_count == 0) return;
      if (unicode::repair_utf8(pending) == pending) {
        out.push_back(pending);
      } else {
        for (std::size_t i = 0; i < pending_count; ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
      pending_count = 0;
    };
    for (auto& token : tokens) {
      const auto hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
      if (token.size() == 6 && token.rfind("<0x", 0) == 0 && token.back() == '>' && hex(token[3]) && hex(token[4])) {
        pending += static_cast<char>(std::stoi(token.substr(3, 2), nullptr, 16));
        ++pending_count;
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    tokens = std::move(out);
  }
};

struct FuseDecoder {
  void operator()(std::vector<std::string>& tokens) const {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens = {std::move(all)};
  }
};

/// Removes up to `start` leading and `stop` trailing `content` characters from each token.
struct StripDecoder {
  char32_t content = U' ';
  std::size_t start = 0, stop = 0;
  void operator()(std::vector<std::string>& tokens) const {
    for (auto& token : tokens) {
      const auto chars = unicode::code_points(token);
      std::size_t begin = 0, end = chars.size();
      for (std::size_t i = 0; i < start && i < chars.size() && chars[i] == content; ++i) begin = i + 1;
      for (std::size_t i = 0; i < stop && i < chars.size() && chars[chars.size() - 1 - i] == content; ++i) end = chars.size() - 1 - i;
      std::string out;
      for (std::size_t i = begin; i < end; ++i) unicode::append(out, chars[i]);
      token = std::move(out);
    }
  }
};

struct ReplaceDecoder {
  Pattern pattern;
  std::string content;
  void operator()(std::vector<std::string>& tokens) const {
    for (auto& token : tokens) {
      NormalizedString text(token);
      text.replace(pattern, content);
      token = text.get();
    }
  }
};

struct Decoder {
  using Step = std::variant<ByteLevelDecoder, WordPieceDecoder, MetaspaceDecoder, ByteFallbackDecoder, FuseDecoder, StripDecoder, ReplaceDecoder>;
  std::vector<Step> steps;

  [[nodiscard]] bool empty() const { return steps.empty(); }

  [[nodiscard]] std::string operator()(std::vector<std::string> tokens) const {
    if (steps.empty()) {  // no decoder: the tokens joined by spaces, as the library does
      std::string out;
      for (std::size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
      return out;
    }
    for (const auto& step : steps) std::visit([&](const auto& s) { s(tokens); }, step);
    std::string out;
    for (const auto& t : tokens) out += t;
    return out;
  }

  static Decoder from_json(const nlohmann::json& j) {
    Decoder out;
    if (!j.is_null()) out.add(j);
    return out;
  }

 private:
  void add(const nlohmann::json& j) {
    const std::string where = "decoder";
    const auto type = detail::member(j, "type", where).get<std::string>();
    if (type == "Sequence") {
      for (const auto& item : detail::member(j, "decoders", where)) add(item);
    } else if (type == "ByteLevel") {
      steps.emplace_back(ByteLevelDecoder{});
    } else if (type == "WordPiece") {
      steps.emplace_back(WordPieceDecoder{detail::value_or<std::string>(j, "prefix", "##", where), detail::value_or(j, "cleanup", true, where)});
    } else if (type == "Metaspace") {
      MetaspaceDecoder m;
      m.replacement = detail::value_or<std::string>(j, "replacement", m.replacement, where);
      m.prepend = detail::value_or<std::string>(j, "prepend_scheme", "always", where) != "never";
      steps.emplace_back(m);
    } else if (type == "ByteFallback") {
      steps.emplace_back(ByteFallbackDecoder{});
    } else if (type == "Fuse") {
      steps.emplace_back(FuseDecoder{});
    } else if (type == "Strip") {
      const auto content = unicode::code_points(detail::member(j, "content", where).get<std::string>());
      if (content.size() != 1) throw error("tokenizer.json: {}: Strip's \"content\" must be one character", where);
      steps.emplace_back(StripDecoder{content[0], detail::value_or<std::size_t>(j, "start", 0, where), detail::value_or<std::size_t>(j, "stop", 0, where)});
    } else if (type == "Replace") {
      steps.emplace_back(ReplaceDecoder{detail::pattern_from_json(detail::member(j, "pattern", where), where),
                                        detail::member(j, "content", where).get<std::string>()});
    } else {
      throw error("tokenizer.json: decoder type \"{}\" is not supported (supported: Sequence, ByteLevel, WordPiece, "
                  "Metaspace, ByteFallback, Fuse, Strip, Replace)", type);
    }
  }
};

}  // namespace trainpp::tokenizers
