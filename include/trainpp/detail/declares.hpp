#pragma once
// "Does C declare anything named NAME?" — the one test behind every optional member of every slot
// and every callback hook. A plain "is it callable?" test cannot tell a member that is absent from
// one declared with the wrong signature, and so skips the latter silently; this test answers for
// the name alone, and the slot checks (concepts/*.hpp, callbacks/hooks.hpp) then require a declared
// member to be callable as the library calls it.

#include <type_traits>

namespace trainpp::detail {

// Derive from C and from a probe that also has NAME: the name becomes ambiguous exactly when C (or a
// base of C) has it, whatever it is (function, template, overload set, data member). A final class
// cannot be derived from; for it, the test is whether &C::NAME names a single member. The two tests
// are separate constraints joined by && and ||, which stop at the first answer: one expression (a ?:)
// would instantiate both_NAME<C> for a final C too, a hard error instead of an answer.
#define TRAINPP_DETAIL_DECLARES(NAME)                                                         \
  struct probe_##NAME {                                                                        \
    int NAME;                                                                                  \
  };                                                                                           \
  template <class C>                                                                           \
  struct both_##NAME : C, probe_##NAME {};                                                    \
  template <class C>                                                                           \
  concept derived_sees_##NAME = !requires { &both_##NAME<C>::NAME; };                          \
  template <class C>                                                                           \
  concept declares_##NAME = std::is_class_v<C> &&                                              \
      ((std::is_final_v<C> && requires { &C::NAME; }) || (!std::is_final_v<C> && derived_sees_##NAME<C>));

// Callback hooks (callbacks/hooks.hpp) and stateful callbacks (callbacks/stateful.hpp).
TRAINPP_DETAIL_DECLARES(on_init_end)
TRAINPP_DETAIL_DECLARES(on_train_begin)
TRAINPP_DETAIL_DECLARES(on_train_end)
TRAINPP_DETAIL_DECLARES(on_epoch_begin)
TRAINPP_DETAIL_DECLARES(on_epoch_end)
TRAINPP_DETAIL_DECLARES(on_step_begin)
TRAINPP_DETAIL_DECLARES(on_substep_end)
TRAINPP_DETAIL_DECLARES(on_pre_optimizer_step)
TRAINPP_DETAIL_DECLARES(on_optimizer_step)
TRAINPP_DETAIL_DECLARES(on_step_end)
TRAINPP_DETAIL_DECLARES(on_save)
TRAINPP_DETAIL_DECLARES(on_prediction_step)
TRAINPP_DETAIL_DECLARES(on_log)
TRAINPP_DETAIL_DECLARES(on_evaluate)
TRAINPP_DETAIL_DECLARES(on_predict)
TRAINPP_DETAIL_DECLARES(state_name)

// Members of several slots: state / load_state (precision, the optimizer and the scheduler the
// policies create, stateful callbacks), configure (precision, sharding).
TRAINPP_DETAIL_DECLARES(state)
TRAINPP_DETAIL_DECLARES(load_state)
TRAINPP_DETAIL_DECLARES(configure)

// The precision slot.
TRAINPP_DETAIL_DECLARES(share_found_inf)

// The sharding slot.
TRAINPP_DETAIL_DECLARES(set_gradient_sync)
TRAINPP_DETAIL_DECLARES(shard_optimizer)
TRAINPP_DETAIL_DECLARES(after_forward)
TRAINPP_DETAIL_DECLARES(forward_is_collective)
TRAINPP_DETAIL_DECLARES(barrier)
TRAINPP_DETAIL_DECLARES(all_reduce_sum)
TRAINPP_DETAIL_DECLARES(gather_in_order)
TRAINPP_DETAIL_DECLARES(full_parameters)
TRAINPP_DETAIL_DECLARES(optimizer_state_file)
TRAINPP_DETAIL_DECLARES(save_model_files)
TRAINPP_DETAIL_DECLARES(load_model_files)
TRAINPP_DETAIL_DECLARES(agree_on_overflow)
TRAINPP_DETAIL_DECLARES(accepts_precision)
TRAINPP_DETAIL_DECLARES(shards_model)

// The data_loader slot and its loaders.
TRAINPP_DETAIL_DECLARES(test_loader)
TRAINPP_DETAIL_DECLARES(real_samples)

// The step slot (required members: declared but not callable gets its own message).
TRAINPP_DETAIL_DECLARES(training_step)
TRAINPP_DETAIL_DECLARES(prediction_step)

// A model whose loss is token-level (concepts/token_loss.hpp), and the model's optional members the
// Trainer reads (trainer.hpp: detail::check_model_members).
TRAINPP_DETAIL_DECLARES(num_items_in_batch)
TRAINPP_DETAIL_DECLARES(floating_point_ops)
TRAINPP_DETAIL_DECLARES(main_input_name)
TRAINPP_DETAIL_DECLARES(is_causal_lm)

#undef TRAINPP_DETAIL_DECLARES

}  // namespace trainpp::detail
