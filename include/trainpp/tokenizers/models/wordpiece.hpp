#pragma once
// The WordPiece model of tokenizer.json ("model": {"type": "WordPiece"}): greedy longest match
// from the left, later pieces spelled with the continuing prefix ("##"); a word that cannot be cut
// into known pieces, or is too long, is the unknown token as a whole.

#include <trainpp/tokenizers/models/bpe.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace trainpp::tokenizers {

class WordPiece {
 public:
  Vocabulary vocab;
  std::string unk_token = "[UNK]";
  std::string continuing_subword_prefix = "##";
  std::size_t max_input_chars_per_word = 100;

  static WordPiece from_json(const nlohmann::json& j) {
    const std::string where = "model (WordPiece)";
    WordPiece out;
    out.vocab = detail::vocabulary_from_json(detail::member(j, "vocab", where), where);
    out.unk_token = detail::value_or<std::string>(j, "unk_token", out.unk_token, where);
    out.continuing_subword_prefix = detail::value_or<std::string>(j, "continuing_subword_prefix", out.continuing_subword_prefix, where);
    out.max_input_chars_per_word = detail::value_or<std::size_t>(j, "max_input_chars_per_word", out.max_input_chars_per_word, where);
    if (!out.vocab.id_of(out.unk_token))
      throw error("tokenizer.json: {}: \"unk_token\" {:?} is not in the vocabulary", where, out.unk_token);
    return out;
  }

  [[nodiscard]] std::vector<Token> tokenize(const std::string& word) const {
    if (unicode::count(word) > max_input_chars_per_word) return {unknown(word)};
    std::vector<Token> pieces;
    std::size_t start = 0;
    while (start < word.size()) {
      std::size_t end = word.size();
      std::optional<Token> found;
      while (start < end) {
        std::string candidate = word.substr(start, end - start);
        if (start > 0) candidate = continuing_subword_prefix + candidate;
        if (const auto id = vocab.id_of(candidate)) {
          found = Token{*id, std::move(candidate), {start, end}};
          break;
        }
        // Back off by the last character of the candidate (prefix included, as the library does).
        std::size_t last = candidate.size() - 1;
        while (last > 0 && (static_cast<unsigned char>(candidate[last]) & 0xC0) == 0x80) --last;
        end -= std::min(end - start, candidate.size() - last);
      }
      if (!found) return {unknown(word)};
      pieces.push_back(std::move(*found));
      start = end;
    }
    return pieces;
  }

  [[nodiscard]] std::optional<std::string> id_to_token(std::uint32_t id) const {
    const auto it = vocab.tokens.find(id);
    return it == vocab.tokens.end() ? std::nullopt : std::optional(it->second);
  }
  [[nodiscard]] std::optional<std::uint32_t> token_to_id(const std::string& token) const { return vocab.id_of(token); }

 private:
  [[nodiscard]] Token unknown(const std::string& word) const { return Token{*vocab.id_of(unk_token), unk_token, {0, word.size()}}; }
};

}  // namespace trainpp::tokenizers
