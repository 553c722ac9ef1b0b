// expect-error: the callbacks slot holds a trainpp::CallbackList; build it with trainpp::callback_list
// A bare callback object in the callbacks slot is rejected with the way to build a list.
#include "common.hpp"

struct Count { int steps = 0; void on_step_end(const trainpp::TrainingArguments&, const trainpp::TrainerState&, trainpp::TrainerControl&) { ++steps; } };

#ifdef TRAINPP_COMPILE_FAIL
void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::callbacks = Count{}); }
#else
void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::callbacks = trainpp::callback_list(Count{})); }
#endif
