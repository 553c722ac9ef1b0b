#pragma once
// Named policy slots: `trainpp::loss = MyLoss{}` and friends, their defaults, and their resolution
// into the types a Trainer is made of. Every check of a slot's *kind* happens here, once.

#include <trainpp/callbacks/callback_list.hpp>
#include <trainpp/data/data_loader.hpp>
#include <trainpp/loss/model_loss.hpp>
#include <trainpp/optim/policy.hpp>
#include <trainpp/precision/mixed.hpp>
#include <trainpp/schedule/policy.hpp>
#include <trainpp/sharding/auto_sharding.hpp>
#include <trainpp/state.hpp>
#include <trainpp/step/default_step.hpp>

#include <boost/hana/pair.hpp>

#include <optional>
#include <type_traits>
#include <utility>

namespace trainpp {

/// The slot tags. Each names one thing a Trainer is composed of.
namespace slot {
struct data_loader_t {};      ///< DataLoaderPolicy — default trainpp::DefaultDataLoader
struct loss_t {};             ///< LossPolicy — default trainpp::ModelLoss
struct optimizer_t {};        ///< OptimizerPolicy — default trainpp::HFOptimizer
struct scheduler_t {};        ///< SchedulerPolicy — default trainpp::HFScheduler
struct precision_t {};        ///< PrecisionPolicy — default trainpp::MixedPrecision (fp32 unless --bf16/--fp16)
struct sharding_t {};         ///< ShardingPolicy — default trainpp::AutoSharding (follows the launcher and --fsdp)
struct callbacks_t {};        ///< CallbackList — default: none besides the built-ins
struct step_t {};             ///< StepPolicy — default trainpp::DefaultStep
struct train_dataset_t {};    ///< a Dataset (HF's train_dataset)
struct eval_dataset_t {};     ///< a Dataset (HF's eval_dataset)
struct compute_metrics_t {};  ///< Metrics(const EvalPrediction&) (HF's compute_metrics)
}  // namespace slot

/// `name = value` makes a named argument: a hana::pair of the slot's tag and the value.
template <class Tag>
struct slot_name {
  template <class T>
  constexpr auto operator=(T&& value) const {
    return boost::hana::make_pair(Tag{}, std::decay_t<T>(std::forward<T>(value)));
  }
};

inline constexpr slot_name<slot::data_loader_t> data_loader{};
inline constexpr slot_name<slot::loss_t> loss{};
inline constexpr slot_name<slot::optimizer_t> optimizer{};
inline constexpr slot_name<slot::scheduler_t> scheduler{};
inline constexpr slot_name<slot::precision_t> precision{};
inline constexpr slot_name<slot::sharding_t> sharding{};
inline constexpr slot_name<slot::callbacks_t> callbacks{};
inline constexpr slot_name<slot::step_t> step{};
inline constexpr slot_name<slot::train_dataset_t> train_dataset{};
inline constexpr slot_name<slot::eval_dataset_t> eval_dataset{};
inline constexpr slot_name<slot::compute_metrics_t> compute_metrics{};

/// Placeholders for the optional slots left empty.
struct no_dataset {};
struct no_metrics {};

namespace detail {

template <class T> struct slot_arg : std::false_type {};
template <class Tag, class V> struct slot_arg<boost::hana::pair<Tag, V>> {
  static constexpr bool value =
      std::is_same_v<Tag, slot::data_loader_t> || std::is_same_v<Tag, slot::loss_t> ||
      std::is_same_v<Tag, slot::optimizer_t> || std::is_same_v<Tag, slot::scheduler_t> ||
      std::is_same_v<Tag, slot::precision_t> || std::is_same_v<Tag, slot::sharding_t> ||
      std::is_same_v<Tag, slot::callbacks_t> || std::is_same_v<Tag, slot::step_t> ||
      std::is_same_v<Tag, slot::train_dataset_t> || std::is_same_v<Tag, slot::eval_dataset_t> ||
      std::is_same_v<Tag, slot::compute_metrics_t>;
  using tag = Tag;
  using type = V;
};

template <class T, class Tag>
constexpr bool has_tag() {
  if constexpr (slot_arg<std::remove_cvref_t<T>>::value)
    return std::is_same_v<typename slot_arg<std::remove_cvref_t<T>>::tag, Tag>;
  else
    return false;
}
template <class Tag, class... Args>
inline constexpr std::size_t slot_count = (std::size_t{has_tag<Args, Tag>()} + ... + 0);

/// The value type given for Tag, or Default.
template <class Tag, class Default, class... Args> struct slot_type { using type = Default; };
template <class Tag, class Default, class First, class... Rest>
struct slot_type<Tag, Default, First, Rest...> {
  using type = std::conditional_t<has_tag<First, Tag>(),
                                  typename slot_arg<std::remove_cvref_t<First>>::type,
                                  typename slot_type<Tag, Default, Rest...>::type>;
};
template <class Tag, class Default, class... Args>
using slot_type_t = typename slot_type<Tag, Default, Args...>::type;

/// The value given for Tag (moved out of its pair), or a default-constructed Default.
template <class Tag, class Default, class... Args>
slot_type_t<Tag, Default, Args...> take_slot(Args&... args) {
  if constexpr (slot_count<Tag, Args...> == 0) {
    return Default{};
  } else {
    std::optional<slot_type_t<Tag, Default, Args...>> out;
    auto take = [&](auto& arg) {
      if constexpr (has_tag<decltype(arg), Tag>()) out.emplace(std::move(boost::hana::second(arg)));
    };
    (take(args), ...);
    return std::move(*out);
  }
}

/// Which precision policies each sharding policy accepts: the one place that decides it. A
/// sharding policy may restrict itself with `template <class P> static constexpr bool accepts_precision`.
template <class Sharding, class Precision>
constexpr bool sharding_accepts_precision() {
  if constexpr (requires { Sharding::template accepts_precision<Precision>; })
    return Sharding::template accepts_precision<Precision>;
  else
    return true;
}

template <class... Args>
constexpr bool check_slot_arguments() {
  constexpr bool all_named = (slot_arg<std::remove_cvref_t<Args>>::value && ...);
  static_assert(all_named,
                "trainpp::Trainer: every argument after the TrainingArguments must be a named slot, such as "
                "trainpp::loss = MyLoss{}. Slots: data_loader, loss, optimizer, scheduler, precision, "
                "sharding, callbacks, step, train_dataset, eval_dataset, compute_metrics");
  if constexpr (all_named) {
    constexpr bool unique =
        ((slot_count<typename slot_arg<std::remove_cvref_t<Args>>::tag, Args...> == 1) && ...);
    static_assert(unique, "trainpp::Trainer: the same slot is named twice");
    return unique;
  }
  return false;
}

}  // namespace detail

/// The resolved composition of a Trainer: one type per slot.
template <class DataLoaderP, class LossP, class OptimizerP, class SchedulerP, class PrecisionP,
          class ShardingP, class CallbacksT, class StepP, class TrainDataset, class EvalDataset, class MetricsFn>
struct Policies {
  using data_loader_type = DataLoaderP;
  using loss_type = LossP;
  using optimizer_policy_type = OptimizerP;
  using scheduler_policy_type = SchedulerP;
  using precision_type = PrecisionP;
  using sharding_type = ShardingP;
  using callbacks_type = CallbacksT;
  using step_type = StepP;
  using train_dataset_type = TrainDataset;
  using eval_dataset_type = EvalDataset;
  using compute_metrics_type = MetricsFn;
};

/// The Policies that a list of named arguments selects, defaults for the rest.
template <class... Args>
using resolve_slots_t = Policies<
    detail::slot_type_t<slot::data_loader_t, DefaultDataLoader, Args...>,
    detail::slot_type_t<slot::loss_t, ModelLoss, Args...>,
    detail::slot_type_t<slot::optimizer_t, HFOptimizer, Args...>,
    detail::slot_type_t<slot::scheduler_t, HFScheduler, Args...>,
    detail::slot_type_t<slot::precision_t, MixedPrecision, Args...>,
    detail::slot_type_t<slot::sharding_t, AutoSharding, Args...>,
    detail::slot_type_t<slot::callbacks_t, CallbackList<>, Args...>,
    detail::slot_type_t<slot::step_t, DefaultStep, Args...>,
    detail::slot_type_t<slot::train_dataset_t, no_dataset, Args...>,
    detail::slot_type_t<slot::eval_dataset_t, no_dataset, Args...>,
    detail::slot_type_t<slot::compute_metrics_t, no_metrics, Args...>>;

}  // namespace trainpp
