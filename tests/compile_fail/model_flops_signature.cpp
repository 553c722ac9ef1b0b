// expect-error: the model declares 'floating_point_ops' but it cannot be called as double floating_point_ops\(const Batch& batch\) const
// A model whose flop count takes the wrong parameters is told so, instead of total_flos silently falling
// back to 0 (or to the estimate of trainpp's transformers architectures).
#include "common.hpp"

namespace {
struct FlopsNetImpl : cf::NetImpl {
#ifdef TRAINPP_COMPILE_FAIL
  double floating_point_ops(const trainpp::Batch& b, int per_token) const { return 6.0 * b.at("x").numel() * per_token; }
#else
  double floating_point_ops(const trainpp::Batch& b) const { return 6.0 * b.at("x").numel(); }
#endif
};
TORCH_MODULE(FlopsNet);
}  // namespace

void build() { trainpp::Trainer t(FlopsNet{}, trainpp::TrainingArguments{}, trainpp::train_dataset = cf::data()); }
