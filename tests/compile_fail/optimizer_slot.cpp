// expect-error: the optimizer slot needs a member create\(torch::nn::Module& model, const TrainingArguments& args\) const
// An optimizer policy without create() is rejected, naming the slot and the member it lacks.
#include "common.hpp"

#ifdef TRAINPP_COMPILE_FAIL
struct Opt { trainpp::Optimizer make(torch::nn::Module& m, const trainpp::TrainingArguments& a) const { return trainpp::make_optimizer(m, a); } };
#else
struct Opt { trainpp::Optimizer create(torch::nn::Module& m, const trainpp::TrainingArguments& a) const { return trainpp::make_optimizer(m, a); } };
#endif

void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::optimizer = Opt{}, trainpp::train_dataset = cf::data()); }
