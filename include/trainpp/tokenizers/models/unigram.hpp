#pragma once
// The Unigram model of tokenizer.json ("model": {"type": "Unigram"}): the segmentation of a word
// with the highest total score (Viterbi over every vocabulary piece that starts at each character);
// a character no piece covers costs the lowest score minus 10 and becomes the unknown token, runs
// of them fused into one.

#include <trainpp/tokenizers/models/bpe.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace trainpp::tokenizers {

class Unigram {
 public:
  std::vector<std::pair<std::string, double>> pieces;
  std::unordered_map<std::string, std::uint32_t> ids;
  std::optional<std::uint32_t> unk_id;
  bool byte_fallback = false;

  static Unigram from_json(const nlohmann::json& j) {
    const std::string where = "model (Unigram)";
    Unigram out;
    const auto& vocab = detail::member(j, "vocab", where);
    if (!vocab.is_array()) throw error("tokenizer.json: {}: \"vocab\" must be an array of [piece, score]", where);
    for (const auto& entry : vocab) {
      if (!entry.is_array() || entry.size() != 2 || !entry[0].is_string() || !entry[1].is_number())
        throw error("tokenizer.json: {}: vocabulary entry {} is not [piece, score]", where, entry.dump());
      out.ids.emplace(entry[0].get<std::string>(), static_cast<std::uint32_t>(out.pieces.size()));
      out.pieces.emplace_back(entry[0].get<std::string>(), entry[1].get<double>());
      out.min_score_ = std::min(out.min_score_, entry[1].get<double>());
      out.max_piece_bytes_ = std::max(out.max_piece_bytes_, entry[0].get<std::string>().size());
    }
    if (const auto it = j.find("unk_id"); it != j.end() && !it->is_null()) {
      out.unk_id = it->get<std::uint32_t>();
      if (*out.unk_id >= out.pieces.size())
        throw error("tokenizer.json: {}: \"unk_id\" {} is outside the vocabulary of {}", where, *out.unk_id, out.pieces.size());
    }
    out.byte_fallback = detail::value_or(j, "byte_fallback", false, where);
    return out;
  }

  [[nodiscard]] std::vector<Token> tokenize(const std::string& word) const {
    std::vector<Token> out;
    std::size_t offset = 0;
    for (auto& piece : segment(word)) {
      const std::size_t n = piece.size();
      if (const auto it = ids.find(piece); it != ids.end()) {
        out.push_back(Token{it->second, std::move(piece), {offset, offset + n}});
      } else {
        std::vector<Token> bytes;
        if (byte_fallback) {
          for (unsigned char b : piece) {
            const auto name = fmt::format("<0x{:02X}>", b);
            const auto id = ids.find(name);
            if (id == ids.end()) break;
            bytes.push_back(Token{id->second, name, {offset, offset + n}});
          }
        }
        if (byte_fallback && bytes.size() == n) {
          out.insert(out.end(), bytes.begin(), bytes.end());
        } else {
          out.push_back(Token{*unk_id, std::move(piece), {offset, offset + n}});
        }
      }
      offset += n;
    }
    return out;
  }

  [[nodiscard]] std::optional<std::string> id_to_token(std::uint32_t id) const {
    return id < pieces.size() ? std::optional(pieces[id].first) : std::nullopt;
  }
  [[nodiscard]] std::optional<std::uint32_t> token_to_id(const std::string& token) const {
    const auto it = ids.find(token);
    return it == ids.end() ? std::nullopt : std::optional(it->second);
  }

 private:
  static constexpr double unknown_penalty = 10.0;
  double min_score_ = std::numeric_limits<double>::infinity();
  std::size_t max_piece_bytes_ = 0;

  [[nodiscard]] std::vector<std::string> segment(const std::string& word) const {
    struct Node {
      std::uint32_t id = 0;
      double score = 0;
      std::optional<std::size_t> start;
    };
    std::vector<Node> best(word.size() + 1);
    const double unknown_score = min_score_ - unknown_penalty;
    for (std::size_t start = 0; start < word.size();) {
      const double here = best[start].score;
      const std::size_t char_bytes = unicode::sequence_length(static_cast<unsigned char>(word[start]));
      bool single = false;
      for (std::size_t end = start + char_bytes; end <= word.size() && end - start <= max_piece_bytes_;
           end += end < word.size() ? unicode::sequence_length(static_cast<unsigned char>(word[end])) : 1) {
        const auto it = ids.find(word.substr(start, end - start));
        if (it == ids.end()) continue;
        const double candidate = here + pieces[it->second].second;
        Node& node = best[end];
        if (!node.start || candidate > node.score) node = {it->second, candidate, start};
        if (end - start == char_bytes) single = true;
      }
      if (!single) {
        if (!unk_id) throw error("tokenizer.json: model (Unigram): {:?} has a character no piece covers and there is no \"unk_id\"", word);
        const double candidate = here + unknown_score;
        Node& node = best[start + char_bytes];
        if (!node.start || candidate > node.score) node = {*unk_id, candidate, start};
      }
      start += char_bytes;
    }
    std::vector<std::string> out;
    std::string unknown_run;  // unknown characters, last first
    std::vector<std::string> run;
    for (std::size_t end = word.size(); end > 0;) {
      const Node& node = best[end];
      const std::size_t start = *node.start;
      if (unk_id && node.id == *unk_id) {
        run.push_back(word.substr(start, end - start));
      } else {
        if (!run.empty()) {
          std::string fused;
          for (auto it = run.rbegin(); it != run.rend(); ++it) fused += *it;
          out.push_back(std::move(fused));
          run.clear();
        }
        out.push_back(word.substr(start, end - start));
      }
      end = start;
    }
    if (!run.empty()) {
      std::string fused;
      for (auto it = run.rbegin(); it != run.rend(); ++it) fused += *it;
      out.push_back(std::move(fused));
    }
    std::reverse(out.begin(), out.end());
    return out;
  }
};

}  // namespace trainpp::tokenizers
