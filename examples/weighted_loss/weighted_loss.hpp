#pragma once
// The seed's CustomTrainer, as a LossPolicy: cross entropy with class weights [1, 2, 3].

#include <trainpp/trainpp.hpp>

/// Replaces HF's Trainer.compute_loss. It receives what the model's forward returned and the batch,
/// so evaluation gets its loss from the same single forward as the logits. (A policy with
/// `operator()(auto& model, const auto& batch)` instead drives the model itself, like an HF
/// compute_loss override that calls model(**inputs).)
struct WeightedLoss {
  torch::Tensor weight = torch::tensor({1.0f, 2.0f, 3.0f});

  torch::Tensor operator()(const trainpp::ModelOutput& outputs, const trainpp::Batch& batch) const {
    return torch::nn::functional::cross_entropy(
        outputs.logits.view({-1, weight.size(0)}), batch.at("labels").view(-1),
        torch::nn::functional::CrossEntropyFuncOptions().weight(weight.to(outputs.logits.device())));
  }
};

/// A three-class classifier over 2-D points.
struct ClassifierImpl : torch::nn::Module {
  torch::nn::Sequential layers{torch::nn::Linear(2, 32), torch::nn::ReLU(), torch::nn::Linear(32, 3)};
  ClassifierImpl() { register_module("layers", layers); }
  trainpp::ModelOutput forward(const trainpp::Batch& batch) {
    trainpp::ModelOutput out{.logits = layers->forward(batch.at("features"))};
    if (batch.contains("labels")) out.loss = torch::nn::functional::cross_entropy(out.logits, batch.at("labels"));
    return out;
  }
};
TORCH_MODULE(Classifier);

/// Three overlapping Gaussian blobs with 6:3:1 class frequencies: the rare classes are where class
/// weights matter. Deterministic for a seed.
inline trainpp::TensorDataset make_blobs(std::int64_t n, std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto u = torch::rand({n}, gen);
  const auto labels = (u >= 0.6).to(torch::kLong) + (u >= 0.9).to(torch::kLong);
  const auto centers = torch::tensor({{0.0f, 0.0f}, {1.5f, 0.5f}, {0.5f, 1.5f}});
  const auto features = centers.index_select(0, labels) + torch::randn({n, 2}, gen) * 0.8;
  return trainpp::TensorDataset{{"features", features}, {"labels", labels}};
}
