#pragma once
// CallbackList: a compile-time list of callback objects. Firing an event walks the list with
// hana::for_each; a callback without the hook costs nothing, not even a call.

#include <trainpp/callbacks/hooks.hpp>

#include <boost/hana/for_each.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/concat.hpp>
#include <boost/hana/at.hpp>
#include <boost/hana/length.hpp>

#include <type_traits>
#include <utility>

namespace trainpp {

/// Callbacks in the order they fire. Build one with `callback_list(a, b, ...)`.
///
/// Requires of each callback: a class type; each hook it declares (on_init_end, on_train_begin,
/// on_epoch_begin, on_step_begin, on_substep_end, on_pre_optimizer_step, on_optimizer_step,
/// on_step_end, on_log, on_evaluate, on_prediction_step, on_predict, on_save, on_epoch_end,
/// on_train_end) callable with that hook's arguments — see hooks.hpp.
/// Guarantees: hooks fire in list order; a callback with state keeps it across events.
template <class... Callbacks>
class CallbackList {
  static_assert((std::is_class_v<Callbacks> && ...),
                "trainpp: the callbacks slot holds class objects (structs with on_* hooks)");

 public:
  CallbackList() = default;
  explicit CallbackList(Callbacks... callbacks)
    requires(sizeof...(Callbacks) > 0)
      : items_(std::move(callbacks)...) {}
  explicit CallbackList(boost::hana::tuple<Callbacks...> items) : items_(std::move(items)) {}

  /// Calls `hook` on every callback that declares it, in order.
  template <class Hook, class Trainer, class... A>
  void fire(Hook, Trainer& trainer, A&... a) {
    boost::hana::for_each(items_, [&](auto& cb) { Hook::invoke(cb, trainer, a...); });
  }

  /// The list with `more` appended (the Trainer puts its built-ins first, as HF does).
  template <class... More>
  [[nodiscard]] auto append(More... more) && {
    return CallbackList<Callbacks..., More...>(
        boost::hana::concat(std::move(items_), boost::hana::make_tuple(std::move(more)...)));
  }
  template <class... More>
  [[nodiscard]] auto prepend(More... more) && {
    return CallbackList<More..., Callbacks...>(
        boost::hana::concat(boost::hana::make_tuple(std::move(more)...), std::move(items_)));
  }

  /// The callback of type C (the first one, if several).
  template <class C>
  [[nodiscard]] C& get() {
    C* found = nullptr;
    boost::hana::for_each(items_, [&](auto& cb) {
      if constexpr (std::is_same_v<std::remove_cvref_t<decltype(cb)>, C>)
        if (!found) found = &cb;
    });
    return *found;
  }
  template <std::size_t I>
  [[nodiscard]] auto& at() { return boost::hana::at_c<I>(items_); }

  static constexpr std::size_t size() { return sizeof...(Callbacks); }
  [[nodiscard]] auto& items() { return items_; }

 private:
  boost::hana::tuple<Callbacks...> items_;
};

/// `callback_list(ProgressBar{}, EarlyStopping{.patience = 3})`.
template <class... Callbacks>
[[nodiscard]] CallbackList<std::decay_t<Callbacks>...> callback_list(Callbacks&&... callbacks) {
  return CallbackList<std::decay_t<Callbacks>...>(std::forward<Callbacks>(callbacks)...);
}

template <class T> struct is_callback_list : std::false_type {};
template <class... C> struct is_callback_list<CallbackList<C...>> : std::true_type {};

}  // namespace trainpp
