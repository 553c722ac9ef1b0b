#pragma once
// trainpp::Tokenizer: a tokenizer.json read as the `tokenizers` library reads it, encoding and
// decoding as it does: added tokens split off first, then normalizer, pre-tokenizer, model,
// truncation, post-processor and padding; offsets in characters of the input, as its Python API
// reports them. TokenizerConfig reads tokenizer_config.json / special_tokens_map.json as
// AutoTokenizer does.

#include <trainpp/io/json.hpp>
#include <trainpp/tokenizers/decoders.hpp>
#include <trainpp/tokenizers/encoding.hpp>
#include <trainpp/tokenizers/models/bpe.hpp>
#include <trainpp/tokenizers/models/unigram.hpp>
#include <trainpp/tokenizers/models/wordpiece.hpp>
#include <trainpp/tokenizers/normalizers.hpp>
#include <trainpp/tokenizers/post_processors.hpp>
#include <trainpp/tokenizers/pre_tokenizers.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

namespace trainpp::tokenizers {

/// A token of tokenizer.json's "added_tokens": matched in the text before anything else runs.
struct AddedToken {
  std::uint32_t id = 0;
  std::string content;
  bool single_word = false;  ///< only where no word character touches it
  bool lstrip = false;       ///< takes the whitespace before it
  bool rstrip = false;       ///< takes the whitespace after it
  bool normalized = true;    ///< matched in the normalized text rather than the raw one
  bool special = false;      ///< left out of decodes that skip special tokens
};

enum class TruncationStrategy { longest_first, only_first, only_second };

struct TruncationParams {
  std::size_t max_length = 512;
  std::size_t stride = 0;
  TruncationStrategy strategy = TruncationStrategy::longest_first;
  Direction direction = Direction::right;
};

struct PaddingParams {
  std::optional<std::size_t> length;  ///< unset: the longest of the batch
  std::optional<std::size_t> pad_to_multiple_of;
  Direction direction = Direction::right;
  std::uint32_t pad_id = 0;
  std::uint32_t pad_type_id = 0;
  std::string pad_token = "[PAD]";
};

namespace detail {

/// Character offsets from byte offsets into `text`, as the library's Python API converts them: an
/// end inside the text names the character that holds it; a start at the end leaves both as bytes.
class CharOffsets {
 public:
  explicit CharOffsets(std::string_view text) : char_of_byte_(text.size()) {
    std::size_t chars = 0;
    for (std::size_t i = 0; i < text.size(); ++chars) {
      const std::size_t n = unicode::sequence_length(static_cast<unsigned char>(text[i]));
      for (std::size_t k = 0; k < n && i + k < text.size(); ++k) char_of_byte_[i + k] = chars;
      i += n;
    }
  }
  [[nodiscard]] Offsets operator()(Offsets bytes) const {
    const std::size_t n = char_of_byte_.size();
    if (bytes.first >= n) return bytes;
    const std::size_t start = char_of_byte_[bytes.first];
    if (bytes.second < n) return {start, char_of_byte_[bytes.second]};
    return {start, bytes.second > 0 ? char_of_byte_[bytes.second - 1] + 1 : start + 1};
  }

 private:
  std::vector<std::size_t> char_of_byte_;
};

inline std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw error("{}: cannot open", path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// Rust regex's \w, which the library's single_word rule asks: letters, marks, decimal digits,
/// letter numbers, connector punctuation, the joiners, and the letters drawn in circles or squares.
inline bool is_word_char(char32_t c) {
  switch (unicode::category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC: return true;
    default:
      return c == 0x200C || c == 0x200D || (c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) ||
             (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189);
  }
}

}  // namespace detail

class Tokenizer {
 public:
  using Model = std::variant<BPE, WordPiece, Unigram>;

  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  Model model;
  PostProcessor post_processor;
  Decoder decoder;
  std::vector<AddedToken> added_tokens;
  std::optional<TruncationParams> truncation;
  std::optional<PaddingParams> padding;

  /// Reads a tokenizer.json; every error names the file and the key.
  static Tokenizer from_file(const std::filesystem::path& path) {
    const auto text = detail::read_text_file(path);
    try {
      return from_json(trainpp::detail::parse_json_strict(text, path.string()));
    } catch (const Error& e) {
      // The parts' messages start "tokenizer.json: "; this one names the file that was read.
      const std::string what = e.what();
      static constexpr std::string_view generic = "tokenizer.json: ";
      if (what.rfind(generic, 0) == 0) throw error("{}: {}", path.string(), what.substr(generic.size()));
      throw;
    } catch (const nlohmann::json::exception& e) {
      throw error("{}: a value has the wrong type: {}", path.string(), e.what());
    }
  }

