#pragma once
// Text metrics for generated sequences: corpus BLEU exactly as sacrebleu computes it by default, exact
// match as HF evaluate's `exact_match`, and a compute_metrics function built from a decoder.

#include <trainpp/state.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace trainpp {

/// sacrebleu's BLEUScore: the score on the 0..100 scale, the four n-gram precisions (also 0..100),
/// the brevity penalty and the corpus lengths in tokens; counts and totals are the matched and
/// hypothesis n-grams per order.
struct BleuScore {
  double score = 0.0;
  std::array<double, 4> precisions{};
  double bp = 1.0;
  std::int64_t sys_len = 0;
  std::int64_t ref_len = 0;
  std::array<std::int64_t, 4> counts{};
  std::array<std::int64_t, 4> totals{};
};

namespace detail::text {

/// The length of the UTF-8 sequence starting at s[i], and whether the code point there is whitespace
/// in Python's sense (str.isspace, which str.split and str.rstrip use). A malformed byte counts as one
/// non-space character.
std::pair<std::size_t, bool> utf8_char(std::string_view s, std::size_t i);

/// Python's str.split(): the runs of non-whitespace.
std::vector<std::string> split_whitespace(std::string_view s);

/// Python's str.rstrip().
std::string_view rstrip(std::string_view s);

/// Python's str.replace: every non-overlapping occurrence, left to right, in one pass.
std::string replace_all(std::string_view s, std::string_view from, std::string_view to);

inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

/// re.sub(r'(A)(B)', replacement, s) for single-character classes A and B: a left-to-right scan that
/// resumes after each match, as Python's regex engine does. Working on UTF-8 bytes gives the same
/// result as on code points: the classes that matter are ASCII, and the bytes of a multi-byte
/// character are neither digits nor '.', ',' or '-'.
template <class First, class Second, class Emit>
std::string substitute_pairs(std::string_view s, First first, Second second, Emit emit) {
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  std::size_t i = 0;
  while (i < s.size()) {
    if (i + 1 < s.size() && first(s[i]) && second(s[i + 1])) {
      emit(out, s[i], s[i + 1]);
      i += 2;
    } else {
      out += s[i++];
    }
  }
  return out;
}

}  // namespace detail::text

/// sacrebleu's default tokenizer "13a" (mteval-v13a, as used by WMT): unescapes a few HTML entities,
/// puts spaces around ASCII punctuation and symbols (not around '.' and ',' between digits, nor
/// around apostrophes, and '-' only after a digit), and returns the tokens.
[[nodiscard]] std::vector<std::string> tokenize_13a(std::string_view line);

namespace detail::text {

/// n-gram counts of orders 1..4, keyed by the tokens joined with spaces (tokens hold none, so the
/// key also fixes the order).
std::unordered_map<std::string, std::int64_t> ngram_counts(const std::vector<std::string>& tokens);

inline std::size_t ngram_order(const std::string& key) {
  return 1 + static_cast<std::size_t>(std::count(key.begin(), key.end(), ' '));
}

/// sacrebleu's my_log: log, with log(0) floored to -9999999999 (so the score becomes 0, not NaN).
inline double floored_log(double x) { return x == 0.0 ? -9999999999.0 : std::log(x); }

}  // namespace detail::text

/// Corpus BLEU with sacrebleu's defaults (sacrebleu.corpus_bleu / BLEU().corpus_score with no options:
/// tokenizer 13a, n-grams up to 4, smoothing 'exp', no lowercasing, brevity penalty exp(1 - r/c)).
/// `references[i]` holds the references of `hypotheses[i]`, one or several, and their number may vary
/// between hypotheses. Note the layout: sacrebleu takes reference *streams* instead (its
/// `refs[k][i]` is our `references[i][k]`), HF evaluate's "sacrebleu" takes ours. Each hypothesis is
/// matched against the reference length closest to its own (the shorter on a tie); n-gram matches
/// are clipped by the largest count in any of its references. Throws trainpp::Error when the two
/// lists differ in length or a hypothesis has no reference.
[[nodiscard]] BleuScore corpus_bleu(const std::vector<std::string>& hypotheses,
                                    const std::vector<std::vector<std::string>>& references);

