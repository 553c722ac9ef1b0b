// expect-error: the loss slot needs a member torch::Tensor operator\(\)\(const Output& outputs, const Batch& batch\) const
// A loss policy without a call operator is rejected, naming the slot and the member it lacks.
#include "common.hpp"

#ifdef TRAINPP_COMPILE_FAIL
struct Loss { double weight = 2; };  // no operator()
#else
struct Loss {
  torch::Tensor operator()(const trainpp::ModelOutput& out, const trainpp::Batch&) const { return out.loss * 2; }
};
#endif

void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::train_dataset = cf::data(), trainpp::loss = Loss{}); }
