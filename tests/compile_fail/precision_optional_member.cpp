// expect-error: the precision slot declares 'load_state' but it cannot be called as void load_state\(const nlohmann::json&\)
// An optional precision member with the wrong parameters is an error: skipping it would lose the loss scale on resume.
#include "common.hpp"

struct Prec : trainpp::FP32 {
  double scale = 1.0;
  [[nodiscard]] nlohmann::json state() const { return {{"scale", scale}}; }
#ifdef TRAINPP_COMPILE_FAIL
  void load_state(const nlohmann::json& j, double fallback) { scale = j.value("scale", fallback); }
#else
  void load_state(const nlohmann::json& j) { scale = j.value("scale", 1.0); }
#endif
};

void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::precision = Prec{}); }