  static Tokenizer from_json(const nlohmann::json& j) {
    if (!j.is_object()) throw error("tokenizer.json: the document must be an object");
    Tokenizer t;
    t.normalizer = Normalizer::from_json(j.value("normalizer", nlohmann::json()));
    t.pre_tokenizer = PreTokenizer::from_json(j.value("pre_tokenizer", nlohmann::json()));
    t.post_processor = PostProcessor::from_json(j.value("post_processor", nlohmann::json()));
    t.decoder = Decoder::from_json(j.value("decoder", nlohmann::json()));
    const auto& model = detail::member(j, "model", "the document");
    const std::string type = model.value("type", std::string());
    if (type == "BPE" || (type.empty() && model.contains("merges"))) t.model = BPE::from_json(model);
    else if (type == "WordPiece") t.model = WordPiece::from_json(model);
    else if (type == "Unigram") t.model = Unigram::from_json(model);
    else throw error("tokenizer.json: model type \"{}\" is not supported (supported: BPE, WordPiece, Unigram)", type);
    for (const auto& a : j.value("added_tokens", nlohmann::json::array())) {
      AddedToken token;
      token.id = detail::member(a, "id", "an added token").get<std::uint32_t>();
      token.content = detail::member(a, "content", "an added token").get<std::string>();
      token.single_word = a.value("single_word", false);
      token.lstrip = a.value("lstrip", false);
      token.rstrip = a.value("rstrip", false);
      token.normalized = a.value("normalized", true);
      token.special = a.value("special", false);
      t.added_tokens.push_back(std::move(token));
    }
    if (const auto it = j.find("truncation"); it != j.end() && !it->is_null()) {
      TruncationParams p;
      p.max_length = it->value("max_length", p.max_length);
      p.stride = it->value("stride", p.stride);
      const auto strategy = it->value("strategy", std::string("LongestFirst"));
      p.strategy = strategy == "OnlyFirst" ? TruncationStrategy::only_first
                   : strategy == "OnlySecond" ? TruncationStrategy::only_second
                                              : TruncationStrategy::longest_first;
      p.direction = it->value("direction", std::string("Right")) == "Left" ? Direction::left : Direction::right;
      t.truncation = p;
    }
    if (const auto it = j.find("padding"); it != j.end() && !it->is_null()) {
      PaddingParams p;
      if (const auto s = it->find("strategy"); s != it->end() && s->is_object() && s->contains("Fixed"))
        p.length = s->at("Fixed").get<std::size_t>();
      if (const auto m = it->find("pad_to_multiple_of"); m != it->end() && !m->is_null()) p.pad_to_multiple_of = m->get<std::size_t>();
      p.direction = it->value("direction", std::string("Right")) == "Left" ? Direction::left : Direction::right;
      p.pad_id = it->value("pad_id", 0u);
      p.pad_type_id = it->value("pad_type_id", 0u);
      p.pad_token = it->value("pad_token", p.pad_token);
      t.padding = p;
    }
    t.refresh_added_tokens();
    return t;
  }

  /// Encodes one text (or a pair). Bytes that are not UTF-8 are first replaced as Python's
  /// decode(errors="replace") replaces them, so the offsets count characters of that repaired text.
  [[nodiscard]] Encoding encode(std::string_view text, std::optional<std::string_view> pair = std::nullopt,
                                bool add_special_tokens = true) const {
    Encoding e = post_process(encode_sequence(text, 0), pair ? std::optional(encode_sequence(*pair, 1)) : std::nullopt,
                              add_special_tokens);
    if (padding) pad(e, padding_length(e.size()), padding->pad_id, padding->pad_type_id, padding->pad_token, padding->direction);
    return e;
  }

