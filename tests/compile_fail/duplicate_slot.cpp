// expect-error: the same slot is named twice
// Naming one slot twice is rejected.
#include "common.hpp"

#ifdef TRAINPP_COMPILE_FAIL
void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::loss = trainpp::ModelLoss{}, trainpp::loss = trainpp::ModelLoss{}); }
#else
void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::loss = trainpp::ModelLoss{}); }
#endif
