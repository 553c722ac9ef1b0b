// expect-error: the optimizer slot's create\(\) must return an optimizer with step\(\), zero_grad\(\), parameters\(\) and param_groups\(\)
// create() must return something the loop can drive.
#include "common.hpp"

#ifdef TRAINPP_COMPILE_FAIL
struct NotAnOptimizer { void step() {} };
struct Opt { NotAnOptimizer create(torch::nn::Module&, const trainpp::TrainingArguments&) const { return {}; } };
#else
struct Opt { trainpp::AdamW create(torch::nn::Module& m, const trainpp::TrainingArguments& a) const {
  return trainpp::AdamW(trainpp::decay_param_groups(m, a.learning_rate, a.weight_decay), {}); } };
#endif

void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::optimizer = Opt{}); }
