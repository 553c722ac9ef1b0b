// CallbackList: events fired in list order to the callbacks that declare them, callbacks held by value
// with their state, append / prepend / get / at, and the stateful callbacks' states saved and handed
// back by name and position (HF's stateful_callbacks), malformed ones refused with source and key.

#include <trainpp/callbacks/callback_list.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace callback_list_test {

using Args = trainpp::TrainingArguments;
using State = trainpp::TrainerState;
using Control = trainpp::TrainerControl;
using nlohmann::json;

struct FakeTrainer {};

/// Writes its name into a shared journal at each step's end.
struct Named {
  std::shared_ptr<std::vector<std::string>> journal;
  std::string name;
  void on_step_end(const Args&, const State&, Control&) { journal->push_back(name); }
};

/// Only logs.
struct LogsOnly {
  std::shared_ptr<std::vector<std::string>> journal;
  void on_log(const Args&, const State&, Control&, const json& logs) { journal->push_back("log " + logs.dump()); }
};

struct Silent {};

/// A stateful callback in HF's shape: constructor arguments and counters.
struct Counter {
  static constexpr std::string_view state_name = "Counter";
  int weight = 1;
  int total = 0;
  void on_step_end(const Args&, const State&, Control&) { total += weight; }
  [[nodiscard]] json state() const { return {{"args", {{"weight", weight}}}, {"attributes", {{"total", total}}}}; }
  void load_state(const json& j) {
    const auto& t = j.at("attributes").at("total");
    if (!t.is_number_integer()) throw trainpp::error("attributes.total must be an integer, got {}", t.dump());
    weight = j.at("args").at("weight").get<int>();
    total = t.get<int>();
  }
};

struct Other {
  static constexpr std::string_view state_name = "Other";
  std::string mark = "fresh";
  [[nodiscard]] json state() const { return {{"args", json::object()}, {"attributes", {{"mark", mark}}}}; }
  void load_state(const json& j) { mark = j.at("attributes").at("mark").get<std::string>(); }
};

json counter_state(int weight, int total) { return Counter{.weight = weight, .total = total}.state(); }

/// Fires one step's end on `list`.
template <class List>
void step_end(List& list) {
  FakeTrainer trainer;
  const Args args;
  const State state;
  Control control;
  list.fire(trainpp::hooks::on_step_end, trainer, args, state, control);
}

TEST_CASE("callback list: an event reaches the callbacks that declare it, in list order") {
  auto journal = std::make_shared<std::vector<std::string>>();
  auto list = trainpp::callback_list(Named{journal, "a"}, Silent{}, LogsOnly{journal}, Named{journal, "b"});
  CHECK(decltype(list)::size() == 4);
  step_end(list);
  CHECK(*journal == std::vector<std::string>{"a", "b"});
  FakeTrainer trainer;
  const Args args;
  const State state;
  Control control;
  const json logs{{"loss", 2}};
  list.fire(trainpp::hooks::on_log, trainer, args, state, control, logs);
  CHECK(journal->back() == R"(log {"loss":2})");
  CHECK(journal->size() == 3);
}

TEST_CASE("callback list: callbacks are held by value and keep their state from event to event") {
  Counter outside{.weight = 2};
  auto list = trainpp::callback_list(outside, Counter{.weight = 5});
  for (int i = 0; i < 3; ++i) step_end(list);
  CHECK(outside.total == 0);  // the list holds a copy
  // get<C>: the first callback of the type; at<I>: by position.
  CHECK(list.get<Counter>().total == 6);
  CHECK(list.at<1>().total == 15);
  list.get<Counter>().weight = 100;
  step_end(list);
  CHECK(list.at<0>().total == 106);
}

