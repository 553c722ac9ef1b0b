#pragma once
// Callbacks whose state travels with checkpoints: HF's ExportableState. Their state() lands in
// trainer_state.json's "stateful_callbacks" under state_name; a run resumed with
// restore_callback_states_from_checkpoint hands it back through load_state().

#include <trainpp/callbacks/hooks.hpp>
#include <trainpp/detail/declares.hpp>

#include <nlohmann/json.hpp>

#include <string_view>

namespace trainpp {
/// A callback that saves and restores its state through checkpoints.
///
/// Requires: `static constexpr std::string_view state_name` (the key in stateful_callbacks; HF uses
/// the class name, e.g. "EarlyStoppingCallback"), `nlohmann::json state() const` returning HF's
/// shape {"args": {...constructor arguments...}, "attributes": {...counters...}}, and
/// `void load_state(const nlohmann::json&)` taking that object back (it may throw trainpp::Error
/// for a malformed one; the message is prefixed with the file and key).
template <class C>
concept StatefulCallback = requires(const C& c, C& m, const nlohmann::json& j) {
  { C::state_name } -> std::convertible_to<std::string_view>;
  { c.state() } -> std::convertible_to<nlohmann::json>;
  m.load_state(j);
};

namespace detail {
/// A callback that declares some of state_name / state / load_state but not all of them would be
/// silently left out of checkpoints; it is a compile error instead, naming what is missing.
template <class C>
constexpr bool check_stateful_callback() {
  constexpr bool any = declares_state<C> || declares_load_state<C> || declares_state_name<C>;
  if constexpr (!any || StatefulCallback<C>) {
    return true;
  } else {
    static_assert(declares_state_name<C>,
                  "trainpp: the callbacks slot: a stateful callback (one with state() / load_state()) needs "
                  "'static constexpr std::string_view state_name', its key in trainer_state.json");
    static_assert(declares_state<C>,
                  "trainpp: the callbacks slot: a stateful callback needs 'nlohmann::json state() const'");
    static_assert(declares_load_state<C>,
                  "trainpp: the callbacks slot: a stateful callback needs 'void load_state(const nlohmann::json&)'");
    static_assert(StatefulCallback<C>,
                  "trainpp: the callbacks slot: a stateful callback's state_name, state() or load_state() has the "
                  "wrong type; expected static constexpr std::string_view state_name, nlohmann::json state() const, "
                  "void load_state(const nlohmann::json&)");
    return false;
  }
}
}  // namespace detail

}  // namespace trainpp