  /// Encodes every text on `threads` worker threads (0: one per core); with padding to the longest,
  /// all come out as long as the longest of the batch.
  [[nodiscard]] std::vector<Encoding> encode_batch(const std::vector<std::string>& texts, bool add_special_tokens = true,
                                                   unsigned threads = 0) const {
    std::vector<Encoding> out(texts.size());
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    threads = static_cast<unsigned>(std::min<std::size_t>(threads, std::max<std::size_t>(1, texts.size())));
    std::vector<std::exception_ptr> failures(threads);
    {
      std::vector<std::jthread> workers;
      for (unsigned w = 0; w < threads; ++w)
        workers.emplace_back([&, w] {
          try {
            for (std::size_t i = w; i < texts.size(); i += threads)
              out[i] = post_process(encode_sequence(texts[i], 0), std::nullopt, add_special_tokens);
          } catch (...) {
            failures[w] = std::current_exception();
          }
        });
    }
    for (auto& f : failures)
      if (f) std::rethrow_exception(f);
    if (padding) {
      std::size_t longest = 0;
      for (const auto& e : out) longest = std::max(longest, e.size());
      for (auto& e : out) pad(e, padding_length(longest), padding->pad_id, padding->pad_type_id, padding->pad_token, padding->direction);
    }
    return out;
  }

  /// The text of `ids`; special tokens left out unless asked for (Python's default).
  [[nodiscard]] std::string decode(const std::vector<std::uint32_t>& ids, bool skip_special_tokens = true) const {
    std::vector<std::string> tokens;
    for (const auto id : ids) {
      std::optional<std::string> token;
      if (const auto it = added_by_id_.find(id); it != added_by_id_.end()) token = added_tokens[it->second].content;
      else token = std::visit([&](const auto& m) { return m.id_to_token(id); }, model);
      if (!token) continue;
      if (skip_special_tokens && special_contents_.contains(*token)) continue;
      tokens.push_back(std::move(*token));
    }
    return decoder(std::move(tokens));
  }

  [[nodiscard]] std::optional<std::uint32_t> token_to_id(const std::string& token) const {
    for (const auto& a : added_tokens)
      if (a.content == token) return a.id;
    return std::visit([&](const auto& m) { return m.token_to_id(token); }, model);
  }

  [[nodiscard]] std::optional<std::string> id_to_token(std::uint32_t id) const {
    if (const auto it = added_by_id_.find(id); it != added_by_id_.end()) return added_tokens[it->second].content;
    return std::visit([&](const auto& m) { return m.id_to_token(id); }, model);
  }

  /// Call after changing added_tokens or the normalizer by hand.
  void refresh_added_tokens() {
    added_by_id_.clear();
    special_contents_.clear();
    raw_patterns_.clear();
    normalized_patterns_.clear();
    for (std::size_t i = 0; i < added_tokens.size(); ++i) {
      const auto& a = added_tokens[i];
      added_by_id_[a.id] = i;
      if (a.special) special_contents_.insert(a.content);
      if (a.normalized) {
        NormalizedString content(a.content);
        normalizer(content);
        normalized_patterns_.emplace_back(content.get(), i);
      } else {
        raw_patterns_.emplace_back(a.content, i);
      }
    }
    // Longest first, so that the first pattern found at a position is the leftmost-longest match.
    const auto longer = [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); };
    std::stable_sort(raw_patterns_.begin(), raw_patterns_.end(), longer);
    std::stable_sort(normalized_patterns_.begin(), normalized_patterns_.end(), longer);
  }

 private:
  std::unordered_map<std::uint32_t, std::size_t> added_by_id_;
  std::unordered_set<std::string> special_contents_;
  std::vector<std::pair<std::string, std::size_t>> raw_patterns_, normalized_patterns_;  ///< (text, index in added_tokens)

  [[nodiscard]] std::size_t padding_length(std::size_t longest) const {
    std::size_t length = padding->length.value_or(longest);
    if (padding->pad_to_multiple_of && *padding->pad_to_multiple_of > 0 && length % *padding->pad_to_multiple_of != 0)
      length += *padding->pad_to_multiple_of - length % *padding->pad_to_multiple_of;
    return length;
  }

