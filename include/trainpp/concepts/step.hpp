#pragma once
// StepPolicy: one training micro-step and one prediction step (HF's training_step / prediction_step).

#include <trainpp/detail/config.hpp>

#include <concepts>
#include <cstdint>

namespace trainpp {

/// What a prediction step returns (HF's (loss, logits, labels)); any member may be undefined.
struct PredictionStep {
  torch::Tensor loss;    ///< 0-dim mean loss of the batch, when labels were given
  torch::Tensor logits;  ///< model predictions (undefined when only the loss was asked for)
  torch::Tensor labels;
};

/// The step slot. Replace it to change what one step does while keeping the loop — the C++ form of
/// overriding Trainer.training_step / prediction_step. Derive from trainpp::DefaultStep and hide the
/// member you change; the Trainer calls it statically.
///
/// Required:
/// - `training_step(Trainer& trainer, const Batch& batch, std::int64_t window_size)` -> torch::Tensor:
///   forward, loss / window_size, backward; returns the detached, *unscaled* loss;
/// - `prediction_step(Trainer& trainer, const Batch& batch, bool prediction_loss_only)` -> PredictionStep.
/// Models: trainpp::DefaultStep.
template <class S, class Trainer, class B>
concept StepPolicy = requires(S& s, Trainer& t, const B& b, std::int64_t window, bool loss_only) {
  { s.training_step(t, b, window) } -> std::convertible_to<torch::Tensor>;
  { s.prediction_step(t, b, loss_only) } -> std::convertible_to<PredictionStep>;
};

namespace detail {
template <class S, class Trainer, class B>
constexpr bool check_step() {
  constexpr bool train = requires(S& s, Trainer& t, const B& b, std::int64_t w) {
    { s.training_step(t, b, w) } -> std::convertible_to<torch::Tensor>;
  };
  constexpr bool predict = requires(S& s, Trainer& t, const B& b, bool lo) {
    { s.prediction_step(t, b, lo) } -> std::convertible_to<PredictionStep>;
  };
  static_assert(train, "trainpp: the step slot needs a member "
                       "torch::Tensor training_step(auto& trainer, const Batch& batch, std::int64_t window_size)");
  static_assert(predict, "trainpp: the step slot needs a member "
                         "PredictionStep prediction_step(auto& trainer, const Batch& batch, bool prediction_loss_only)");
  return train && predict;
}
}  // namespace detail

}  // namespace trainpp
