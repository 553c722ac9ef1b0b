// expect-error: the model's forward must accept the batch the data_loader slot produces
// A model whose forward cannot take the batch is rejected before any loop code is compiled.
#include "common.hpp"

struct TensorNetImpl : torch::nn::Module {
  torch::nn::Linear fc{2, 3};
  TensorNetImpl() { register_module("fc", fc); }
#ifdef TRAINPP_COMPILE_FAIL
  torch::Tensor forward(const torch::Tensor& x) { return fc(x); }
#else
  torch::Tensor forward(const trainpp::Batch& b) { return fc(b.at("x")).sum(); }
#endif
};
TORCH_MODULE(TensorNet);

void build() { trainpp::Trainer t(TensorNet{}, trainpp::TrainingArguments{}, trainpp::train_dataset = cf::data()); }
