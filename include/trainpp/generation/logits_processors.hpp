#pragma once
// The logits processors of transformers' generate that trainpp implements, each as HF's class of the
// same name computes it: scores [N, V] in, processed scores [N, V] out (a new tensor). generate applies
// them in HF's order: repetition penalty, minimum length, then, when sampling, temperature, top-k, top-p.

#include <trainpp/detail/config.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>

namespace trainpp {

/// HF's RepetitionPenaltyLogitsProcessor: every token that occurs in `sequences` [N, L] has its score
/// divided by `penalty` when positive and multiplied by it when negative (once, however often it
/// occurs). `ignored_prefix` [N] (optional) is how many leading positions of each row do not count:
/// generate passes the left padding, as transformers does since 4.5x.
[[nodiscard]] inline torch::Tensor apply_repetition_penalty(const torch::Tensor& scores, const torch::Tensor& sequences,
                                                            double penalty, const torch::Tensor& ignored_prefix = {}) {
  const auto vocabulary = scores.size(1);
  // Tokens that must not count (ignored prefix, ids beyond the scores) go to a spare column dropped after.
  auto ids = sequences.clamp_max(vocabulary);
  if (ignored_prefix.defined()) {
    const auto positions = torch::arange(sequences.size(1), sequences.options()).unsqueeze(0);
    ids = ids.masked_fill(positions < ignored_prefix.to(sequences.device()).unsqueeze(1), vocabulary);
  }
  auto seen = torch::zeros({scores.size(0), vocabulary + 1}, scores.options().dtype(torch::kBool));
  seen.scatter_(1, ids, true);
  const auto penalised = torch::where(scores < 0, scores * penalty, scores / penalty);
  return torch::where(seen.narrow(1, 0, vocabulary), penalised, scores);
}

/// HF's MinLengthLogitsProcessor: the end tokens `eos` [E] are forbidden (-inf) while the sequence,
/// prompt included, is shorter than min_length.
[[nodiscard]] inline torch::Tensor apply_min_length(const torch::Tensor& scores, const torch::Tensor& eos,
                                                    std::int64_t length, std::int64_t min_length) {
  if (!eos.defined() || eos.numel() == 0 || length >= min_length) return scores;
  return scores.index_fill(1, eos.to(scores.device()), -std::numeric_limits<float>::infinity());
}

/// HF's TemperatureLogitsWarper: scores / temperature.
[[nodiscard]] inline torch::Tensor apply_temperature(const torch::Tensor& scores, double temperature) {
  return scores / temperature;
}

/// HF's TopKLogitsWarper: scores below the k-th largest of their row become -inf (ties with it stay);
/// at least min_tokens_to_keep tokens remain. top_k 0 leaves the scores as they are.
[[nodiscard]] inline torch::Tensor apply_top_k(const torch::Tensor& scores, std::int64_t top_k,
                                               std::int64_t min_tokens_to_keep = 1) {
  if (top_k <= 0) return scores;
  const auto k = std::min(std::max(top_k, min_tokens_to_keep), scores.size(-1));
  const auto kth = std::get<0>(torch::topk(scores, k)).narrow(-1, k - 1, 1);
  return scores.masked_fill(scores < kth, -std::numeric_limits<float>::infinity());
}

/// HF's TopPLogitsWarper (nucleus filtering): with the tokens in ascending order of score, those whose
/// cumulative probability stays at or below 1 - top_p become -inf; the min_tokens_to_keep likeliest
/// always remain. top_p 1 leaves the scores as they are.
[[nodiscard]] inline torch::Tensor apply_top_p(const torch::Tensor& scores, double top_p,
                                               std::int64_t min_tokens_to_keep = 1) {
  if (top_p >= 1.0) return scores;
  const auto [sorted, order] = torch::sort(scores, /*dim=*/-1, /*descending=*/false);
  auto remove = sorted.softmax(-1).cumsum(-1) <= (1.0 - top_p);
  remove.narrow(-1, remove.size(-1) - std::min(min_tokens_to_keep, remove.size(-1)),
                std::min(min_tokens_to_keep, remove.size(-1)))
      .fill_(false);
  return scores.masked_fill(remove.scatter(-1, order, remove), -std::numeric_limits<float>::infinity());
}

}  // namespace trainpp
