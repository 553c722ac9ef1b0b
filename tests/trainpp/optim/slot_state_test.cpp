// The optimizer-state plumbing every slot-based optimizer shares: shape rules, state dtypes, the
// conversion of slots to and from the checkpoint form (and its refusals), and the gradient pick.

#include <trainpp/optim/slot_state.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace slot_state_test {

using trainpp::detail::StateField;
using trainpp::detail::StateShape;

std::string dt(c10::ScalarType t) { return c10::toString(t); }

// A made-up optimizer slot that uses every kind of entry: the first field marks an initialised slot.
struct Slot {
  torch::Tensor step, moment, row, col, norm, never;
};

bool is_matrix(const torch::Tensor& p) { return p.dim() >= 2; }

std::vector<StateField<Slot>> fields() {
  return {{"step", &Slot::step, StateShape::host_scalar},
          {"moment", &Slot::moment, StateShape::like_param, true, nullptr, /*float32_for_half=*/true},
          {"row", &Slot::row, StateShape::without_last, true, &is_matrix},
          {"col", &Slot::col, StateShape::without_second_last, true, &is_matrix},
          {"norm", &Slot::norm, StateShape::device_scalar},
          {"never", &Slot::never, StateShape::like_param, /*used=*/false}};
}

// Group 0: a matrix and a vector; group 1: a float64 vector.
std::vector<trainpp::ParamGroup> groups() {
  std::vector<trainpp::ParamGroup> out(2);
  out[0].params = {torch::zeros({4, 3}), torch::zeros({5})};
  out[1].params = {torch::zeros({2}, torch::kFloat64)};
  return out;
}

// The checkpoint entry a matrix parameter of shape [4, 3] must have.
std::map<std::string, torch::Tensor> matrix_entry() {
  return {{"step", torch::tensor(2.0)},
          {"moment", torch::full({4, 3}, 0.5)},
          {"row", torch::ones({4})},
          {"col", torch::ones({3})},
          {"norm", torch::tensor(1.5)}};
}

TEST_CASE("slot_state: each shape rule derives the entry's shape from its parameter") {
  const auto p = torch::zeros({2, 3, 5});
  using trainpp::detail::expected_state_shape;
  CHECK(expected_state_shape(StateShape::like_param, p) == std::vector<std::int64_t>{2, 3, 5});
  CHECK(expected_state_shape(StateShape::host_scalar, p).empty());
  CHECK(expected_state_shape(StateShape::device_scalar, p).empty());
  CHECK(expected_state_shape(StateShape::without_last, p) == std::vector<std::int64_t>{2, 3});
  CHECK(expected_state_shape(StateShape::without_second_last, p) == std::vector<std::int64_t>{2, 5});
  CHECK(expected_state_shape(StateShape::without_second_last, torch::zeros({4, 3})) == std::vector<std::int64_t>{3});
}

TEST_CASE("slot_state: half-precision parameters get float32 state only where the optimizer asks") {
  using trainpp::detail::state_dtype;
  CHECK(dt(state_dtype(torch::zeros({1}, torch::kBFloat16), true)) == dt(torch::kFloat32));
  CHECK(dt(state_dtype(torch::zeros({1}, torch::kFloat16), true)) == dt(torch::kFloat32));
  CHECK(dt(state_dtype(torch::zeros({1}, torch::kBFloat16), false)) == dt(torch::kBFloat16));
  CHECK(dt(state_dtype(torch::zeros({1}, torch::kFloat64), true)) == dt(torch::kFloat64));
  CHECK(dt(state_dtype(torch::zeros({1}, torch::kFloat32), true)) == dt(torch::kFloat32));
}

TEST_CASE("slot_state: slots_to_state lists the used entries of initialised slots, in group order") {
  const auto g = groups();
  std::vector<std::vector<Slot>> slots(2);
  slots[0].resize(2);
  slots[1].resize(1);
  slots[0][0] = {torch::tensor(1.0), torch::ones({4, 3}), torch::ones({4}), torch::ones({3}), torch::tensor(2.0),
                 torch::ones({4, 3})};
  slots[1][0] = {torch::tensor(3.0), torch::ones({2}, torch::kFloat64), {}, {}, torch::tensor(4.0), {}};
  // slots[0][1] stays uninitialised (no step): its entry is empty.
  const auto state = trainpp::detail::slots_to_state(g, slots, fields());
  REQUIRE(state.size() == 3);
  CHECK(state[0].size() == 5);
  CHECK(state[0].contains("row"));
  CHECK(state[0].contains("col"));
  CHECK_FALSE(state[0].contains("never"));  // unused: absent even though the slot holds a tensor
  CHECK(state[1].empty());
  CHECK(state[2].size() == 3);  // a vector: no row/col statistics
  CHECK(state[2].at("step").item<double>() == 3.0);
  CHECK_FALSE(state[2].contains("row"));

  // Slots not yet fitted to the groups (an optimizer that never stepped) give empty entries.
  const auto none = trainpp::detail::slots_to_state(g, std::vector<std::vector<Slot>>{}, fields());
  REQUIRE(none.size() == 3);
  for (const auto& entry : none) CHECK(entry.empty());
}

