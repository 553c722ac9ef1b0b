#pragma once
// The text_classification example's data: its own arguments (HF's DataTrainingArguments), CSV
// loading, the generated negation task (README.md says why it is not separable by a bag of words),
// and a word-level tokenizer built from the training split, so that nothing is downloaded.

#include <trainpp/cli.hpp>
#include <trainpp/data/tensor_dataset.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace text_classification {

/// This example's own flags, parsed beside TrainingArguments (HF's DataTrainingArguments).
struct DataTrainingArguments {
  std::int64_t max_seq_length = 128;
  std::optional<std::string> train_file;
  std::optional<std::string> validation_file;
  std::string text_column_names = "text";
  std::string label_column_name = "label";
  std::int64_t validation_split_percentage = 10;
  std::optional<std::int64_t> max_train_samples;
  std::optional<std::int64_t> max_eval_samples;
  std::int64_t min_word_frequency = 2;
};
template <class V>
void visit_fields(DataTrainingArguments& a, V&& v) {
  using trainpp::FieldInfo;
  v(FieldInfo{"max_seq_length", "The maximum total input sequence length after tokenization; longer sequences are truncated, shorter ones padded.", "data"}, a.max_seq_length);
  v(FieldInfo{"train_file", "A csv file (with a header row) containing the training data. Without it: the generated negation task.", "data"}, a.train_file);
  v(FieldInfo{"validation_file", "A csv file containing the validation data (default: held out from train_file).", "data"}, a.validation_file);
  v(FieldInfo{"text_column_names", "The column(s) holding the text, comma-separated; several are joined with a space.", "data"}, a.text_column_names);
  v(FieldInfo{"label_column_name", "The column holding the label.", "data"}, a.label_column_name);
  v(FieldInfo{"validation_split_percentage", "Percentage of train_file held out for validation when there is no validation_file.", "data"}, a.validation_split_percentage);
  v(FieldInfo{"max_train_samples", "Truncate the number of training examples to this value.", "data"}, a.max_train_samples);
  v(FieldInfo{"max_eval_samples", "Truncate the number of evaluation examples to this value.", "data"}, a.max_eval_samples);
  v(FieldInfo{"min_word_frequency", "Words seen fewer times in the training split map to [UNK].", "data"}, a.min_word_frequency);
}

struct Example {
  std::string text;
  std::string label;
};

// ---- data ------------------------------------------------------------------------------------

/// The records of a CSV file (RFC 4180: quoted fields may hold commas, doubled quotes and newlines).
inline std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw trainpp::error("cannot open the csv file {}", path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string s = buffer.str();
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    any = true;
    if (quoted) {
      if (c == '"' && i + 1 < s.size() && s[i + 1] == '"') field += s[++i];
      else if (c == '"') quoted = false;
      else field += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      row.push_back(std::move(field));
      field.clear();
      rows.push_back(std::move(row));
      row.clear();
      any = false;
    } else {
      field += c;
    }
  }
  if (any) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  return rows;
}

inline std::vector<Example> load_csv(const std::string& path, const DataTrainingArguments& data) {
  const auto rows = read_csv(path);
  if (rows.empty()) throw trainpp::error("{} is empty: a header row is needed", path);
  const auto& header = rows.front();
  auto column = [&](const std::string& name) {
    const auto it = std::ranges::find(header, name);
    if (it == header.end())
      throw trainpp::error("{} has no column '{}' (columns: {})", path, name, fmt::join(header, ", "));
    return static_cast<std::size_t>(it - header.begin());
  };
  std::vector<std::size_t> text_columns;
  std::stringstream names(data.text_column_names);
  for (std::string name; std::getline(names, name, ',');) text_columns.push_back(column(name));
  const auto label_column = column(data.label_column_name);
  std::vector<Example> out;
  for (std::size_t r = 1; r < rows.size(); ++r) {
    const auto& row = rows[r];
    if (row.size() == 1 && row[0].empty()) continue;  // a blank line
    if (row.size() != header.size())
      throw trainpp::error("{}: record {} has {} fields, the header {}", path, r, row.size(), header.size());
    Example e{.text = "", .label = row[label_column]};
    for (auto c : text_columns) e.text += (e.text.empty() ? "" : " ") + row[c];
    out.push_back(std::move(e));
  }
  return out;
}

