// expect-error: the model declares 'num_items_in_batch' but it cannot be called as torch::Tensor num_items_in_batch\(const Batch& batch\) const
// A model whose label-token count takes the wrong parameters is told so, instead of training with the
// per-micro-batch mean as if it had no token-level loss.
#include "common.hpp"

namespace {
struct TokenNetImpl : torch::nn::Module {
  torch::nn::Linear fc{2, 3};
  TokenNetImpl() { register_module("fc", fc); }
  trainpp::TokenLossOutput forward(const trainpp::Batch& b) {
    const auto logits = fc(b.at("x"));
    const auto loss_sum = torch::nn::functional::cross_entropy(
        logits, b.at("labels"), torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    return {loss_sum / b.at("labels").size(0), logits, loss_sum, {}};
  }
#ifdef TRAINPP_COMPILE_FAIL
  torch::Tensor num_items_in_batch(const trainpp::Batch& b, int extra) const { return b.at("labels").ne(-100).sum() + extra; }
#else
  torch::Tensor num_items_in_batch(const trainpp::Batch& b) const { return b.at("labels").ne(-100).sum(); }
#endif
};
TORCH_MODULE(TokenNet);
}  // namespace

void build() { trainpp::Trainer t(TokenNet{}, trainpp::TrainingArguments{}, trainpp::train_dataset = cf::data()); }