  /// The added tokens found in `text`, cut out as the library does: leftmost-longest, then the
  /// single_word / lstrip / rstrip rules.
  [[nodiscard]] std::vector<PreTokenizedString::Split> split_added(NormalizedString text,
                                                                   const std::vector<std::pair<std::string, std::size_t>>& patterns) const {
    std::vector<PreTokenizedString::Split> out;
    const std::string& s = text.get();
    if (patterns.empty() || s.empty()) {
      out.push_back({std::move(text), std::nullopt});
      return out;
    }
    std::vector<std::pair<Offsets, std::optional<std::size_t>>> pieces;
    std::size_t start_offset = 0;
    for (std::size_t at = 0; at < s.size();) {
      const std::pair<std::string, std::size_t>* found = nullptr;
      for (const auto& p : patterns)
        if (!p.first.empty() && s.compare(at, p.first.size(), p.first) == 0) {
          found = &p;
          break;
        }
      if (!found) {
        at += unicode::sequence_length(static_cast<unsigned char>(s[at]));
        continue;
      }
      const AddedToken& token = added_tokens[found->second];
      std::size_t start = at, stop = at + found->first.size();
      if (token.single_word) {
        std::size_t previous = start > 0 ? start - 1 : 0;
        while (previous > 0 && (static_cast<unsigned char>(s[previous]) & 0xC0) == 0x80) --previous;
        const bool start_space = start == 0 || !detail::is_word_char(unicode::decode_at(s, previous));
        const bool stop_space = stop == s.size() || !detail::is_word_char(unicode::decode_at(s, stop));
        if (!start_space || !stop_space) {
          at += unicode::sequence_length(static_cast<unsigned char>(s[at]));
          continue;
        }
      }
      if (token.lstrip) {
        std::size_t left = start;
        while (left > 0) {
          std::size_t prev = left - 1;
          while (prev > 0 && (static_cast<unsigned char>(s[prev]) & 0xC0) == 0x80) --prev;
          if (!unicode::is_whitespace(unicode::decode_at(s, prev))) break;
          left = prev;
        }
        start = std::max(left, start_offset);
      }
      if (token.rstrip)
        while (stop < s.size() && unicode::is_whitespace(unicode::decode_at(s, stop)))
          stop += unicode::sequence_length(static_cast<unsigned char>(s[stop]));
      if (start_offset < start) pieces.push_back({{start_offset, start}, std::nullopt});
      pieces.push_back({{start, stop}, found->second});
      start_offset = stop;
      at = stop;
    }
    if (start_offset != s.size()) pieces.push_back({{start_offset, s.size()}, std::nullopt});
    for (const auto& [range, index] : pieces) {
      NormalizedString piece = text.slice(range);
      if (index) {
        std::vector<Token> tokens{Token{added_tokens[*index].id, piece.get(), {0, piece.size()}}};
        out.push_back({std::move(piece), std::move(tokens)});
      } else {
        out.push_back({std::move(piece), std::nullopt});
      }
    }
    return out;
  }

  [[nodiscard]] Encoding encode_sequence(std::string_view raw, std::uint32_t type_id) const {
    PreTokenizedString text;
    text.original = unicode::repair_utf8(raw);
    text.splits.push_back({NormalizedString(text.original), std::nullopt});
    text.split([&](std::size_t, NormalizedString piece) { return split_added(std::move(piece), raw_patterns_); });
    text.split([&](std::size_t, NormalizedString piece) {
      normalizer(piece);
      return split_added(std::move(piece), normalized_patterns_);
    });
    pre_tokenizer(text);
    const detail::CharOffsets to_chars(text.original);
    Encoding out;
    for (std::size_t word = 0; word < text.splits.size(); ++word) {
      auto& split = text.splits[word];
      if (!split.tokens) split.tokens = std::visit([&](const auto& m) { return m.tokenize(split.text.get()); }, model);
      const Offsets base = split.text.offsets_original();
      for (auto& token : *split.tokens) {
        Offsets offsets = token.offsets;
        if (const auto original = split.text.normalized_to_original(token.offsets))
          offsets = {base.first + original->first, base.first + original->second};
        out.push(token.id, std::move(token.value), to_chars(offsets), static_cast<std::uint32_t>(word), type_id, false);
      }
    }
    return out;
  }

  [[nodiscard]] Encoding post_process(Encoding first, std::optional<Encoding> second, bool add_special_tokens) const {
    if (truncation) {
      TruncationParams p = *truncation;
      const std::size_t added = add_special_tokens ? post_processor.added_tokens(second.has_value()) : 0;
      if (added > p.max_length) throw error("truncation: max_length {} is shorter than the {} special tokens", p.max_length, added);
      p.max_length -= added;
      truncate_pair(first, second, p);
    }
    std::vector<Encoding> encodings{std::move(first)};
    if (second) encodings.push_back(std::move(*second));
    if (post_processor.empty()) {
      if (encodings.size() == 1) return std::move(encodings[0]);
      Encoding merged;
      for (const auto& e : encodings) merge_with(merged, e);
      return merged;
    }
    return post_processor(std::move(encodings), add_special_tokens);
  }

