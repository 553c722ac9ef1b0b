// expect-error: the sharding slot needs a member torch::Tensor clip_grad_norm\(const std::vector<torch::Tensor>&, double max_norm\)
// A sharding policy without clip_grad_norm is rejected, naming the slot and the member.
#include "common.hpp"

struct Shard {
  void prepare(torch::nn::Module& m, torch::Device d) const { m.to(d); }
  void before_forward(torch::nn::Module&) const {}
  void after_backward(torch::nn::Module&, bool) const {}
  void after_step(torch::nn::Module&) const {}
#ifndef TRAINPP_COMPILE_FAIL
  torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& p, double n) const { return trainpp::clip_grad_norm_(p, n); }
#endif
  int rank() const { return 0; }
  int world_size() const { return 1; }
};

void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::sharding = Shard{}); }
