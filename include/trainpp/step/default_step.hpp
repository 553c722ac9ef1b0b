#pragma once
// DefaultStep: HF's training_step and prediction_step.

#include <trainpp/concepts/step.hpp>

#include <cstdint>

namespace trainpp {

/// One micro-batch of training, and one batch of prediction, as HF's Trainer does them. To change
/// one of them, derive from DefaultStep, declare the member again, and put your type in the step
/// slot (`trainpp::step = MyStep{}`): the Trainer calls the most derived one, statically.
struct DefaultStep {
  /// Forward under the precision policy's context, the loss divided by the number of micro-batches
  /// in this accumulation window (smaller for the last window of an epoch, as in HF) unless the
  /// Trainer says it is normalised over the window already (a token-level loss), backward.
  /// Returns the detached, divided loss: the loop sums these into the logged training loss.
  /// Nothing here talks to the sharding policy: the loop gathers before this call and reduces after it.
  template <class Trainer, class B>
  torch::Tensor training_step(Trainer& trainer, const B& batch, std::int64_t window_size) {
    torch::Tensor loss;
    {
      [[maybe_unused]] auto autocast = trainer.precision().forward_context(trainer.device());
      loss = trainer.compute_loss(batch);
    }
    // A token-level loss comes normalised over the whole window already (HF's loss_is_scaled_for_ga).
    bool scaled_for_window = false;
    if constexpr (requires { { trainer.loss_is_scaled_for_accumulation() } -> std::convertible_to<bool>; })
      scaled_for_window = trainer.loss_is_scaled_for_accumulation();
    if (window_size > 1 && !scaled_for_window) loss = loss / static_cast<double>(window_size);
    trainer.precision().backward(loss);
    return loss.detach();
  }

  /// Forward without gradients; the loss when the batch carries every label in label_names; the
  /// logits unless only the loss is wanted; the labels.
  template <class Trainer, class B>
  PredictionStep prediction_step(Trainer& trainer, const B& batch, bool prediction_loss_only) {
    torch::NoGradGuard no_grad;
    [[maybe_unused]] auto autocast = trainer.precision().eval_context(trainer.device());
    PredictionStep out;
    const bool has_labels = trainer.has_labels(batch);
    auto outputs = trainer.forward(batch);
    if (has_labels) {
      out.loss = trainer.compute_loss(outputs, batch).detach();
      out.labels = trainer.labels_of(batch);
    }
    if (!prediction_loss_only) out.logits = trainer.logits_of(outputs, has_labels);
    return out;
  }
};

}  // namespace trainpp
