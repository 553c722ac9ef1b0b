// expect-error: the step slot declares 'prediction_step' but it cannot be called as PredictionStep prediction_step\(auto& trainer, const Batch& batch, bool prediction_loss_only\)
// A step that hides prediction_step with the wrong parameters is told so, not that the member is missing.
#include "common.hpp"

struct Step : trainpp::DefaultStep {
#ifdef TRAINPP_COMPILE_FAIL
  template <class T, class B> trainpp::PredictionStep prediction_step(T& t, const B& b) {
    return trainpp::DefaultStep::prediction_step(t, b, false);
  }
#else
  template <class T, class B> trainpp::PredictionStep prediction_step(T& t, const B& b, bool loss_only) {
    return trainpp::DefaultStep::prediction_step(t, b, loss_only);
  }
#endif
};

void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::step = Step{}, trainpp::train_dataset = cf::data()); }
