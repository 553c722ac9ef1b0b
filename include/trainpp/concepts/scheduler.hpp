#pragma once
// SchedulerPolicy: the learning rate as a function of the optimizer step (HF's create_scheduler).

#include <trainpp/args.hpp>
#include <trainpp/detail/declares.hpp>

#include <nlohmann/json.hpp>

#include <concepts>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace trainpp {

/// A learning-rate schedule the loop can drive.
///
/// Required: `apply(groups, step)` sets each group's lr for optimizer step `step`;
/// `steps_on_metric()` -> bool (true: stepped after evaluation with the metric, like
/// ReduceLROnPlateau); `step_on_metric(double metric, groups)`.
/// Optional (a member declared under one of these names must be callable as shown, or the Trainer
/// does not compile):
/// - `nlohmann::json state() const`: saved in each checkpoint as scheduler.json; default: nothing;
/// - `void load_state(const nlohmann::json&)`: called on resume with scheduler.json; default: the
///   schedule is a function of the step alone.
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
/// The optional members of the schedule S that the scheduler slot creates: each one S declares must
/// be callable as the loop calls it.
template <class S>
constexpr bool check_scheduler_optional() {
  constexpr bool state = !declares_state<S> ||
      requires(const S& s) { { s.state() } -> std::convertible_to<nlohmann::json>; };
  constexpr bool load_state = !declares_load_state<S> || requires(S& s, const nlohmann::json& j) { s.load_state(j); };
  static_assert(state, "trainpp: the scheduler slot's schedule declares 'state' but it cannot be called as "
                       "nlohmann::json state() const");
  static_assert(load_state, "trainpp: the scheduler slot's schedule declares 'load_state' but it cannot be called as "
                            "void load_state(const nlohmann::json&)");
  return state && load_state;
}

template <class P, class Groups>
constexpr bool check_scheduler() {
  constexpr bool create = requires(const P& p, const TrainingArguments& a, std::int64_t n) { p.create(a, n); };
  static_assert(create, "trainpp: the scheduler slot needs a member "
                        "create(const TrainingArguments& args, std::int64_t num_training_steps) const");
  if constexpr (create) {
    static_assert(SchedulerPolicy<P, Groups>,
                  "trainpp: the scheduler slot's create() must return a schedule with apply(groups, step), "
                  "steps_on_metric() and step_on_metric(metric, groups)");
    if constexpr (!SchedulerPolicy<P, Groups>) return false;
    else return check_scheduler_optional<std::remove_cvref_t<decltype(std::declval<const P&>().create(
        std::declval<const TrainingArguments&>(), std::declval<std::int64_t>()))>>();
  }
  return false;
}
}  // namespace detail

}  // namespace trainpp
