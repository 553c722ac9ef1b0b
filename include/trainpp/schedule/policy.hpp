#pragma once
// HFScheduler: the default scheduler slot — HF's create_scheduler from TrainingArguments.

#include <trainpp/schedule/schedulers.hpp>

namespace trainpp {

/// lr_scheduler_type with lr_scheduler_kwargs and warmup_steps, exactly as transformers.get_scheduler.
struct HFScheduler {
  [[nodiscard]] LRScheduler create(const TrainingArguments& args, std::int64_t num_training_steps) const {
    return make_scheduler(args, num_training_steps);
  }
};

}  // namespace trainpp
