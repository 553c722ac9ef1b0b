#pragma once
// CallbackList: a compile-time list of callback objects. Firing an event walks the list with
// hana::for_each; a callback without the hook costs nothing, not even a call.

#include <trainpp/callbacks/hooks.hpp>
#include <trainpp/callbacks/stateful.hpp>

#include <boost/hana/for_each.hpp>
#include <boost/hana/tuple.hpp>
#include <boost/hana/concat.hpp>
#include <boost/hana/at.hpp>
#include <boost/hana/length.hpp>

#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

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
  static_assert((detail::check_stateful_callback<Callbacks>() && ...));

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
    // Checked here, where the list's types are known: a missing callback is a compile error, not a
    // null reference at run time.
    static_assert((std::is_same_v<C, Callbacks> || ...),
                  "trainpp: CallbackList::get<C>(): this callback list holds no callback of type C");
    C* found = nullptr;
    boost::hana::for_each(items_, [&](auto& cb) {
      if constexpr (std::is_same_v<std::remove_cvref_t<decltype(cb)>, C>)
        if (!found) found = &cb;
    });
    return *found;
  }
  template <std::size_t I>
  [[nodiscard]] auto& at() { return boost::hana::at_c<I>(items_); }

  /// The stateful callbacks' states, keyed by state_name (a list when several share a name), as
  /// trainer_state.json's stateful_callbacks holds them.
  [[nodiscard]] nlohmann::json states() const {
    nlohmann::json out = nlohmann::json::object();
    boost::hana::for_each(items_, [&](const auto& cb) {
      using C = std::remove_cvref_t<decltype(cb)>;
      if constexpr (StatefulCallback<C>) {
        const std::string name(C::state_name);
        nlohmann::json state = cb.state();
        if (!out.contains(name)) out[name] = std::move(state);
        else if (out[name].is_array()) out[name].push_back(std::move(state));
        else out[name] = nlohmann::json::array({std::move(out[name]), std::move(state)});
      }
    });
    return out;
  }

  /// Hands saved states back to the stateful callbacks, matched by state_name and, among callbacks
  /// of one name, by position (HF's _load_callback_state). Returns the stored names no callback of
  /// this list claims. A malformed entry throws trainpp::Error naming `source` and the key.
  std::vector<std::string> load_states(const nlohmann::json& stored, std::string_view source) {
    std::vector<std::string> unclaimed;
    if (!stored.is_object()) throw error("{}: stateful_callbacks must be an object, got {}", source, stored.dump());
    std::map<std::string, std::size_t> taken;  // how many entries of each name went to callbacks so far
    boost::hana::for_each(items_, [&](auto& cb) {
      using C = std::remove_cvref_t<decltype(cb)>;
      if constexpr (StatefulCallback<C>) {
        const std::string name(C::state_name);
        if (!stored.contains(name)) return;
        const auto& entry = stored.at(name);
        const std::size_t index = taken[name]++;
        const nlohmann::json* data = nullptr;
        if (entry.is_array()) {
          if (index < entry.size()) data = &entry[index];
        } else if (index == 0) {
          data = &entry;
        }
        if (data == nullptr) return;  // more callbacks of this name now than when saved: the rest start fresh
        if (!data->is_object())
          throw error("{}: stateful_callbacks.{} must be an object with \"args\" and \"attributes\", got {}", source,
                      name, data->dump());
        try {
          cb.load_state(*data);
        } catch (const Error& e) {
          throw error("{}: stateful_callbacks.{}: {}", source, name, e.what());
        } catch (const nlohmann::json::exception& e) {
          throw error("{}: stateful_callbacks.{}: {}", source, name, e.what());
        }
      }
    });
    for (const auto& [name, entry] : stored.items())
      if (name != "TrainerControl" && !taken.contains(name)) unclaimed.push_back(name);
    return unclaimed;
  }

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
