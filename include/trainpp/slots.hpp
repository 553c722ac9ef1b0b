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
#include <tuple>
#include <type_traits>
#include <utility>

namespace trainpp {

/// Placeholders for the optional slots left empty.
struct no_dataset {};
struct no_metrics {};

/// The slot tags. Each names one thing a Trainer is composed of and, as `default_type`, what the
/// Trainer holds when the slot is left out: the one place a default is written.
namespace slot {
struct data_loader_t { using default_type = DefaultDataLoader; };   ///< DataLoaderPolicy
struct loss_t { using default_type = ModelLoss; };                  ///< LossPolicy
struct optimizer_t { using default_type = HFOptimizer; };           ///< OptimizerPolicy
struct scheduler_t { using default_type = HFScheduler; };           ///< SchedulerPolicy
/// PrecisionPolicy; the default follows --bf16 / --fp16 (fp32 without either).
struct precision_t { using default_type = MixedPrecision; };
/// ShardingPolicy; the default follows the launcher and --fsdp / --deepspeed.
struct sharding_t { using default_type = AutoSharding; };
struct callbacks_t { using default_type = CallbackList<>; };        ///< the user's callbacks, after the built-ins
struct step_t { using default_type = DefaultStep; };                ///< StepPolicy
struct train_dataset_t { using default_type = no_dataset; };        ///< a Dataset (HF's train_dataset)
struct eval_dataset_t { using default_type = no_dataset; };         ///< a Dataset (HF's eval_dataset)
struct compute_metrics_t { using default_type = no_metrics; };      ///< Metrics(const EvalPrediction&)

template <class... Tags> struct list {};
/// Every slot, in the order Policies holds them: the one list a new slot is added to.
using all = list<data_loader_t, loss_t, optimizer_t, scheduler_t, precision_t, sharding_t, callbacks_t, step_t,
                 train_dataset_t, eval_dataset_t, compute_metrics_t>;
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

namespace detail {

template <class Tag, class List> struct is_listed_slot : std::false_type {};
template <class Tag, class... Tags>
struct is_listed_slot<Tag, slot::list<Tags...>> : std::bool_constant<(std::is_same_v<Tag, Tags> || ...)> {};

/// Where Tag stands in a slot::list.
template <class Tag, class... Tags>
constexpr std::size_t slot_index(slot::list<Tags...>) {
  constexpr bool matches[] = {std::is_same_v<Tag, Tags>...};
  for (std::size_t i = 0; i < sizeof...(Tags); ++i)
    if (matches[i]) return i;
  return sizeof...(Tags);
}

/// Whether T is a named argument of a slot in slot::all, and which.
template <class T> struct slot_arg : std::false_type {};
template <class Tag, class V> struct slot_arg<boost::hana::pair<Tag, V>> {
  static constexpr bool value = is_listed_slot<Tag, slot::all>::value;
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
                "trainpp::loss = MyLoss{} (every slot is listed in trainpp::slot::all, trainpp/slots.hpp)");
  if constexpr (all_named) {
    constexpr bool unique =
        ((slot_count<typename slot_arg<std::remove_cvref_t<Args>>::tag, Args...> == 1) && ...);
    static_assert(unique, "trainpp::Trainer: the same slot is named twice");
    return unique;
  }
  return false;
}

}  // namespace detail

/// The resolved composition of a Trainer: one type per slot of slot::all, in its order.
/// `Policies::type<slot::loss_t>` is the loss policy's type.
template <class... Types>
struct Policies {
  template <class Tag>
    requires detail::is_listed_slot<Tag, slot::all>::value
  using type = std::tuple_element_t<detail::slot_index<Tag>(slot::all{}), std::tuple<Types...>>;
};

namespace detail {
template <class List, class... Args> struct resolve_slots;
template <class... Tags, class... Args>
struct resolve_slots<slot::list<Tags...>, Args...> {
  using type = Policies<slot_type_t<Tags, typename Tags::default_type, Args...>...>;
};
}  // namespace detail

/// The Policies that a list of named arguments selects: each slot's given type, or its default_type.
template <class... Args>
using resolve_slots_t = typename detail::resolve_slots<slot::all, Args...>::type;

}  // namespace trainpp
