#pragma once
// SchedulerPolicy: the learning rate as a function of the optimizer step (HF's create_scheduler).

#include <trainpp/args.hpp>

#include <concepts>
#include <cstdint>

namespace trainpp {

/// A learning-rate schedule the loop can drive.
///
/// Required: `apply(groups, step)` sets each group's lr for optimizer step `step`;
/// `steps_on_metric()` -> bool (true: stepped after evaluation with the metric, like
/// ReduceLROnPlateau); `step_on_metric(double metric, groups)`.
/// Models: trainpp::LRScheduler.
template <class S, class Groups>
concept SchedulerLike = requires(S& s, Groups& g, std::int64_t step, double metric) {
  s.apply(g, step);
  { s.steps_on_metric() } -> std::convertible_to<bool>;
  s.step_on_metric(metric, g);
};

/// The scheduler slot.
///
/// Required: `create(const TrainingArguments& args, std::int64_t num_training_steps) const`
/// returning a SchedulerLike.
/// Models: trainpp::HFScheduler (the default: lr_scheduler_type, lr_scheduler_kwargs, warmup_steps).
template <class P, class Groups>
concept SchedulerPolicy = requires(const P& p, const TrainingArguments& a, std::int64_t n) {
  { p.create(a, n) } -> SchedulerLike<Groups>;
};

namespace detail {
template <class P, class Groups>
constexpr bool check_scheduler() {
  constexpr bool create = requires(const P& p, const TrainingArguments& a, std::int64_t n) { p.create(a, n); };
  static_assert(create, "trainpp: the scheduler slot needs a member "
                        "create(const TrainingArguments& args, std::int64_t num_training_steps) const");
  if constexpr (create) {
    static_assert(SchedulerPolicy<P, Groups>,
                  "trainpp: the scheduler slot's create() must return a schedule with apply(groups, step), "
                  "steps_on_metric() and step_on_metric(metric, groups)");
    return SchedulerPolicy<P, Groups>;
  }
  return false;
}
}  // namespace detail

}  // namespace trainpp
