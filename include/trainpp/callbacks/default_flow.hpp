#pragma once
// DefaultFlow: when to log, evaluate, save and stop — transformers 5.x's DefaultFlowCallback.

#include <trainpp/detail/config.hpp>
#include <trainpp/state.hpp>

namespace trainpp {

/// Sets the control flags from the logging / eval / save strategies. The Trainer always puts it
/// first in its callback list, as HF does, so user callbacks see (and may override) its decisions.
struct DefaultFlow {
  void on_step_end(const TrainingArguments& args, const TrainerState& state, TrainerControl& control) const;

  void on_epoch_end(const TrainingArguments& args, const TrainerState& state, TrainerControl& control) const;
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE void DefaultFlow::on_step_end(const TrainingArguments& args, const TrainerState& state, TrainerControl& control) const {
  if (state.global_step == 1 && args.logging_first_step) control.should_log = true;
  if (args.logging_strategy == IntervalStrategy::steps && state.global_step % state.logging_steps == 0)
    control.should_log = true;
  const bool eval_steps = args.eval_strategy == IntervalStrategy::steps;
  const bool past_delay = args.eval_delay <= static_cast<double>(state.global_step);
  if (eval_steps && state.global_step % state.eval_steps == 0 && past_delay) control.should_evaluate = true;
  if (args.save_strategy == SaveStrategy::steps && state.save_steps > 0 && state.global_step % state.save_steps == 0)
    control.should_save = true;
  if (state.global_step >= state.max_steps) {
    control.should_training_stop = true;
    // The last step is evaluated even off the eval grid (once: not if the grid already hit it).
    if (eval_steps && state.global_step % state.eval_steps != 0 && past_delay) control.should_evaluate = true;
    if (args.save_strategy == SaveStrategy::steps) control.should_save = true;
  }
}

TRAINPP_INLINE void DefaultFlow::on_epoch_end(const TrainingArguments& args, const TrainerState& state, TrainerControl& control) const {
  if (args.logging_strategy == IntervalStrategy::epoch) control.should_log = true;
  if (args.eval_strategy == IntervalStrategy::epoch && args.eval_delay <= state.epoch.value_or(0))
    control.should_evaluate = true;
  if (args.save_strategy == SaveStrategy::epoch) control.should_save = true;
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
