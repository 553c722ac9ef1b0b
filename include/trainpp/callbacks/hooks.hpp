#pragma once
// The callback events, detected statically. A callback defines only the hooks it needs; a member
// that carries a hook's name but cannot be called with the hook's arguments is a compile error
// (never silently skipped, which is what a plain "is it callable?" test would do): the name is
// detected by detail/declares.hpp, as every optional member of every slot is.

#include <trainpp/detail/declares.hpp>
#include <trainpp/state.hpp>

#include <string_view>
#include <type_traits>
#include <utility>

namespace trainpp {

/// One event of the loop. `invoke(callback, args, state, control, extra..., trainer)` calls the
/// callback's hook if it declares one. A hook takes (const TrainingArguments&, const TrainerState&,
/// TrainerControl&), then the event's own argument if it has one (on_log: the logs; on_evaluate and
/// on_predict: the metrics), then optionally the trainer (`auto& trainer`) for access to the model,
/// optimizer, scheduler and data loaders.
#define TRAINPP_DETAIL_HOOK(NAME, SIGNATURE)                                                   \
  namespace hooks {                                                                             \
  struct NAME##_t {                                                                             \
    static constexpr std::string_view name = #NAME;                                             \
    template <class C, class Trainer, class... A>                                               \
    static void invoke(C& cb, Trainer& trainer, A&&... a) {                                     \
      if constexpr (detail::declares_##NAME<C>) {                                               \
        if constexpr (requires { cb.NAME(std::forward<A>(a)..., trainer); })                    \
          cb.NAME(std::forward<A>(a)..., trainer);                                              \
        else if constexpr (requires { cb.NAME(std::forward<A>(a)...); })                        \
          cb.NAME(std::forward<A>(a)...);                                                       \
        else                                                                                    \
          static_assert(detail::always_false<C>,                                                \
                        "trainpp: callback hook '" #NAME "' has the wrong signature; expected " \
                        "void " #NAME SIGNATURE);                                               \
      }                                                                                         \
    }                                                                                           \
    template <class C>                                                                          \
    static constexpr bool declared_by = detail::declares_##NAME<C>;                             \
  };                                                                                            \
  inline constexpr NAME##_t NAME{};                                                             \
  }

#define TRAINPP_DETAIL_PLAIN "(const TrainingArguments&, const TrainerState&, TrainerControl&[, auto& trainer])"

TRAINPP_DETAIL_HOOK(on_init_end, TRAINPP_DETAIL_PLAIN)
TRAINPP_DETAIL_HOOK(on_train_begin, TRAINPP_DETAIL_PLAIN)
TRAINPP_DETAIL_HOOK(on_train_end, TRAINPP_DETAIL_PLAIN)
TRAINPP_DETAIL_HOOK(on_epoch_begin, TRAINPP_DETAIL_PLAIN)
TRAINPP_DETAIL_HOOK(on_epoch_end, TRAINPP_DETAIL_PLAIN)
TRAINPP_DETAIL_HOOK(on_step_begin, TRAINPP_DETAIL_PLAIN)
TRAINPP_DETAIL_HOOK(on_substep_end, TRAINPP_DETAIL_PLAIN)
TRAINPP_DETAIL_HOOK(on_pre_optimizer_step, TRAINPP_DETAIL_PLAIN)
TRAINPP_DETAIL_HOOK(on_optimizer_step, TRAINPP_DETAIL_PLAIN)
TRAINPP_DETAIL_HOOK(on_step_end, TRAINPP_DETAIL_PLAIN)
TRAINPP_DETAIL_HOOK(on_save, TRAINPP_DETAIL_PLAIN)
TRAINPP_DETAIL_HOOK(on_prediction_step, TRAINPP_DETAIL_PLAIN)
TRAINPP_DETAIL_HOOK(on_log, "(const TrainingArguments&, const TrainerState&, TrainerControl&, const nlohmann::json& logs[, auto& trainer])")
TRAINPP_DETAIL_HOOK(on_evaluate, "(const TrainingArguments&, const TrainerState&, TrainerControl&, const Metrics& metrics[, auto& trainer])")
TRAINPP_DETAIL_HOOK(on_predict, "(const TrainingArguments&, const TrainerState&, TrainerControl&, const Metrics& metrics[, auto& trainer])")

#undef TRAINPP_DETAIL_PLAIN
#undef TRAINPP_DETAIL_HOOK

}  // namespace trainpp
