// Named slots: what `trainpp::loss = L{}` and friends make, how a list of them resolves into the
// Policies a Trainer is made of (defaults from each tag, order of naming irrelevant), and how the
// values are taken out of the arguments.

#include <trainpp/slots.hpp>

#include <doctest/doctest.h>

#include <string>
#include <type_traits>

namespace slots_test {

struct CustomLoss {
  int weight = 0;
};
struct CustomStep {};
struct NotASlotTag {};

template <class... Named>
using resolved = trainpp::resolve_slots_t<Named...>;
template <class P, class Tag>
using slot_of = typename P::template type<Tag>;

TEST_CASE("slots: a slot left out resolves to its tag's default_type") {
  using P = resolved<>;
  static_assert(std::is_same_v<slot_of<P, trainpp::slot::data_loader_t>, trainpp::DefaultDataLoader>);
  static_assert(std::is_same_v<slot_of<P, trainpp::slot::loss_t>, trainpp::ModelLoss>);
  static_assert(std::is_same_v<slot_of<P, trainpp::slot::optimizer_t>, trainpp::HFOptimizer>);
  static_assert(std::is_same_v<slot_of<P, trainpp::slot::scheduler_t>, trainpp::HFScheduler>);
  static_assert(std::is_same_v<slot_of<P, trainpp::slot::precision_t>, trainpp::MixedPrecision>);
  static_assert(std::is_same_v<slot_of<P, trainpp::slot::sharding_t>, trainpp::AutoSharding>);
  static_assert(std::is_same_v<slot_of<P, trainpp::slot::callbacks_t>, trainpp::CallbackList<>>);
  static_assert(std::is_same_v<slot_of<P, trainpp::slot::step_t>, trainpp::DefaultStep>);
  static_assert(std::is_same_v<slot_of<P, trainpp::slot::train_dataset_t>, trainpp::no_dataset>);
  static_assert(std::is_same_v<slot_of<P, trainpp::slot::eval_dataset_t>, trainpp::no_dataset>);
  static_assert(std::is_same_v<slot_of<P, trainpp::slot::compute_metrics_t>, trainpp::no_metrics>);
  CHECK(std::is_same_v<P, trainpp::Policies<trainpp::DefaultDataLoader, trainpp::ModelLoss, trainpp::HFOptimizer,
                                            trainpp::HFScheduler, trainpp::MixedPrecision, trainpp::AutoSharding,
                                            trainpp::CallbackList<>, trainpp::DefaultStep, trainpp::no_dataset,
                                            trainpp::no_dataset, trainpp::no_metrics>>);
}

TEST_CASE("slots: a named slot replaces its default only, whatever the order of naming") {
  using Loss = decltype(trainpp::loss = CustomLoss{});
  using Step = decltype(trainpp::step = CustomStep{});
  using AB = resolved<Loss, Step>;
  using BA = resolved<Step, Loss>;
  // The same slots named in another order make the same Trainer type.
  CHECK(std::is_same_v<AB, BA>);
  CHECK(std::is_same_v<slot_of<AB, trainpp::slot::loss_t>, CustomLoss>);
  CHECK(std::is_same_v<slot_of<AB, trainpp::slot::step_t>, CustomStep>);
  CHECK(std::is_same_v<slot_of<AB, trainpp::slot::optimizer_t>, trainpp::HFOptimizer>);
  CHECK(std::is_same_v<slot_of<AB, trainpp::slot::precision_t>, trainpp::MixedPrecision>);
}

TEST_CASE("slots: `name = value` decays the value and pairs it with the slot's tag") {
  const CustomLoss loss{.weight = 3};
  auto named = (trainpp::loss = loss);
  static_assert(std::is_same_v<decltype(named), boost::hana::pair<trainpp::slot::loss_t, CustomLoss>>);
  CHECK(boost::hana::second(named).weight == 3);
  auto metrics = (trainpp::compute_metrics = [](const auto&) { return 1; });
  CHECK(trainpp::detail::slot_arg<decltype(metrics)>::value);
}

TEST_CASE("slots: only pairs with a listed tag count as slots") {
  CHECK(trainpp::detail::slot_arg<boost::hana::pair<trainpp::slot::step_t, CustomStep>>::value);
  CHECK_FALSE(trainpp::detail::slot_arg<boost::hana::pair<NotASlotTag, CustomStep>>::value);
  CHECK_FALSE(trainpp::detail::slot_arg<CustomStep>::value);
  CHECK(trainpp::detail::check_slot_arguments<decltype(trainpp::loss = CustomLoss{}),
                                              decltype(trainpp::step = CustomStep{})>());
}

TEST_CASE("slots: take_slot moves the named value out, or builds the default") {
  auto loss = (trainpp::loss = CustomLoss{.weight = 7});
  auto step = (trainpp::step = CustomStep{});
  const CustomLoss taken = trainpp::detail::take_slot<trainpp::slot::loss_t, CustomLoss>(step, loss);
  CHECK(taken.weight == 7);
  const auto fallback = trainpp::detail::take_slot<trainpp::slot::loss_t, CustomLoss>(step);
  CHECK(fallback.weight == 0);
  CHECK(trainpp::detail::slot_count<trainpp::slot::loss_t, decltype(loss), decltype(step)> == 1);
  CHECK(trainpp::detail::slot_count<trainpp::slot::loss_t, decltype(step)> == 0);
}

}  // namespace slots_test