  static void truncate_pair(Encoding& first, std::optional<Encoding>& second, const TruncationParams& p) {
    if (p.max_length == 0) {
      truncate(first, 0, p.stride, p.direction);
      if (second) truncate(*second, 0, p.stride, p.direction);
      return;
    }
    const std::size_t total = first.size() + (second ? second->size() : 0);
    if (total <= p.max_length) return;
    const std::size_t to_remove = total - p.max_length;
    if (p.strategy == TruncationStrategy::longest_first) {
      if (!second) {
        truncate(first, total - to_remove, p.stride, p.direction);
        return;
      }
      std::size_t n1 = first.size(), n2 = second->size();
      const bool swapped = n1 > n2;
      if (swapped) std::swap(n1, n2);
      n2 = n1 > p.max_length ? n1 : std::max(n1, p.max_length - n1);
      if (n1 + n2 > p.max_length) {
        n1 = p.max_length / 2;
        n2 = n1 + p.max_length % 2;
      }
      if (swapped) std::swap(n1, n2);
      truncate(first, n1, p.stride, p.direction);
      truncate(*second, n2, p.stride, p.direction);
      return;
    }
    if (p.strategy == TruncationStrategy::only_second && !second)
      throw error("truncation: strategy only_second needs a pair of sequences");
    Encoding& target = p.strategy == TruncationStrategy::only_first ? first : *second;
    if (target.size() <= to_remove)
      throw error("truncation: the sequence to truncate has {} tokens, fewer than the {} to remove", target.size(), to_remove);
    truncate(target, target.size() - to_remove, p.stride, p.direction);
  }
};

/// tokenizer_config.json (and special_tokens_map.json for what it leaves out), as AutoTokenizer
/// reads them. The chat template is not read: applying it needs a Jinja engine.
struct TokenizerConfig {
  std::optional<std::string> bos_token, eos_token, unk_token, pad_token, sep_token, cls_token, mask_token;
  std::optional<std::size_t> model_max_length;
  Direction padding_side = Direction::right;
  Direction truncation_side = Direction::right;

  static TokenizerConfig from_directory(const std::filesystem::path& dir) {
    TokenizerConfig c;
    nlohmann::json config = nlohmann::json::object(), map = nlohmann::json::object();
    if (const auto p = dir / "tokenizer_config.json"; std::filesystem::exists(p))
      config = trainpp::detail::parse_json_strict(detail::read_text_file(p), p.string());
    if (const auto p = dir / "special_tokens_map.json"; std::filesystem::exists(p))
      map = trainpp::detail::parse_json_strict(detail::read_text_file(p), p.string());
    const auto token = [&](const char* key) -> std::optional<std::string> {
      for (const auto* source : {&config, &map}) {
        const auto it = source->find(key);
        if (it == source->end() || it->is_null()) continue;
        if (it->is_string()) return it->get<std::string>();
        if (it->is_object() && it->contains("content")) return it->at("content").get<std::string>();
        throw error("{}: \"{}\" must be a string or an object with \"content\"", (dir / (source == &config ? "tokenizer_config.json" : "special_tokens_map.json")).string(), key);
      }
      return std::nullopt;
    };
    c.bos_token = token("bos_token");
    c.eos_token = token("eos_token");
    c.unk_token = token("unk_token");
    c.pad_token = token("pad_token");
    c.sep_token = token("sep_token");
    c.cls_token = token("cls_token");
    c.mask_token = token("mask_token");
    if (const auto it = config.find("model_max_length"); it != config.end() && it->is_number()) {
      // transformers writes a huge sentinel (int(1e30)) for "no limit".
      const double v = it->get<double>();
      if (v < 1e18) c.model_max_length = static_cast<std::size_t>(v);
    }
    const auto side = [&](const char* key) {
      const auto v = config.value(key, std::string("right"));
      if (v != "right" && v != "left") throw error("{}: \"{}\" must be \"right\" or \"left\", got {:?}", (dir / "tokenizer_config.json").string(), key, v);
      return v == "left" ? Direction::left : Direction::right;
    };
    c.padding_side = side("padding_side");
    c.truncation_side = side("truncation_side");
    return c;
  }
};

}  // namespace trainpp::tokenizers
