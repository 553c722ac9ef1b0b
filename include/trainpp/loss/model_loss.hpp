#pragma once
// ModelLoss: the default loss slot — the model computes its own loss (HF's default compute_loss).

#include <trainpp/loss/model_output.hpp>

namespace trainpp {

/// The loss the model returned with the labels: its first output (see loss_of).
struct ModelLoss {
  template <class Output, class B>
  [[nodiscard]] torch::Tensor operator()(const Output& outputs, const B&) const {
    return loss_of(outputs);
  }
};

}  // namespace trainpp
