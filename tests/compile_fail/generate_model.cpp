// expect-error: trainpp::generate: the model needs a member torch::Tensor decode_step\(const torch::Tensor& decoder_input_ids
// A model without incremental decoding cannot be generated from; the message names the member.
#include "common.hpp"

struct EncoderOnlyImpl : torch::nn::Module {
  torch::Tensor encode(const torch::Tensor& ids, const torch::Tensor&) { return ids.to(torch::kFloat).unsqueeze(-1); }
#ifndef TRAINPP_COMPILE_FAIL
  torch::Tensor decode_step(const torch::Tensor& ids, const torch::Tensor&, const torch::Tensor&, trainpp::KVCache&) {
    return torch::zeros({ids.size(0), ids.size(1), 4});
  }
#endif
};
TORCH_MODULE(EncoderOnly);

void build() {
  EncoderOnly model;
  trainpp::GenerationConfig config;
  config.decoder_start_token_id = 0;
  (void)trainpp::generate(model, torch::zeros({1, 3}, torch::kLong), torch::ones({1, 3}, torch::kLong), config);
}
