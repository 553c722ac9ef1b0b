#pragma once
// What every compile-fail case builds on: a model and a dataset that fit the default slots.

#include <trainpp/trainpp.hpp>

namespace cf {

struct NetImpl : torch::nn::Module {
  torch::nn::Linear fc{2, 3};
  NetImpl() { register_module("fc", fc); }
  trainpp::ModelOutput forward(const trainpp::Batch& b) {
    return {torch::nn::functional::cross_entropy(fc(b.at("x")), b.at("labels")), fc(b.at("x"))};
  }
};
TORCH_MODULE(Net);

inline trainpp::TensorDataset data() {
  return trainpp::TensorDataset{{"x", torch::zeros({4, 2})}, {"labels", torch::zeros({4}, torch::kLong)}};
}

}  // namespace cf
