#pragma once
// StepPolicy: one training micro-step and one prediction step (HF's training_step / prediction_step).

#include <trainpp/detail/config.hpp>
#include <trainpp/detail/declares.hpp>

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
/// Required (a member declared under one of these names but not callable as shown is reported as
/// such, not as missing):
/// - `training_step(Trainer& trainer, const Batch& batch, std::int64_t window_size)` -> torch::Tensor:
///   called for each micro-batch of an accumulation window by train(); forward, loss / window_size
///   (not when trainer.loss_is_scaled_for_accumulation(): a token-level loss, concepts/token_loss.hpp,
///   comes normalised over the window), backward; returns the detached, *unscaled* loss;
/// - `prediction_step(Trainer& trainer, const Batch& batch, bool prediction_loss_only)` -> PredictionStep:
///   called for each batch by evaluate() and predict(), and during training's evaluations.
/// Optional: none. (The members the loop may call around a step belong to the sharding and precision
/// slots.)
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
  // A member of that name that does not fit is a wrong signature, not a missing member.
  static_assert(train || !declares_training_step<S>,
                "trainpp: the step slot declares 'training_step' but it cannot be called as "
                "torch::Tensor training_step(auto& trainer, const Batch& batch, std::int64_t window_size)");
  static_assert(predict || !declares_prediction_step<S>,
                "trainpp: the step slot declares 'prediction_step' but it cannot be called as "
                "PredictionStep prediction_step(auto& trainer, const Batch& batch, bool prediction_loss_only)");
  static_assert(train || declares_training_step<S>, "trainpp: the step slot needs a member "
                       "torch::Tensor training_step(auto& trainer, const Batch& batch, std::int64_t window_size)");
  static_assert(predict || declares_prediction_step<S>, "trainpp: the step slot needs a member "
                         "PredictionStep prediction_step(auto& trainer, const Batch& batch, bool prediction_loss_only)");
  return train && predict;
}
}  // namespace detail

}  // namespace trainpp
