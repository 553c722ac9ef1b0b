// expect-error: the step slot needs a member PredictionStep prediction_step\(auto& trainer, const Batch& batch, bool prediction_loss_only\)
// A step policy must provide both steps; one that only trains is rejected, naming the member.
#include "common.hpp"

struct Step {
  template <class T, class B> torch::Tensor training_step(T& t, const B& b, std::int64_t w) { return trainpp::DefaultStep{}.training_step(t, b, w); }
#ifndef TRAINPP_COMPILE_FAIL
  template <class T, class B> trainpp::PredictionStep prediction_step(T& t, const B& b, bool lo) { return trainpp::DefaultStep{}.prediction_step(t, b, lo); }
#endif
};

void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::step = Step{}, trainpp::train_dataset = cf::data()); }