/// One reference per hypothesis.
[[nodiscard]] BleuScore corpus_bleu(const std::vector<std::string>& hypotheses,
                                    const std::vector<std::string>& references);

/// HF evaluate's exact_match with its defaults: the fraction (0..1) of predictions equal, character
/// for character, to their reference. 0 for no predictions. Throws trainpp::Error when the lists
/// differ in length.
[[nodiscard]] double exact_match(const std::vector<std::string>& predictions,
                                 const std::vector<std::string>& references);

/// The texts of an EvalPrediction of token ids: each row of predictions and label_ids, without the
/// entries equal to -100 (HF's ignore index, also the padding between batches of different lengths)
/// or to `pad_token_id`, passed to `decode`, then stripped of surrounding whitespace (as HF's
/// run_translation and run_summarization postprocess). Predictions that are logits (one dimension more
/// than the labels) are reduced with argmax over the last dimension first.
struct DecodedTexts {
  std::vector<std::string> predictions;
  std::vector<std::string> references;
};

template <class Decode>
  requires std::is_invocable_r_v<std::string, Decode&, const std::vector<std::int64_t>&>
[[nodiscard]] DecodedTexts decode_eval_prediction(const EvalPrediction& p, Decode& decode,
                                                  std::optional<std::int64_t> pad_token_id = std::nullopt) {
  if (!p.predictions.defined() || !p.label_ids.defined())
    throw error("text metrics need predictions and label ids (is label_names right?)");
  auto predictions = p.predictions;
  if (predictions.is_floating_point() && predictions.dim() == p.label_ids.dim() + 1) predictions = predictions.argmax(-1);
  if (predictions.dim() != 2 || p.label_ids.dim() != 2 || predictions.size(0) != p.label_ids.size(0))
    throw error("text metrics need token ids of shape [examples, length] for predictions and labels, got {} and {}",
                fmt::join(p.predictions.sizes(), "x"), fmt::join(p.label_ids.sizes(), "x"));
  auto texts_of = [&](const torch::Tensor& ids) {
    const auto rows = ids.to(torch::kCPU, torch::kLong).contiguous();
    const auto* data = rows.data_ptr<std::int64_t>();
    const auto n = rows.size(0), length = rows.size(1);
    std::vector<std::string> texts;
    texts.reserve(static_cast<std::size_t>(n));
    std::vector<std::int64_t> kept;
    for (std::int64_t i = 0; i < n; ++i) {
      kept.clear();
      for (std::int64_t j = 0; j < length; ++j) {
        const auto id = data[i * length + j];
        if (id != -100 && id != pad_token_id.value_or(-100)) kept.push_back(id);
      }
      const std::string text = decode(kept);
      // str.strip(): both ends.
      const std::size_t end = detail::text::rstrip(text).size();
      std::size_t begin = 0;
      while (begin < end) {
        const auto [len, space] = detail::text::utf8_char(text, begin);
        if (!space) break;
        begin += len;
      }
      texts.push_back(text.substr(begin, end - begin));
    }
    return texts;
  };
  return {texts_of(predictions), texts_of(p.label_ids)};
}

/// A compute_metrics function for generated text: decodes predictions and labels with
/// decode_eval_prediction and returns {"bleu": corpus BLEU (0..100, one reference each),
/// "exact_match": fraction 0..1}.
///
///   trainpp::compute_metrics = trainpp::text_metrics([&](const std::vector<int64_t>& ids) { return tok.decode(ids); },
///                                                    tok.pad_id())
template <class Decode>
  requires std::is_invocable_r_v<std::string, Decode&, const std::vector<std::int64_t>&>
class TextMetrics {
 public:
  explicit TextMetrics(Decode decode, std::optional<std::int64_t> pad_token_id = std::nullopt)
      : decode_(std::move(decode)), pad_token_id_(pad_token_id) {}
  [[nodiscard]] Metrics operator()(const EvalPrediction& p) {
    const auto texts = decode_eval_prediction(p, decode_, pad_token_id_);
    return {{"bleu", corpus_bleu(texts.predictions, texts.references).score},
            {"exact_match", exact_match(texts.predictions, texts.references)}};
  }

 private:
  Decode decode_;
  std::optional<std::int64_t> pad_token_id_;
};

