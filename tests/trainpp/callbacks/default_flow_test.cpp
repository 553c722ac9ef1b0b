// DefaultFlow against HF's DefaultFlowCallback rules: which control flags each step's end and each
// epoch's end set under the logging, evaluation and save strategies.

#include <trainpp/callbacks/default_flow.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace default_flow_test {

using Strategy = trainpp::IntervalStrategy;

trainpp::TrainingArguments quiet_args() {
  trainpp::TrainingArguments args;
  args.logging_strategy = Strategy::no;
  args.eval_strategy = Strategy::no;
  args.save_strategy = trainpp::SaveStrategy::no;
  return args;
}

trainpp::TrainerState state_at(std::int64_t step, std::int64_t max_steps) {
  trainpp::TrainerState state;
  state.global_step = step;
  state.max_steps = max_steps;
  return state;
}

/// The steps of 1..max_steps at whose end `flag` of the control is set.
template <class Flag>
std::vector<std::int64_t> steps_setting(const trainpp::TrainingArguments& args, trainpp::TrainerState state, Flag flag) {
  std::vector<std::int64_t> steps;
  for (std::int64_t step = 1; step <= state.max_steps; ++step) {
    state.global_step = step;
    trainpp::TrainerControl control;
    trainpp::DefaultFlow{}.on_step_end(args, state, control);
    if (control.*flag) steps.push_back(step);
  }
  return steps;
}

using Steps = std::vector<std::int64_t>;

TEST_CASE("default flow: the steps strategy logs on the logging grid, the first step only when asked") {
  auto args = quiet_args();
  auto state = state_at(0, 10);
  state.logging_steps = 3;
  CHECK(steps_setting(args, state, &trainpp::TrainerControl::should_log).empty());
  args.logging_strategy = Strategy::steps;
  CHECK(steps_setting(args, state, &trainpp::TrainerControl::should_log) == Steps{3, 6, 9});
  args.logging_first_step = true;
  CHECK(steps_setting(args, state, &trainpp::TrainerControl::should_log) == Steps{1, 3, 6, 9});
  // logging_first_step needs no strategy of its own.
  args.logging_strategy = Strategy::no;
  CHECK(steps_setting(args, state, &trainpp::TrainerControl::should_log) == Steps{1});
}

TEST_CASE("default flow: evaluation follows the eval grid past eval_delay, and the last step off the grid") {
  auto args = quiet_args();
  args.eval_strategy = Strategy::steps;
  auto state = state_at(0, 10);
  state.eval_steps = 4;
  CHECK(steps_setting(args, state, &trainpp::TrainerControl::should_evaluate) == Steps{4, 8, 10});
  args.eval_delay = 5;
  CHECK(steps_setting(args, state, &trainpp::TrainerControl::should_evaluate) == Steps{8, 10});
  // A delay past the end: not even the last step.
  args.eval_delay = 11;
  CHECK(steps_setting(args, state, &trainpp::TrainerControl::should_evaluate).empty());
  // The last step on the grid is evaluated once, by the grid.
  args.eval_delay = 0;
  state.max_steps = 8;
  CHECK(steps_setting(args, state, &trainpp::TrainerControl::should_evaluate) == Steps{4, 8});
  // The epoch strategy never evaluates at a step's end.
  args.eval_strategy = Strategy::epoch;
  CHECK(steps_setting(args, state, &trainpp::TrainerControl::should_evaluate).empty());
}

TEST_CASE("default flow: the steps save strategy saves on its grid and at the last step") {
  auto args = quiet_args();
  auto state = state_at(0, 10);
  state.save_steps = 4;
  CHECK(steps_setting(args, state, &trainpp::TrainerControl::should_save).empty());
  args.save_strategy = trainpp::SaveStrategy::steps;
  CHECK(steps_setting(args, state, &trainpp::TrainerControl::should_save) == Steps{4, 8, 10});
  // save_steps 0: no grid, but the end of training is still saved.
  state.save_steps = 0;
  CHECK(steps_setting(args, state, &trainpp::TrainerControl::should_save) == Steps{10});
  args.save_strategy = trainpp::SaveStrategy::epoch;
  state.save_steps = 4;
  CHECK(steps_setting(args, state, &trainpp::TrainerControl::should_save).empty());
}

TEST_CASE("default flow: max_steps stops training, and a step's end sets nothing it does not own") {
  const auto args = quiet_args();
  CHECK(steps_setting(args, state_at(0, 7), &trainpp::TrainerControl::should_training_stop) == Steps{7});
  // Past max_steps (a resumed run with a smaller max_steps) stops too.
  trainpp::TrainerControl control;
  trainpp::DefaultFlow{}.on_step_end(args, state_at(9, 7), control);
  CHECK(control.should_training_stop);
  CHECK_FALSE(control.should_epoch_stop);
  // A flag a callback set earlier is left as it is.
  trainpp::TrainerControl set;
  set.should_log = true;
  trainpp::DefaultFlow{}.on_step_end(args, state_at(2, 7), set);
  CHECK(set.should_log);
}

TEST_CASE("default flow: an epoch's end logs, evaluates past eval_delay and saves under the epoch strategies") {
  auto args = quiet_args();
  auto state = state_at(5, 10);
  state.epoch = 1.0;
  auto at_epoch_end = [&] {
    trainpp::TrainerControl control;
    trainpp::DefaultFlow{}.on_epoch_end(args, state, control);
    return control;
  };
  auto control = at_epoch_end();
  CHECK_FALSE(control.should_log);
  CHECK_FALSE(control.should_evaluate);
  CHECK_FALSE(control.should_save);
  // Step strategies do nothing at an epoch's end.
  args.logging_strategy = Strategy::steps;
  args.eval_strategy = Strategy::steps;
  args.save_strategy = trainpp::SaveStrategy::steps;
  control = at_epoch_end();
  CHECK_FALSE(control.should_log);
  CHECK_FALSE(control.should_evaluate);
  CHECK_FALSE(control.should_save);
  args.logging_strategy = Strategy::epoch;
  args.eval_strategy = Strategy::epoch;
  args.save_strategy = trainpp::SaveStrategy::epoch;
  control = at_epoch_end();
  CHECK(control.should_log);
  CHECK(control.should_evaluate);
  CHECK(control.should_save);
  CHECK_FALSE(control.should_training_stop);
  // eval_delay counts epochs here.
  args.eval_delay = 2;
  CHECK_FALSE(at_epoch_end().should_evaluate);
  state.epoch = 2.0;
  CHECK(at_epoch_end().should_evaluate);
  // No epoch known yet counts as epoch 0.
  state.epoch = std::nullopt;
  CHECK_FALSE(at_epoch_end().should_evaluate);
  args.eval_delay = 0;
  CHECK(at_epoch_end().should_evaluate);
}

}  // namespace default_flow_test
