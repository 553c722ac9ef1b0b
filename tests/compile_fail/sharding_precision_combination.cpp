// expect-error: this sharding policy does not accept this precision policy.*choose one it accepts
// A sharding policy that declares which precision policies it accepts rejects the others at compile
// time, in one place (detail::sharding_accepts_precision), saying what to do instead: here FullShard,
// whose sharded gradients FP16's loss scaler cannot check for overflow.
#include "common.hpp"

void build() {
#ifdef TRAINPP_COMPILE_FAIL
  trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::sharding = trainpp::FullShard{},
                     trainpp::precision = trainpp::FP16{});
#else
  trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::sharding = trainpp::FullShard{},
                     trainpp::precision = trainpp::BF16{});
#endif
}
