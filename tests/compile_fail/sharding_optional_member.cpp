// expect-error: the sharding slot declares 'shard_optimizer' but it cannot be called as void shard_optimizer\(Optimizer&\)
// An optional sharding member with the wrong parameters is an error, never silently skipped.
#include "common.hpp"

struct Shard : trainpp::SingleDevice {
#ifdef TRAINPP_COMPILE_FAIL
  void shard_optimizer(torch::optim::Optimizer&) {}  // not the Trainer's optimizer type
#else
  template <class Optimizer> void shard_optimizer(Optimizer&) {}
#endif
};

void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::sharding = Shard{}); }
