// expect-error: a stateful callback needs 'void load_state\(const nlohmann::json&\)'
// A callback that saves its state but cannot take it back would be resumed with a silently reset
// state; declaring only half of the pair is an error.
#include "common.hpp"

struct Counter {
  static constexpr std::string_view state_name = "Counter";
  std::int64_t steps = 0;
  void on_step_end(const trainpp::TrainingArguments&, const trainpp::TrainerState&, trainpp::TrainerControl&) { ++steps; }
  [[nodiscard]] nlohmann::json state() const { return {{"args", nlohmann::json::object()}, {"attributes", {{"steps", steps}}}}; }
#ifndef TRAINPP_COMPILE_FAIL
  void load_state(const nlohmann::json& j) { steps = j.at("attributes").at("steps").get<std::int64_t>(); }
#endif
};

void build() {
  trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::train_dataset = cf::data(),
                     trainpp::callbacks = trainpp::callback_list(Counter{}));
  t.train();
}
