// The hook objects of callbacks/hooks.hpp: each names its event, tells which callbacks declare it,
// and calls a declared hook with or without the trainer, as the hook's signature takes it.

#include <trainpp/callbacks/hooks.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace hooks_test {

using Args = trainpp::TrainingArguments;
using State = trainpp::TrainerState;
using Control = trainpp::TrainerControl;

/// Stands in for the Trainer: hooks that take it see this object.
struct FakeTrainer {
  std::string name = "the trainer";
};

struct Plain {
  std::vector<std::string> calls;
  void on_step_end(const Args&, const State& state, Control& control) {
    calls.push_back("on_step_end@" + std::to_string(state.global_step));
    control.should_log = true;
  }
  void on_log(const Args&, const State&, Control&, const nlohmann::json& logs) { calls.push_back("on_log " + logs.dump()); }
};

struct WantsTrainer {
  std::vector<std::string> calls;
  template <class Trainer>
  void on_evaluate(const Args&, const State&, Control&, const trainpp::Metrics& metrics, Trainer& trainer) {
    calls.push_back(trainer.name + " eval_loss=" + std::to_string(metrics.at("eval_loss")));
  }
  void on_train_begin(const Args&, const State&, Control&, FakeTrainer& trainer) { trainer.name = "renamed"; }
};

struct Nothing {
  int value = 7;
};

TEST_CASE("hooks: each hook object carries its event's name") {
  CHECK(trainpp::hooks::on_init_end.name == "on_init_end");
  CHECK(trainpp::hooks::on_pre_optimizer_step.name == "on_pre_optimizer_step");
  CHECK(trainpp::hooks::on_log.name == "on_log");
  CHECK(trainpp::hooks::on_predict.name == "on_predict");
  CHECK(trainpp::hooks::on_train_end_t::name == "on_train_end");
}

TEST_CASE("hooks: declared_by answers for the hook's name, whatever its signature") {
  CHECK(trainpp::hooks::on_step_end_t::declared_by<Plain>);
  CHECK(trainpp::hooks::on_log_t::declared_by<Plain>);
  CHECK_FALSE(trainpp::hooks::on_evaluate_t::declared_by<Plain>);
  // A template member declares the hook too.
  CHECK(trainpp::hooks::on_evaluate_t::declared_by<WantsTrainer>);
  CHECK_FALSE(trainpp::hooks::on_step_end_t::declared_by<Nothing>);
}

TEST_CASE("hooks: invoke calls a declared hook with the event's arguments, and skips an undeclared one") {
  FakeTrainer trainer;
  Args args;
  State state;
  state.global_step = 4;
  Control control;
  Plain plain;
  trainpp::hooks::on_step_end_t::invoke(plain, trainer, args, state, control);
  const nlohmann::json logs{{"loss", 0.5}};
  trainpp::hooks::on_log_t::invoke(plain, trainer, args, state, control, logs);
  trainpp::hooks::on_epoch_end_t::invoke(plain, trainer, args, state, control);  // not declared
  CHECK(plain.calls == std::vector<std::string>{"on_step_end@4", R"(on_log {"loss":0.5})"});
  CHECK(control.should_log);  // the hook's changes to the control reach the caller
  Nothing nothing;
  trainpp::hooks::on_step_end_t::invoke(nothing, trainer, args, state, control);
  CHECK(nothing.value == 7);
}

TEST_CASE("hooks: a hook that takes the trainer last gets the caller's trainer") {
  FakeTrainer trainer;
  Args args;
  State state;
  Control control;
  WantsTrainer cb;
  const trainpp::Metrics metrics{{"eval_loss", 0.25}};
  trainpp::hooks::on_evaluate_t::invoke(cb, trainer, args, state, control, metrics);
  REQUIRE(cb.calls.size() == 1);
  CHECK(cb.calls[0].starts_with("the trainer eval_loss=0.25"));
  // By reference: the hook may act on the trainer.
  trainpp::hooks::on_train_begin_t::invoke(cb, trainer, args, state, control);
  CHECK(trainer.name == "renamed");
}

}  // namespace hooks_test
