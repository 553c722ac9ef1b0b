// expect-error: the precision slot needs a member backward\(const torch::Tensor& loss\)
// A precision policy missing backward() is rejected, naming the slot and the member.
#include "common.hpp"

struct Prec : trainpp::FP32 {
#ifdef TRAINPP_COMPILE_FAIL
  void backward() const = delete;  // hides FP32::backward with one that takes no loss
#endif
};

void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::precision = Prec{}); }
