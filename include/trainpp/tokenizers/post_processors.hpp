#pragma once
// The post-processors of tokenizer.json ("post_processor"): the special tokens around one sequence
// or a pair (BERT's [CLS] A [SEP] B [SEP], a template, RoBERTa's), their type ids, and GPT-2's
// trimming of spaces out of offsets. A Sequence applies its steps in order.

#include <trainpp/tokenizers/encoding.hpp>
#include <trainpp/tokenizers/pre_tokenizers.hpp>

#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace trainpp::tokenizers {

/// GPT-2's post-processor: no special tokens; with trim_offsets, offsets leave out leading and
/// trailing spaces ('Ġ').
struct ByteLevelProcessor {
  bool add_prefix_space = true;
  bool trim_offsets = true;

  void operator()(std::vector<Encoding>& encodings, bool) const {
    if (!trim_offsets) return;
    for (auto& e : encodings) {
      trim(e);
      for (auto& window : e.overflowing) trim(window);
    }
  }
  [[nodiscard]] std::size_t added_tokens(bool) const { return 0; }

 private:
  void trim(Encoding& e) const {
    const char32_t space = detail::byte_to_char()[' '];
    for (std::size_t i = 0; i < e.size(); ++i) {
      const auto chars = unicode::code_points(e.tokens[i]);
      const auto is_space = [&](char32_t c) { return c == space || unicode::is_whitespace(c); };
      std::size_t leading = 0, trailing = 0;
      while (leading < chars.size() && is_space(chars[leading])) ++leading;
      while (trailing < chars.size() && is_space(chars[chars.size() - 1 - trailing])) ++trailing;
      auto& [begin, end] = e.offsets[i];
      if (leading > 0) {
        const bool first = i == 0 || begin == 0;
        if (first && add_prefix_space && leading == 1) leading = 0;
        begin = std::min(begin + leading, end);
      }
      if (trailing > 0 && end >= trailing) end = std::max(end - trailing, begin);
    }
  }
};

/// One piece of a template: a special token or one of the sequences, with its type id.
struct TemplatePiece {
  bool is_sequence = false;
  std::string id;  ///< "A" / "B" for a sequence, else the special token's name
  std::uint32_t type_id = 0;
};

struct TemplateProcessing {
  struct Special {
    std::vector<std::uint32_t> ids;
    std::vector<std::string> tokens;
  };
  std::vector<TemplatePiece> single, pair;
  std::map<std::string, Special> special_tokens;

  void operator()(std::vector<Encoding>& encodings, bool add_special_tokens) const {
    const auto& pieces = encodings.size() == 2 ? pair : single;
    Encoding out;
    for (const auto& piece : pieces) {
      if (piece.is_sequence) {
        Encoding e = encodings[piece.id == "A" ? 0 : 1];
        std::fill(e.type_ids.begin(), e.type_ids.end(), piece.type_id);  // not the windows': as the library
        merge_with(out, e);
      } else if (add_special_tokens) {
        const auto& special = special_tokens.at(piece.id);
        Encoding e;
        for (std::size_t k = 0; k < special.ids.size(); ++k)
          e.push(special.ids[k], special.tokens[k], {0, 0}, std::nullopt, piece.type_id, true);
        merge_with(out, e);
      }
    }
    encodings = {std::move(out)};
  }
  [[nodiscard]] std::size_t added_tokens(bool is_pair) const {
    std::size_t n = 0;
    for (const auto& piece : is_pair ? pair : single)
      if (!piece.is_sequence) n += special_tokens.at(piece.id).ids.size();
    return n;
  }
};

struct PostProcessor {
  using Step = std::variant<ByteLevelProcessor, TemplateProcessing>;
  std::vector<Step> steps;

  [[nodiscard]] bool empty() const { return steps.empty(); }

  /// One or two encodings in, one out.
  [[nodiscard]] Encoding operator()(std::vector<Encoding> encodings, bool add_special_tokens) const {
    for (const auto& step : steps) std::visit([&](const auto& s) { s(encodings, add_special_tokens); }, step);
    Encoding merged;
    for (const auto& e : encodings) merge_with(merged, e);
    return merged;
  }

