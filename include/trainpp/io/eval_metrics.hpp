#pragma once
// Ready-made compute_metrics functions.

#include <trainpp/detail/config.hpp>
#include <trainpp/state.hpp>

namespace trainpp {

/// Classification accuracy: argmax of the last dimension of the predictions against the label ids;
/// labels equal to -100 (HF's ignore index) are left out. Returns {"accuracy": value}.
[[nodiscard]] Metrics accuracy(const EvalPrediction& p);

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE Metrics accuracy(const EvalPrediction& p) {
  if (!p.predictions.defined() || !p.label_ids.defined())
    throw error("accuracy needs predictions and label ids (is label_names right?)");
  const auto predicted = p.predictions.dim() > p.label_ids.dim() ? p.predictions.argmax(-1) : p.predictions;
  if (predicted.sizes() != p.label_ids.sizes())
    throw error("accuracy: predictions of shape {} do not match labels of shape {}",
                fmt::join(predicted.sizes(), "x"), fmt::join(p.label_ids.sizes(), "x"));
  const auto valid = p.label_ids.ne(-100);
  const auto count = valid.sum().item<double>();
  const auto correct = predicted.eq(p.label_ids).logical_and(valid).sum().item<double>();
  return {{"accuracy", count > 0 ? correct / count : 0.0}};
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
