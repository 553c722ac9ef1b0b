#pragma once
// The BPE model of tokenizer.json ("model": {"type": "BPE"}): a word as characters, merged pair by
// pair in the order of the merges list, lowest rank first and leftmost first among equals.

#include <trainpp/tokenizers/pre_tokenizers.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

namespace trainpp::tokenizers {

struct Vocabulary {
  std::unordered_map<std::string, std::uint32_t> ids;
  std::unordered_map<std::uint32_t, std::string> tokens;

  void add(std::string token, std::uint32_t id) {
    tokens[id] = token;
    ids[std::move(token)] = id;
  }
  [[nodiscard]] std::optional<std::uint32_t> id_of(const std::string& token) const {
    const auto it = ids.find(token);
    return it == ids.end() ? std::nullopt : std::optional(it->second);
  }
};

namespace detail {
inline Vocabulary vocabulary_from_json(const nlohmann::json& vocab, std::string_view where) {
  if (!vocab.is_object()) throw error("tokenizer.json: {}: \"vocab\" must be an object of token: id", where);
  Vocabulary out;
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_unsigned()) throw error("tokenizer.json: {}: the id of \"{}\" is not an unsigned integer", where, token);
    out.add(token, id.get<std::uint32_t>());
  }
  return out;
}
}  // namespace detail

class BPE {
 public:
  Vocabulary vocab;
  std::optional<std::string> unk_token;
  std::optional<std::string> continuing_subword_prefix;
  std::optional<std::string> end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;

