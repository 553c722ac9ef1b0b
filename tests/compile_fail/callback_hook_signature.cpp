// expect-error: callback hook 'on_step_end' has the wrong signature; expected void on_step_end\(const TrainingArguments&, const TrainerState&, TrainerControl&
// A member named like a hook but with the wrong parameters is an error, never silently skipped.
#include "common.hpp"

struct Count {
  int steps = 0;
#ifdef TRAINPP_COMPILE_FAIL
  void on_step_end(int global_step) { steps = global_step; }
#else
  void on_step_end(const trainpp::TrainingArguments&, const trainpp::TrainerState& s, trainpp::TrainerControl&) { steps = static_cast<int>(s.global_step); }
#endif
};

void build() {
  trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::train_dataset = cf::data(),
                     trainpp::callbacks = trainpp::callback_list(Count{}));
  t.train();
}
