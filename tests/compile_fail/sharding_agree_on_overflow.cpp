// expect-error: the sharding slot declares 'agree_on_overflow' but it cannot be called as void agree_on_overflow\(torch::Tensor& found_inf\)
// agree_on_overflow must update the flag in place: one taking the tensor by const reference could not make every
// process skip the same step, and is refused rather than skipped.
#include "common.hpp"

struct Shard : trainpp::SingleDevice {
#ifdef TRAINPP_COMPILE_FAIL
  void agree_on_overflow(const torch::Tensor&, int world_size) { (void)world_size; }
#else
  void agree_on_overflow(torch::Tensor& found_inf) { found_inf.zero_(); }
#endif
};

void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::sharding = Shard{}); }
