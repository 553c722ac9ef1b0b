// expect-error: this sharding policy does not accept this precision policy.*choose one it accepts
// A sharding policy that declares which precision policies it accepts rejects the others at compile
// time, in one place (detail::sharding_accepts_precision), saying what to do instead.
#include "common.hpp"

struct NoFP16 : trainpp::SingleDevice {
  template <class Precision>
  static constexpr bool accepts_precision = !std::is_same_v<Precision, trainpp::FP16>;
};

void build() {
#ifdef TRAINPP_COMPILE_FAIL
  trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::sharding = NoFP16{},
                     trainpp::precision = trainpp::FP16{});
#else
  trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::sharding = NoFP16{},
                     trainpp::precision = trainpp::BF16{});
#endif
}