TEST_CASE("callback list: append puts callbacks after the list's, prepend before") {
  auto journal = std::make_shared<std::vector<std::string>>();
  auto list = trainpp::callback_list(Named{journal, "user"})
                  .append(Named{journal, "after"})
                  .prepend(Named{journal, "built-in"}, Silent{});
  static_assert(trainpp::is_callback_list<decltype(list)>::value);
  static_assert(!trainpp::is_callback_list<Named>::value);
  CHECK(decltype(list)::size() == 4);
  step_end(list);
  CHECK(*journal == std::vector<std::string>{"built-in", "user", "after"});
}

TEST_CASE("callback list: states() keys the stateful callbacks by state_name, a list for a shared name") {
  auto list = trainpp::callback_list(Counter{.weight = 1, .total = 3}, Silent{}, Other{.mark = "x"},
                                     Counter{.weight = 10, .total = 30});
  const json states = list.states();
  CHECK(states.size() == 2);  // Silent has no state
  CHECK(states["Counter"] == json::array({counter_state(1, 3), counter_state(10, 30)}));
  CHECK(states["Other"] == json{{"args", json::object()}, {"attributes", {{"mark", "x"}}}});
  CHECK(trainpp::callback_list(Silent{}).states() == json::object());
}

TEST_CASE("callback list: load_states hands states back by name and position and returns the unclaimed names") {
  const json stored{{"Counter", json::array({counter_state(2, 4), counter_state(3, 9)})},
                    {"Other", {{"args", json::object()}, {"attributes", {{"mark", "saved"}}}}},
                    {"Gone", {{"args", json::object()}, {"attributes", json::object()}}},
                    {"TrainerControl", {{"args", json::object()}, {"attributes", json::object()}}}};
  // More Counters now than were saved: the third starts fresh.
  auto list = trainpp::callback_list(Counter{}, Other{}, Counter{}, Counter{.weight = 7});
  const auto unclaimed = list.load_states(stored, "trainer_state.json");
  CHECK(unclaimed == std::vector<std::string>{"Gone"});  // TrainerControl is the Trainer's own
  CHECK(list.at<0>().weight == 2);
  CHECK(list.at<0>().total == 4);
  CHECK(list.at<1>().mark == "saved");
  CHECK(list.at<2>().total == 9);
  CHECK(list.at<3>().weight == 7);
  CHECK(list.at<3>().total == 0);
  // A single saved object goes to the first callback of the name only.
  auto two = trainpp::callback_list(Counter{}, Counter{});
  CHECK(two.load_states(json{{"Counter", counter_state(5, 25)}}, "x").empty());
  CHECK(two.at<0>().total == 25);
  CHECK(two.at<1>().total == 0);
}

TEST_CASE("callback list: malformed saved states are errors naming the source and the key") {
  auto list = trainpp::callback_list(Counter{});
  CHECK_THROWS_WITH_AS(list.load_states(json::array({1}), "ckpt/trainer_state.json"),
                       doctest::Contains("ckpt/trainer_state.json: stateful_callbacks must be an object, got [1]"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(list.load_states(json{{"Counter", 5}}, "ckpt/trainer_state.json"),
                       doctest::Contains("ckpt/trainer_state.json: stateful_callbacks.Counter must be an object with "
                                         "\"args\" and \"attributes\", got 5"),
                       trainpp::Error);
  // The callback's own refusal, and a missing key, both prefixed with where they came from.
  json bad_total = counter_state(1, 0);
  bad_total["attributes"]["total"] = "three";
  CHECK_THROWS_WITH_AS(list.load_states(json{{"Counter", bad_total}}, "ckpt/trainer_state.json"),
                       doctest::Contains("ckpt/trainer_state.json: stateful_callbacks.Counter: attributes.total must "
                                         "be an integer, got \"three\""),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(list.load_states(json{{"Counter", {{"args", {{"weight", 1}}}}}}, "ckpt/trainer_state.json"),
                       doctest::Contains("ckpt/trainer_state.json: stateful_callbacks.Counter: [json.exception"),
                       trainpp::Error);
}

}  // namespace callback_list_test
