// expect-error: 'los' is not a member of 'trainpp'
// A misspelt slot name does not exist: the compiler names it.
#include "common.hpp"

#ifdef TRAINPP_COMPILE_FAIL
void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::los = trainpp::ModelLoss{}); }
#else
void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::loss = trainpp::ModelLoss{}); }
#endif
