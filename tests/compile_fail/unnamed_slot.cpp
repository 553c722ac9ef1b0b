// expect-error: every argument after the TrainingArguments must be a named slot, such as trainpp::loss = MyLoss\{\}
// A policy passed without its slot name is rejected, listing the slots.
#include "common.hpp"

#ifdef TRAINPP_COMPILE_FAIL
void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::ModelLoss{}); }
#else
void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::loss = trainpp::ModelLoss{}); }
#endif
