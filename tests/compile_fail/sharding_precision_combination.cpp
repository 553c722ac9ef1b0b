// expect-error: this sharding policy does not accept this precision policy.*choose one it accepts
// A sharding policy that declares which precision policies it accepts rejects the others at compile
// time, in one place (detail::sharding_accepts_precision), saying what to do instead: here a policy
// of the program's own that cannot check FP16's loss-scaler overflow flag.
#include "common.hpp"

#include <type_traits>

struct NoLossScaling : trainpp::SingleDevice {
  template <class P>
  static constexpr bool accepts_precision = !std::is_same_v<P, trainpp::FP16>;
};

void build() {
#ifdef TRAINPP_COMPILE_FAIL
  trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::sharding = NoLossScaling{},
                     trainpp::precision = trainpp::FP16{});
#else
  trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::sharding = NoLossScaling{},
                     trainpp::precision = trainpp::BF16{});
#endif
}
