#pragma once
// The token-level losses of language models (transformers' ForCausalLMLoss and ForMaskedLMLoss) kept
// unreduced: summed over the scored tokens, with the count of those tokens, so that a Trainer can
// normalise by the label tokens of a whole accumulation window (concepts/token_loss.hpp).

#include <trainpp/data/batch.hpp>
#include <trainpp/detail/config.hpp>
#include <trainpp/logging.hpp>

#include <string_view>

namespace trainpp {

/// The summed token loss of a language model and the number of tokens it sums over (device scalars:
/// float32 and int64). loss_sum / num_tokens is HF's mean; a Trainer that normalises by the tokens of
/// a whole accumulation window (transformers' num_items_in_batch) divides loss_sum by that.
struct CausalLMTokenLoss {
  torch::Tensor loss_sum;
  torch::Tensor num_tokens;
};

/// What a language model's forward returns. The Trainer reads `loss` (first when labels are given)
/// and `logits`, and for its token-level normalisation `loss_sum`.
struct TokenLossOutput {
  torch::Tensor loss;        ///< mean over the scored tokens (HF's); undefined without labels
  torch::Tensor logits;      ///< [B, T, vocab_size]
  torch::Tensor loss_sum;    ///< summed over the scored tokens, float32; undefined without labels
  torch::Tensor num_tokens;  ///< how many tokens were scored, int64; undefined without labels
};
using CausalLMOutput = TokenLossOutput;
using MaskedLMOutput = TokenLossOutput;

/// HF's ForCausalLMLoss without its reduction: position t's logits [B, T, V] score labels[:, t + 1],
/// -100 is skipped, in float32 whatever the logits' dtype. The labels move left rather than the
/// logits right, so the largest tensor of the step is not sliced and copied.
[[nodiscard]] inline CausalLMTokenLoss causal_lm_token_loss(const torch::Tensor& logits, const torch::Tensor& labels) {
  if (labels.dim() != 2 || labels.sizes() != logits.sizes().slice(0, 2))
    throw error("causal LM: labels have shape [{}] but the logits are [{}]", fmt::join(labels.sizes(), ", "),
                fmt::join(logits.sizes(), ", "));
  const auto next_labels = torch::constant_pad_nd(labels.slice(1, 1), {0, 1}, -100).reshape({-1});
  const auto loss_sum = torch::nn::functional::cross_entropy(
      logits.to(torch::kFloat32).reshape({-1, logits.size(-1)}), next_labels,
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100).reduction(torch::kSum));
  return {loss_sum, next_labels.ne(-100).sum()};
}

/// HF's ForMaskedLMLoss without its reduction: every position scored against its own label, -100
/// skipped, in float32.
[[nodiscard]] inline CausalLMTokenLoss masked_lm_token_loss(const torch::Tensor& logits, const torch::Tensor& labels) {
  const auto flat = labels.reshape({-1});
  const auto loss_sum = torch::nn::functional::cross_entropy(
      logits.to(torch::kFloat32).reshape({-1, logits.size(-1)}), flat,
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100).reduction(torch::kSum));
  return {loss_sum, flat.ne(-100).sum()};
}

/// The label tokens a causal LM's loss sums over in `batch` (HF counts labels[..., 1:] != -100, the
/// first position never being a target); int64 on the labels' device. `model` names the model in errors.
[[nodiscard]] inline torch::Tensor causal_lm_num_items(const Batch& batch, std::string_view model) {
  if (!batch.contains("labels")) throw error("{}: the batch has no \"labels\" to count", model);
  const auto& labels = batch.at("labels");
  if (labels.dim() < 1) throw error("{}: labels must be [batch, length], got a scalar", model);
  return labels.slice(-1, 1).ne(-100).sum();
}

/// The label tokens a masked LM's loss sums over in `batch`: every label that is not -100.
[[nodiscard]] inline torch::Tensor masked_lm_num_items(const Batch& batch, std::string_view model) {
  if (!batch.contains("labels")) throw error("{}: the batch has no \"labels\" to count", model);
  return batch.at("labels").ne(-100).sum();
}

}  // namespace trainpp