  static BPE from_json(const nlohmann::json& j) {
    const std::string where = "model (BPE)";
    BPE out;
    out.vocab = detail::vocabulary_from_json(detail::member(j, "vocab", where), where);
    const auto optional_string = [&](const char* key) -> std::optional<std::string> {
      const auto it = j.find(key);
      if (it == j.end() || it->is_null()) return std::nullopt;
      return it->get<std::string>();
    };
    out.unk_token = optional_string("unk_token");
    out.continuing_subword_prefix = optional_string("continuing_subword_prefix");
    out.end_of_word_suffix = optional_string("end_of_word_suffix");
    out.fuse_unk = detail::value_or(j, "fuse_unk", false, where);
    out.byte_fallback = detail::value_or(j, "byte_fallback", false, where);
    out.ignore_merges = detail::value_or(j, "ignore_merges", false, where);
    if (const auto dropout = detail::value_or(j, "dropout", 0.0, where); dropout != 0.0)
      throw error("tokenizer.json: {}: \"dropout\" {} is not supported (it makes encoding random)", where, dropout);
    const auto& merges = detail::member(j, "merges", where);
    std::uint32_t rank = 0;
    for (const auto& merge : merges) {
      std::string left, right;
      if (merge.is_string()) {  // "a b", the older format
        const auto text = merge.get<std::string>();
        const auto space = text.find(' ');
        if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos)
          throw error("tokenizer.json: {}: merge {:?} is not two tokens separated by one space", where, text);
        left = text.substr(0, space);
        right = text.substr(space + 1);
      } else if (merge.is_array() && merge.size() == 2) {
        left = merge[0].get<std::string>();
        right = merge[1].get<std::string>();
      } else {
        throw error("tokenizer.json: {}: merge {} is neither \"a b\" nor [\"a\", \"b\"]", where, merge.dump());
      }
      const auto a = out.vocab.id_of(left), b = out.vocab.id_of(right);
      // The right side carries the continuing-subword prefix, which the merged token does not repeat.
      const std::size_t strip = out.continuing_subword_prefix ? std::min(out.continuing_subword_prefix->size(), right.size()) : 0;
      const auto merged = out.vocab.id_of(left + right.substr(strip));
      if (!a || !b) throw error("tokenizer.json: {}: merge {} names a token missing from the vocabulary", where, merge.dump());
      if (!merged) throw error("tokenizer.json: {}: the result of merge {} is missing from the vocabulary", where, merge.dump());
      out.merges_.emplace(pair_key(*a, *b), MergeResult{rank++, *merged});
    }
    return out;
  }

  [[nodiscard]] std::vector<Token> tokenize(const std::string& word) const {
    if (word.empty()) return {};
    if (ignore_merges)
      if (const auto id = vocab.id_of(word)) return {Token{*id, word, {0, word.size()}}};
    std::vector<Symbol> symbols = initial_symbols(word);
    merge_all(symbols);
    std::vector<Token> out;
    std::size_t offset = 0;
    for (const auto& s : symbols) {
      if (s.length == 0) continue;
      out.push_back(Token{s.id, vocab.tokens.at(s.id), {offset, offset + s.length}});
      offset += s.length;
    }
    return out;
  }

  [[nodiscard]] std::optional<std::string> id_to_token(std::uint32_t id) const {
    const auto it = vocab.tokens.find(id);
    return it == vocab.tokens.end() ? std::nullopt : std::optional(it->second);
  }
  [[nodiscard]] std::optional<std::uint32_t> token_to_id(const std::string& token) const { return vocab.id_of(token); }

 private:
  struct MergeResult {
    std::uint32_t rank;
    std::uint32_t id;
  };
  struct Symbol {
    std::uint32_t id;
    std::size_t length;  ///< bytes of the word; 0 once merged into the symbol before it
    std::ptrdiff_t prev, next;
  };
  static std::uint64_t pair_key(std::uint32_t a, std::uint32_t b) { return (std::uint64_t{a} << 32) | b; }

  std::unordered_map<std::uint64_t, MergeResult> merges_;

  [[nodiscard]] std::vector<Symbol> initial_symbols(const std::string& word) const {
    std::vector<std::pair<std::uint32_t, std::size_t>> pieces;  // (id, bytes)
    std::optional<std::pair<std::uint32_t, std::size_t>> unk;
    const auto unk_id = [&] {
      const auto id = vocab.id_of(*unk_token);
      if (!id) throw error("tokenizer.json: model (BPE): \"unk_token\" {:?} is not in the vocabulary", *unk_token);
      return *id;
    };
    for (std::size_t i = 0; i < word.size();) {
      const std::size_t n = unicode::sequence_length(static_cast<unsigned char>(word[i]));
      std::string piece = word.substr(i, n);
      if (i > 0 && continuing_subword_prefix) piece = *continuing_subword_prefix + piece;
      if (i + n >= word.size() && end_of_word_suffix) piece += *end_of_word_suffix;
      i += n;
      if (const auto id = vocab.id_of(piece)) {
        if (unk) pieces.push_back(*unk), unk.reset();
        pieces.emplace_back(*id, n);
        continue;
      }
      if (byte_fallback) {
        std::vector<std::uint32_t> bytes;
        for (unsigned char b : piece) {
          const auto id = vocab.id_of(fmt::format("<0x{:02X}>", b));
          if (!id) break;
          bytes.push_back(*id);
        }
        if (bytes.size() == piece.size()) {
          for (auto id : bytes) pieces.emplace_back(id, 1);
          continue;
        }
      }
      if (unk_token) {
        if (unk && fuse_unk) {
          unk->second += n;
        } else {
          if (unk) pieces.push_back(*unk);
          unk = std::pair{unk_id(), n};
        }
      }
    }
    if (unk) pieces.push_back(*unk);
    std::vector<Symbol> symbols;
    symbols.reserve(pieces.size());
    for (std::size_t k = 0; k < pieces.size(); ++k)
      symbols.push_back({pieces[k].first, pieces[k].second, static_cast<std::ptrdiff_t>(k) - 1,
                         k + 1 < pieces.size() ? static_cast<std::ptrdiff_t>(k + 1) : -1});
    return symbols;
  }

  void merge_all(std::vector<Symbol>& symbols) const {
    struct Candidate {
      std::uint32_t rank;
      std::size_t pos;
      std::uint32_t id;
      bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
    const auto push = [&](std::size_t pos) {
      const auto next = symbols[pos].next;
      if (next < 0) return;
      const auto it = merges_.find(pair_key(symbols[pos].id, symbols[static_cast<std::size_t>(next)].id));
      if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.id});
    };
    for (std::size_t i = 0; i + 1 < symbols.size(); ++i) push(i);
    while (!queue.empty()) {
      const Candidate top = queue.top();
      queue.pop();
      Symbol& left = symbols[top.pos];
      if (left.length == 0 || left.next < 0) continue;
      const auto right_pos = static_cast<std::size_t>(left.next);
      const Symbol right = symbols[right_pos];
      const auto it = merges_.find(pair_key(left.id, right.id));
      if (it == merges_.end() || it->second.id != top.id) continue;  // a stale entry
      left.id = top.id;
      left.length += right.length;
      left.next = right.next;
      symbols[right_pos].length = 0;
      if (right.next >= 0) symbols[static_cast<std::size_t>(right.next)].prev = static_cast<std::ptrdiff_t>(top.pos);
      if (left.prev >= 0) push(static_cast<std::size_t>(left.prev));
      push(top.pos);
    }
  }
};

}  // namespace trainpp::tokenizers
