// expect-error: the precision slot declares 'share_found_inf' but it cannot be called as template <class Agree> void share_found_inf
// A precision policy whose share_found_inf takes no agreement callable would let processes disagree on skipping an
// overflowing step, so the Trainer refuses it instead of stepping without agreement.
#include "common.hpp"

struct Prec : trainpp::FP32 {
#ifdef TRAINPP_COMPILE_FAIL
  void share_found_inf() {}
#else
  template <class Agree> void share_found_inf(Agree&& agree) {
    torch::Tensor found_inf = torch::zeros({1});
    agree(found_inf);
  }
#endif
};

void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::precision = Prec{}); }
