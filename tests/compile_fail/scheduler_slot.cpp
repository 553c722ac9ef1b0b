// expect-error: the scheduler slot needs a member create\(const TrainingArguments& args, std::int64_t num_training_steps\) const
// A scheduler policy without create() is rejected, naming the slot and the member it lacks.
#include "common.hpp"

#ifdef TRAINPP_COMPILE_FAIL
struct Sched { double lr(std::int64_t) const { return 1; } };
#else
struct Sched { trainpp::LRScheduler create(const trainpp::TrainingArguments& a, std::int64_t n) const { return trainpp::make_scheduler(a, n); } };
#endif

void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::scheduler = Sched{}); }