/// TextMetrics from a decoder (ids -> text); `pad_token_id`, when given, is dropped like -100.
template <class Decode>
[[nodiscard]] TextMetrics<std::decay_t<Decode>> text_metrics(Decode&& decode,
                                                            std::optional<std::int64_t> pad_token_id = std::nullopt) {
  return TextMetrics<std::decay_t<Decode>>(std::forward<Decode>(decode), pad_token_id);
}

#if TRAINPP_DEFINITIONS

namespace detail::text {

TRAINPP_INLINE std::pair<std::size_t, bool> utf8_char(std::string_view s, std::size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  std::size_t len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 1;
  if (i + len > s.size()) len = 1;
  for (std::size_t k = 1; k < len; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return {1, false};
  char32_t cp = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
  for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  const bool space = (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
                     cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
                     cp == 0x202F || cp == 0x205F || cp == 0x3000;
  return {len, space};
}

TRAINPP_INLINE std::vector<std::string> split_whitespace(std::string_view s) {
  std::vector<std::string> out;
  std::string current;
  for (std::size_t i = 0; i < s.size();) {
    const auto [len, space] = utf8_char(s, i);
    if (space) {
      if (!current.empty()) out.push_back(std::move(current));
      current.clear();
    } else {
      current.append(s.substr(i, len));
    }
    i += len;
  }
  if (!current.empty()) out.push_back(std::move(current));
  return out;
}

TRAINPP_INLINE std::string_view rstrip(std::string_view s) {
  std::size_t end = 0;
  for (std::size_t i = 0; i < s.size();) {
    const auto [len, space] = utf8_char(s, i);
    i += len;
    if (!space) end = i;
  }
  return s.substr(0, end);
}

TRAINPP_INLINE std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  std::size_t start = 0;
  for (std::size_t at; (at = s.find(from, start)) != std::string_view::npos; start = at + from.size()) {
    out.append(s.substr(start, at - start));
    out.append(to);
  }
  out.append(s.substr(start));
  return out;
}

TRAINPP_INLINE std::unordered_map<std::string, std::int64_t> ngram_counts(const std::vector<std::string>& tokens) {
  std::unordered_map<std::string, std::int64_t> counts;
  for (std::size_t n = 1; n <= 4; ++n)
    for (std::size_t i = 0; i + n <= tokens.size(); ++i) {
      std::string key = tokens[i];
      for (std::size_t k = 1; k < n; ++k) (key += ' ') += tokens[i + k];
      ++counts[key];
    }
  return counts;
}

}  // namespace detail::text

TRAINPP_INLINE std::vector<std::string> tokenize_13a(std::string_view line) {
  using namespace detail::text;
  std::string s = replace_all(line, "<skipped>", "");
  s = replace_all(s, "-\n", "");
  s = replace_all(s, "\n", " ");
  s = replace_all(s, "&quot;", "\"");
  s = replace_all(s, "&amp;", "&");
  s = replace_all(s, "&lt;", "<");
  s = replace_all(s, "&gt;", ">");

  // ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> ' \1 '
  std::string spaced;
  spaced.reserve(s.size() * 2 + 2);
  spaced += ' ';
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    const bool symbol = (u >= 0x7B && u <= 0x7E) || (u >= 0x5B && u <= 0x60) || (u >= 0x20 && u <= 0x26) ||
                        (u >= 0x28 && u <= 0x2B) || (u >= 0x3A && u <= 0x40) || u == 0x2F;
    if (symbol) {
      spaced += ' ';
      spaced += c;
      spaced += ' ';
    } else {
      spaced += c;
    }
  }
  spaced += ' ';

  auto period_or_comma = [](char c) { return c == '.' || c == ','; };
  auto not_digit = [](char c) { return !is_digit(c); };
  // ([^0-9])([\.,]) -> '\1 \2 '
  s = substitute_pairs(spaced, not_digit, period_or_comma, [](std::string& out, char a, char b) {
    out += a;
    out += ' ';
    out += b;
    out += ' ';
  });
  // ([\.,])([^0-9]) -> ' \1 \2'
  s = substitute_pairs(s, period_or_comma, not_digit, [](std::string& out, char a, char b) {
    out += ' ';
    out += a;
    out += ' ';
    out += b;
  });
  // ([0-9])(-) -> '\1 \2 '
  s = substitute_pairs(s, is_digit, [](char c) { return c == '-'; }, [](std::string& out, char a, char b) {
    out += a;
    out += ' ';
    out += b;
    out += ' ';
  });
  return split_whitespace(s);
}