TEST_CASE("slot_state: slots_from_state copies each entry to its parameter's device and dtype") {
  auto g = groups();
  g[0].params[0] = torch::zeros({4, 3}, torch::kBFloat16);  // float32 state for a half parameter
  trainpp::OptimizerState state(3);
  state[0] = matrix_entry();
  state[0]["step"] = torch::tensor(2.0, torch::kFloat64);  // host scalars come back as float32
  state[2] = {{"step", torch::tensor(7.0)}, {"moment", torch::full({2}, 0.25)}, {"norm", torch::tensor(1.0, torch::kFloat64)}};

  const auto slots = trainpp::detail::slots_from_state(g, state, fields(), "Test");
  REQUIRE(slots.size() == 2);
  REQUIRE(slots[0].size() == 2);
  REQUIRE(slots[1].size() == 1);
  CHECK(dt(slots[0][0].step.scalar_type()) == dt(torch::kFloat32));
  CHECK(slots[0][0].step.device().is_cpu());
  CHECK(slots[0][0].step.item<float>() == 2.0f);
  CHECK(dt(slots[0][0].moment.scalar_type()) == dt(torch::kFloat32));
  CHECK(dt(slots[0][0].row.scalar_type()) == dt(torch::kBFloat16));  // no float32_for_half: the param's dtype
  CHECK_FALSE(slots[0][1].step.defined());                           // an empty entry: uninitialised
  CHECK(dt(slots[1][0].moment.scalar_type()) == dt(torch::kFloat64));
  CHECK(dt(slots[1][0].norm.scalar_type()) == dt(torch::kFloat32));
  CHECK(slots[1][0].moment.sum().item<double>() == 0.5);

  // A copy: changing the checkpoint's tensor afterwards leaves the loaded slot alone.
  state[2]["moment"].fill_(9.0);
  CHECK(slots[1][0].moment.sum().item<double>() == 0.5);

  // And back: the same entries come out.
  const auto again = trainpp::detail::slots_to_state(g, slots, fields());
  CHECK(again[0].size() == 5);
  CHECK(again[1].empty());
  CHECK(again[2].at("step").item<float>() == 7.0f);
}

TEST_CASE("slot_state: slots_from_state refuses a state that does not fit, naming optimizer, parameter and entry") {
  const auto g = groups();
  const auto load = [&](const trainpp::OptimizerState& state) {
    (void)trainpp::detail::slots_from_state(g, state, fields(), "Testopt");
  };
  CHECK_THROWS_WITH_AS(load(trainpp::OptimizerState(2)),
                       doctest::Contains("Testopt: the saved state has 2 parameters, the optimizer has 3"),
                       trainpp::Error);

  trainpp::OptimizerState state(3);
  state[0] = matrix_entry();
  state[0]["never"] = torch::zeros({4, 3});  // unused by these options
  CHECK_THROWS_WITH_AS(load(state), doctest::Contains("Testopt: unexpected state entry 'never' for parameter #0"),
                       trainpp::Error);

  state[0] = matrix_entry();
  state[1] = {{"step", torch::tensor(1.0)}, {"moment", torch::zeros({5})}, {"norm", torch::tensor(1.0)},
              {"row", torch::zeros({})}};  // a vector has no row statistics
  CHECK_THROWS_WITH_AS(load(state), doctest::Contains("unexpected state entry 'row' for parameter #1"), trainpp::Error);

  state[1].erase("row");
  state[1].erase("norm");
  CHECK_THROWS_WITH_AS(load(state), doctest::Contains("Testopt: state of parameter #1 lacks 'norm'"), trainpp::Error);

  state[1]["norm"] = torch::Tensor();
  CHECK_THROWS_WITH_AS(load(state), doctest::Contains("state entry 'norm' of parameter #1 is undefined"),
                       trainpp::Error);

  state[1]["norm"] = torch::tensor(1.0);
  state[0]["col"] = torch::ones({4});
  CHECK_THROWS_WITH_AS(load(state), doctest::Contains("state entry 'col' of parameter #0 has shape [4], expected [3]"),
                       trainpp::Error);

  state[0]["col"] = torch::ones({3});
  state[0]["step"] = torch::ones({1});  // a host scalar must be 0-dim
  CHECK_THROWS_WITH_AS(load(state), doctest::Contains("'step' of parameter #0 has shape [1], expected []"),
                       trainpp::Error);

  state[0]["step"] = torch::tensor(1.0);
  CHECK_NOTHROW(load(state));
}

TEST_CASE("slot_state: with_gradients picks the parameters that have one, and fit_slots follows the groups") {
  trainpp::ParamGroup group;
  group.params = {torch::zeros({2}), torch::zeros({3}), torch::zeros({4})};
  group.params[0].mutable_grad() = torch::ones({2});
  group.params[2].mutable_grad() = torch::full({4}, 2.0);
  const auto picked = trainpp::detail::with_gradients(group, "Testopt");
  REQUIRE(picked.params.size() == 2);
  CHECK(picked.slot == std::vector<std::size_t>{0, 2});
  CHECK(picked.params[1].is_same(group.params[2]));
  CHECK(picked.grads[1].sum().item<float>() == 8.0f);

  group.params[1].mutable_grad() = torch::eye(3).index({0}).to_sparse();
  CHECK_THROWS_WITH_AS((void)trainpp::detail::with_gradients(group, "Testopt"),
                       doctest::Contains("Testopt: sparse gradients are not supported"), trainpp::Error);

  // A caller that appends a parameter to a group gets a fresh slot for it; existing slots are kept.
  auto g = groups();
  std::vector<std::vector<Slot>> slots;
  trainpp::detail::fit_slots(slots, g);
  REQUIRE(slots.size() == 2);
  CHECK(slots[0].size() == 2);
  CHECK(slots[1].size() == 1);
  slots[0][0].step = torch::tensor(5.0);
  g[0].params.push_back(torch::zeros({1}));
  trainpp::detail::fit_slots(slots, g);
  CHECK(slots[0].size() == 3);
  CHECK(slots[0][0].step.item<double>() == 5.0);
  CHECK_FALSE(slots[0][2].step.defined());
}

}  // namespace slot_state_test
