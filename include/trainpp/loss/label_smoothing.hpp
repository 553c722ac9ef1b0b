#pragma once
// Label smoothing as HF's Trainer applies it with --label_smoothing_factor (transformers' LabelSmoother).

#include <trainpp/detail/config.hpp>
#include <trainpp/detail/error.hpp>

#include <cstdint>

namespace trainpp {

/// HF's LabelSmoother: (1 - epsilon) times the negative log-likelihood of the labels plus epsilon times
/// the mean negative log-probability over all classes, both averaged over the labels that are not -100.
/// `logits` are [..., classes] and `labels` their leading shape. `shift_labels` scores position t
/// against label t + 1 (a causal LM's logits, [batch, time, vocabulary]). `label_tokens`, when defined,
/// is what the sums are divided by (a whole accumulation window's label tokens, HF's
/// num_items_in_batch); otherwise these labels' own count. No host sync: the count stays a tensor.
[[nodiscard]] inline torch::Tensor label_smoothed_loss(const torch::Tensor& given_logits, const torch::Tensor& given_labels,
                                                       double epsilon, bool shift_labels = false,
                                                       const torch::Tensor& label_tokens = {}) {
  torch::Tensor logits = given_logits, labels = given_labels;
  if (shift_labels) {
    logits = logits.slice(-2, 0, -1);
    labels = labels.slice(-1, 1);
  }
  const auto negative_log_probs = -torch::log_softmax(logits, -1);
  if (labels.dim() == negative_log_probs.dim() - 1) labels = labels.unsqueeze(-1);
  if (labels.dim() != negative_log_probs.dim() || labels.size(-1) != 1 ||
      labels.sizes().slice(0, labels.dim() - 1) != negative_log_probs.sizes().slice(0, negative_log_probs.dim() - 1))
    throw error("label smoothing: labels of shape [{}] do not match logits of shape [{}]",
                fmt::join(given_labels.sizes(), ", "), fmt::join(given_logits.sizes(), ", "));
  const auto padding = labels.eq(-100);
  // -100 cannot index the classes; the padding mask removes those positions anyway.
  auto nll = negative_log_probs.gather(-1, labels.clamp_min(0)).masked_fill(padding, 0.0);
  auto smoothed = negative_log_probs.sum(-1, /*keepdim=*/true, torch::kFloat32).masked_fill(padding, 0.0);
  const auto count = label_tokens.defined() ? label_tokens.to(nll.device())
                                            : padding.numel() - padding.to(torch::kLong).sum();
  const auto classes = static_cast<double>(negative_log_probs.size(-1));
  return (1.0 - epsilon) * (nll.sum() / count) + epsilon * (smoothed.sum() / (count * classes));
}

}  // namespace trainpp