  [[nodiscard]] std::size_t added_tokens(bool is_pair) const {
    std::size_t n = 0;
    for (const auto& step : steps) n += std::visit([&](const auto& s) { return s.added_tokens(is_pair); }, step);
    return n;
  }

  static PostProcessor from_json(const nlohmann::json& j) {
    PostProcessor out;
    if (!j.is_null()) out.add(j);
    return out;
  }

 private:
  static std::pair<std::string, std::uint32_t> named_id(const nlohmann::json& j, const char* key, std::string_view where) {
    const auto& v = detail::member(j, key, where);
    if (!v.is_array() || v.size() != 2) throw error("tokenizer.json: {}: \"{}\" must be [token, id]", where, key);
    return {v[0].get<std::string>(), v[1].get<std::uint32_t>()};
  }

  static std::vector<TemplatePiece> pieces_from_json(const nlohmann::json& j, std::string_view where) {
    std::vector<TemplatePiece> out;
    for (const auto& item : j) {
      if (item.contains("Sequence")) {
        out.push_back({true, item["Sequence"].at("id").get<std::string>(), item["Sequence"].value("type_id", 0u)});
      } else if (item.contains("SpecialToken")) {
        out.push_back({false, item["SpecialToken"].at("id").get<std::string>(), item["SpecialToken"].value("type_id", 0u)});
      } else {
        throw error("tokenizer.json: {}: template piece {} is neither Sequence nor SpecialToken", where, item.dump());
      }
    }
    return out;
  }

  void add(const nlohmann::json& j) {
    const std::string where = "post_processor";
    const auto type = detail::member(j, "type", where).get<std::string>();
    if (type == "Sequence") {
      for (const auto& item : detail::member(j, "processors", where)) add(item);
    } else if (type == "ByteLevel") {
      steps.emplace_back(ByteLevelProcessor{detail::value_or(j, "add_prefix_space", true, where), detail::value_or(j, "trim_offsets", true, where)});
    } else if (type == "BertProcessing" || type == "RobertaProcessing") {
      // Both are templates: BERT's [CLS] A [SEP] (B [SEP], type id 1), RoBERTa's <s> A </s> (</s> B </s>, type id 0).
      const auto cls = named_id(j, "cls", where), sep = named_id(j, "sep", where);
      const bool bert = type == "BertProcessing";
      TemplateProcessing t;
      t.special_tokens[cls.first] = {{cls.second}, {cls.first}};
      t.special_tokens[sep.first] = {{sep.second}, {sep.first}};
      t.single = {{false, cls.first, 0}, {true, "A", 0}, {false, sep.first, 0}};
      t.pair = t.single;
      if (!bert) t.pair.push_back({false, sep.first, 0});
      t.pair.push_back({true, "B", bert ? 1u : 0u});
      t.pair.push_back({false, sep.first, bert ? 1u : 0u});
      if (!bert && detail::value_or(j, "trim_offsets", true, where))
        steps.emplace_back(ByteLevelProcessor{detail::value_or(j, "add_prefix_space", true, where), true});
      steps.emplace_back(std::move(t));
    } else if (type == "TemplateProcessing") {
      TemplateProcessing t;
      t.single = pieces_from_json(detail::member(j, "single", where), where);
      t.pair = pieces_from_json(detail::member(j, "pair", where), where);
      for (const auto& [name, special] : detail::member(j, "special_tokens", where).items())
        t.special_tokens[name] = {special.at("ids").get<std::vector<std::uint32_t>>(), special.at("tokens").get<std::vector<std::string>>()};
      for (const auto* pieces : {&t.single, &t.pair})
        for (const auto& piece : *pieces)
          if (!piece.is_sequence && !t.special_tokens.contains(piece.id))
            throw error("tokenizer.json: {}: the template names the special token \"{}\", missing from \"special_tokens\"", where, piece.id);
      steps.emplace_back(std::move(t));
    } else {
      throw error("tokenizer.json: post_processor type \"{}\" is not supported (supported: Sequence, ByteLevel, "
                  "BertProcessing, RobertaProcessing, TemplateProcessing)", type);
    }
  }
};

}  // namespace trainpp::tokenizers
