#pragma once
// A tiny classifier, its data and quiet TrainingArguments: the Trainer's entry points are tested on it
// (trainer_test.cpp, evaluation_test.cpp).

#include <trainpp/trainpp.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>

namespace tiny_classifier {

struct NetImpl : torch::nn::Module {
  torch::nn::Linear fc{2, 3};
  std::string label_key;
  explicit NetImpl(std::string key = "labels") : label_key(std::move(key)) { register_module("fc", fc); }
  trainpp::ModelOutput forward(const trainpp::Batch& b) {
    trainpp::ModelOutput out{.logits = fc(b.at("x"))};
    if (b.contains(label_key)) out.loss = torch::nn::functional::cross_entropy(out.logits, b.at(label_key));
    return out;
  }
};
TORCH_MODULE(Net);

inline trainpp::TensorDataset data(int64_t n, const std::string& label_key = "labels") {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  return trainpp::TensorDataset{{"x", torch::randn({n, 2}, gen)}, {label_key, torch::randint(0, 3, {n}, gen)}};
}

/// Arguments that print nothing and save nothing, writing (if at all) under a folder named for the test file.
inline trainpp::TrainingArguments quiet_args(const std::string& folder = "trainpp_trainer_test") {
  trainpp::TrainingArguments a;
  a.output_dir = (std::filesystem::temp_directory_path() / folder).string();
  a.disable_tqdm = true;
  a.save_strategy = trainpp::SaveStrategy::no;
  a.per_device_eval_batch_size = 4;
  return a;
}

}  // namespace tiny_classifier
