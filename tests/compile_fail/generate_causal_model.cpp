// expect-error: trainpp::generate: a decoder-only model needs a member torch::Tensor logits\(const torch::Tensor& input_ids
// A decoder-only model without a cache-aware logits member cannot be generated from; the message names it.
#include "common.hpp"

struct PlainDecoderImpl : torch::nn::Module {
#ifndef TRAINPP_COMPILE_FAIL
  torch::Tensor logits(const torch::Tensor& ids, const torch::Tensor&, const torch::Tensor&, trainpp::KVCache*) {
    return torch::zeros({ids.size(0), ids.size(1), 4});
  }
#endif
};
TORCH_MODULE(PlainDecoder);

void build() {
  PlainDecoder model;
  trainpp::GenerationConfig config;
  config.max_new_tokens = 2;
  (void)trainpp::generate(model, torch::zeros({1, 3}, torch::kLong), torch::ones({1, 3}, torch::kLong), config);
}
