#pragma once
// HFOptimizer: the default optimizer slot — HF's create_optimizer from TrainingArguments.

#include <trainpp/optim/optimizer.hpp>

namespace trainpp {

/// `optim` (adamw_torch, adamw_torch_fused, sgd, adagrad, rmsprop, adafactor, lion_32bit) over two
/// parameter groups: weight_decay for weights, none for biases and normalisation parameters, as HF's
/// create_optimizer builds them.
struct HFOptimizer {
  [[nodiscard]] Optimizer create(torch::nn::Module& model, const TrainingArguments& args) const {
    return make_optimizer(model, args);
  }
};

}  // namespace trainpp