/// The generated task: short reviews whose label depends on negation and on clause order, so that
/// the same words in another order can carry the other label (see README.md).
inline std::vector<Example> make_negation_task(std::int64_t n, std::uint32_t seed) {
  static constexpr std::array subjects{"the movie", "this film", "the plot", "the acting", "the ending",
                                       "the music", "it", "the story", "the cast", "the script"};
  static constexpr std::array verbs{"was", "is", "seemed", "felt", "looked"};
  static constexpr std::array modifiers{"", "", "really", "very", "quite", "rather"};
  static constexpr std::array positive{"good", "great", "excellent", "wonderful", "enjoyable", "brilliant", "fun", "charming"};
  static constexpr std::array negative{"bad", "terrible", "awful", "boring", "dull", "weak", "poor", "bland"};
  std::mt19937 rng(seed);
  auto pick = [&](const auto& list) { return std::string(list[std::uniform_int_distribution<std::size_t>(0, list.size() - 1)(rng)]); };
  auto coin = [&] { return std::uniform_int_distribution<int>(0, 1)(rng) == 1; };
  // A clause and its polarity: the adjective's, flipped by "not".
  auto clause = [&] {
    const bool good = coin(), negated = coin();
    std::string modifier = pick(modifiers);
    std::string text = pick(subjects) + " " + pick(verbs) + (negated ? " not" : "") +
                       (modifier.empty() ? "" : " " + modifier) + " " + (good ? pick(positive) : pick(negative));
    return std::pair{text, good != negated};
  };
  std::vector<Example> out;
  out.reserve(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const auto [first, first_positive] = clause();
    const auto [second, second_positive] = clause();
    bool positive_label;
    std::string text;
    switch (std::uniform_int_distribution<int>(0, 9)(rng)) {
      case 0: case 1: case 2:  // one clause
        text = first, positive_label = first_positive;
        break;
      case 3: case 4: case 5: case 6:  // "A but B": B decides
        text = first + " but " + second, positive_label = second_positive;
        break;
      default:  // "A , although B": A decides
        text = first + " , although " + second, positive_label = first_positive;
    }
    out.push_back({text, positive_label ? "positive" : "negative"});
  }
  return out;
}

// ---- tokenizer -------------------------------------------------------------------------------

/// A word-level tokenizer: lower-cased ASCII, words are runs of letters, digits, apostrophes and
/// non-ASCII bytes, every other visible character is a token of its own. The vocabulary is built from
/// the training split: [PAD] 0, [UNK] 1, then the words seen at least min_frequency times, most
/// frequent first.
class WordTokenizer {
 public:
  static constexpr std::int64_t pad = 0, unk = 1;

  static std::vector<std::string> split(const std::string& text) {
    std::vector<std::string> words;
    std::string word;
    auto flush = [&] {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
    };
    for (char ch : text) {
      const auto c = static_cast<unsigned char>(ch);
      if (c >= 0x80 || std::isalnum(c) || c == '\'') word += static_cast<char>(std::tolower(c));
      else {
        flush();
        if (!std::isspace(c) && std::isprint(c)) words.emplace_back(1, static_cast<char>(c));
      }
    }
    flush();
    return words;
  }

