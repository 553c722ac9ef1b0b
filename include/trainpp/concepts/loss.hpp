#pragma once
// LossPolicy: the loss of one micro-batch (HF's compute_loss / compute_loss_func).

#include <trainpp/detail/config.hpp>

#include <concepts>

namespace trainpp {

/// A loss computed from the model's outputs (HF's compute_loss_func): the Trainer runs the forward
/// once and passes its result, so evaluation gets loss and logits from a single forward.
template <class L, class Output, class B>
concept LossFromOutputs = requires(const L& l, const Output& out, const B& batch) {
  { l(out, batch) } -> std::convertible_to<torch::Tensor>;
};

/// A loss that drives the model itself (HF's compute_loss override): free to call forward as it likes.
template <class L, class Model, class B>
concept LossFromModel = requires(const L& l, Model& model, const B& batch) {
  { l(model, batch) } -> std::convertible_to<torch::Tensor>;
};

/// The loss slot.
///
/// Required, one of: `torch::Tensor operator()(const Output& outputs, const Batch& batch) const`
/// (outputs = what model->forward(batch) returns), or `torch::Tensor operator()(Model& model,
/// const Batch& batch) const`. The result is the mean loss of the micro-batch; the Trainer divides
/// it by the number of micro-batches in the accumulation window. Called by the step slot
/// (trainer.compute_loss) for each micro-batch, and for each evaluation batch that has labels.
/// Optional: none.
/// Models: trainpp::ModelLoss (the default: the model's own loss, its first output), the weighted
/// cross entropy of examples/weighted_loss.
template <class L, class Model, class Output, class B>
concept LossPolicy = LossFromOutputs<L, Output, B> || LossFromModel<L, Model, B>;

namespace detail {
template <class L, class Model, class Output, class B>
constexpr bool check_loss() {
  constexpr bool ok = LossPolicy<L, Model, Output, B>;
  static_assert(ok, "trainpp: the loss slot needs a member "
                    "torch::Tensor operator()(const Output& outputs, const Batch& batch) const, or "
                    "torch::Tensor operator()(Model& model, const Batch& batch) const");
  return ok;
}
}  // namespace detail

}  // namespace trainpp