TRAINPP_INLINE BleuScore corpus_bleu(const std::vector<std::string>& hypotheses,
                                     const std::vector<std::vector<std::string>>& references) {
  using namespace detail::text;
  if (hypotheses.size() != references.size())
    throw error("corpus_bleu: {} hypotheses but {} reference lists (one list per hypothesis)", hypotheses.size(),
                references.size());
  BleuScore result;
  std::array<std::int64_t, 4>& correct = result.counts;
  std::array<std::int64_t, 4>& total = result.totals;
  for (std::size_t i = 0; i < hypotheses.size(); ++i) {
    if (references[i].empty()) throw error("corpus_bleu: hypothesis {} has no reference", i);
    // The references' n-grams, each at its largest count over the references, and their lengths.
    std::unordered_map<std::string, std::int64_t> ref_ngrams;
    std::vector<std::int64_t> ref_lens;
    for (const auto& ref : references[i]) {
      const auto tokens = tokenize_13a(rstrip(ref));
      ref_lens.push_back(static_cast<std::int64_t>(tokens.size()));
      for (const auto& [ngram, count] : ngram_counts(tokens)) {
        auto& best = ref_ngrams[ngram];
        best = std::max(best, count);
      }
    }
    const auto tokens = tokenize_13a(rstrip(hypotheses[i]));
    const auto hyp_len = static_cast<std::int64_t>(tokens.size());
    std::int64_t closest = ref_lens.front();
    for (auto len : ref_lens) {
      const auto diff = std::abs(hyp_len - len), best = std::abs(hyp_len - closest);
      if (diff < best || (diff == best && len < closest)) closest = len;
    }
    result.sys_len += hyp_len;
    result.ref_len += closest;
    for (const auto& [ngram, count] : ngram_counts(tokens)) {
      const std::size_t n = ngram_order(ngram) - 1;
      total[n] += count;
      if (auto it = ref_ngrams.find(ngram); it != ref_ngrams.end()) correct[n] += std::min(count, it->second);
    }
  }

  // sacrebleu's compute_bleu, operation for operation (the same rounding, so the same digits).
  if (result.sys_len < result.ref_len)
    result.bp = result.sys_len > 0
                    ? std::exp(1.0 - static_cast<double>(result.ref_len) / static_cast<double>(result.sys_len))
                    : 0.0;
  if (std::all_of(correct.begin(), correct.end(), [](std::int64_t c) { return c == 0; })) return result;
  double smooth = 1.0;
  for (std::size_t n = 0; n < 4; ++n) {
    if (total[n] == 0) break;  // no n-grams this long: the precision stays 0 and the score 0
    if (correct[n] == 0) {
      smooth *= 2;
      result.precisions[n] = 100.0 / (smooth * static_cast<double>(total[n]));
    } else {
      result.precisions[n] = 100.0 * static_cast<double>(correct[n]) / static_cast<double>(total[n]);
    }
  }
  double log_sum = 0.0;
  for (double p : result.precisions) log_sum += floored_log(p);
  result.score = result.bp * std::exp(log_sum / 4);
  return result;
}

TRAINPP_INLINE BleuScore corpus_bleu(const std::vector<std::string>& hypotheses,
                                     const std::vector<std::string>& references) {
  std::vector<std::vector<std::string>> lists;
  lists.reserve(references.size());
  for (const auto& r : references) lists.push_back({r});
  return corpus_bleu(hypotheses, lists);
}

TRAINPP_INLINE double exact_match(const std::vector<std::string>& predictions,
                                  const std::vector<std::string>& references) {
  if (predictions.size() != references.size())
    throw error("exact_match: {} predictions but {} references", predictions.size(), references.size());
  if (predictions.empty()) return 0.0;
  std::size_t equal = 0;
  for (std::size_t i = 0; i < predictions.size(); ++i) equal += predictions[i] == references[i];
  return static_cast<double>(equal) / static_cast<double>(predictions.size());
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