  WordTokenizer(const std::vector<Example>& train, std::int64_t min_frequency) {
    std::unordered_map<std::string, std::int64_t> counts;
    for (const auto& e : train)
      for (auto& w : split(e.text)) ++counts[w];
    std::vector<std::pair<std::string, std::int64_t>> sorted(counts.begin(), counts.end());
    std::ranges::sort(sorted, [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
    words_ = {"[PAD]", "[UNK]"};
    for (auto& [w, c] : sorted)
      if (c >= min_frequency) words_.push_back(w);
    for (std::size_t i = 0; i < words_.size(); ++i) ids_[words_[i]] = static_cast<std::int64_t>(i);
  }

  [[nodiscard]] std::int64_t vocab_size() const { return static_cast<std::int64_t>(words_.size()); }

  /// input_ids and attention_mask of `texts`, truncated and padded to `length`.
  [[nodiscard]] std::pair<torch::Tensor, torch::Tensor> encode(const std::vector<Example>& examples, std::int64_t length) const {
    auto ids = torch::full({static_cast<std::int64_t>(examples.size()), length}, pad, torch::kLong);
    auto mask = torch::zeros({static_cast<std::int64_t>(examples.size()), length}, torch::kLong);
    auto id_rows = ids.accessor<std::int64_t, 2>();
    auto mask_rows = mask.accessor<std::int64_t, 2>();
    for (std::size_t i = 0; i < examples.size(); ++i) {
      std::int64_t j = 0;
      for (const auto& w : split(examples[i].text)) {
        if (j == length) break;
        const auto it = ids_.find(w);
        id_rows[static_cast<std::int64_t>(i)][j] = it == ids_.end() ? unk : it->second;
        mask_rows[static_cast<std::int64_t>(i)][j++] = 1;
      }
      if (j == 0) mask_rows[static_cast<std::int64_t>(i)][0] = 1;  // an empty text still has one (pad) token
    }
    return {ids, mask};
  }

 private:
  std::vector<std::string> words_;
  std::unordered_map<std::string, std::int64_t> ids_;
};

inline trainpp::TensorDataset to_dataset(const std::vector<Example>& examples, const WordTokenizer& tokenizer,
                                  const std::map<std::string, std::int64_t>& label_ids, std::int64_t length) {
  auto [ids, mask] = tokenizer.encode(examples, length);
  std::vector<std::int64_t> labels;
  for (const auto& e : examples) {
    const auto it = label_ids.find(e.label);
    if (it == label_ids.end()) throw trainpp::error("the validation data has a label '{}' the training data lacks", e.label);
    labels.push_back(it->second);
  }
  return trainpp::TensorDataset{{"input_ids", ids}, {"attention_mask", mask}, {"labels", torch::tensor(labels, torch::kLong)}};
}


/// The checked arguments' training and evaluation examples, as HF's scripts make them: train_file and
/// validation_file, or a seeded validation_split_percentage held out of train_file, or the generated
/// task; then max_train_samples / max_eval_samples.
inline std::pair<std::vector<Example>, std::vector<Example>> load_splits(const DataTrainingArguments& data,
                                                                          std::int64_t seed) {
  if (data.max_seq_length <= 0) throw trainpp::error("--max_seq_length must be positive, got {}", data.max_seq_length);
  if (data.validation_split_percentage <= 0 || data.validation_split_percentage >= 100)
    throw trainpp::error("--validation_split_percentage must be in 1..99, got {}", data.validation_split_percentage);
  for (auto [limit, name] : {std::pair{data.max_train_samples, "max_train_samples"}, {data.max_eval_samples, "max_eval_samples"}})
    if (limit && *limit <= 0) throw trainpp::error("--{} must be positive, got {}", name, *limit);

  // ---- the splits, as HF's scripts make them
  std::vector<Example> train, eval;
  if (data.train_file) {
    train = load_csv(*data.train_file, data);
    if (data.validation_file) {
      eval = load_csv(*data.validation_file, data);
    } else {
      // A seeded shuffle, then the last validation_split_percentage per cent.
      std::mt19937 rng(static_cast<std::uint32_t>(seed));
      std::shuffle(train.begin(), train.end(), rng);
      const auto held = train.size() * static_cast<std::size_t>(data.validation_split_percentage) / 100;
      eval.assign(train.end() - static_cast<std::ptrdiff_t>(held), train.end());
      train.resize(train.size() - held);
    }
  } else {
    train = make_negation_task(data.max_train_samples.value_or(8000), 1);
    eval = make_negation_task(data.max_eval_samples.value_or(2000), 2);
  }
  if (data.max_train_samples && train.size() > static_cast<std::size_t>(*data.max_train_samples))
    train.resize(static_cast<std::size_t>(*data.max_train_samples));
  if (data.max_eval_samples && eval.size() > static_cast<std::size_t>(*data.max_eval_samples))
    eval.resize(static_cast<std::size_t>(*data.max_eval_samples));
  if (train.empty()) throw trainpp::error("no training examples");
  if (eval.empty()) throw trainpp::error("no evaluation examples (is train_file that small?)");

  return {std::move(train), std::move(eval)};
}

}  // namespace text_classification
