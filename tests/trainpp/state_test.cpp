// TrainerState and TrainerControl on their own: HF's compute_steps (ratios of max_steps rounded up,
// eval_steps falling back to logging_steps) and the JSON HF writes as trainer_state.json.

#include <trainpp/state.hpp>

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

namespace state_test {

TEST_CASE("state: compute_steps keeps whole steps and turns ratios below 1 into ceil(ratio * max_steps)") {
  trainpp::TrainingArguments args;
  args.logging_steps = 0.1;
  args.eval_steps = 0.25;
  args.save_steps = 40;
  trainpp::TrainerState state;
  state.compute_steps(args, 33);
  CHECK(state.max_steps == 33);
  CHECK(state.logging_steps == 4);  // ceil(3.3)
  CHECK(state.eval_steps == 9);     // ceil(8.25)
  CHECK(state.save_steps == 40);

  // Without eval_steps, evaluation follows logging_steps (as HF resolves it).
  args.eval_steps.reset();
  args.logging_steps = 7;
  state.compute_steps(args, 100);
  CHECK(state.logging_steps == 7);
  CHECK(state.eval_steps == 7);
  // A ratio of exactly a whole number of steps is not rounded up further.
  args.save_steps = 0.5;
  state.compute_steps(args, 10);
  CHECK(state.save_steps == 5);
}

TEST_CASE("state: to_json writes HF's keys, null for what is unset and the values once set") {
  trainpp::TrainerState state;
  auto j = state.to_json();
  CHECK(j.size() == 20);
  CHECK(j["epoch"].is_null());
  CHECK(j["best_metric"].is_null());
  CHECK(j["best_global_step"].is_null());
  CHECK(j["best_model_checkpoint"].is_null());
  CHECK(j["trial_name"].is_null());
  CHECK(j["trial_params"].is_null());
  CHECK(j["log_history"] == nlohmann::json::array());
  CHECK(j["stateful_callbacks"] == nlohmann::json::object());
  CHECK(j["is_world_process_zero"] == true);

  state.epoch = 1.5;
  state.global_step = 12;
  state.best_metric = 0.25;
  state.best_global_step = 10;
  state.best_model_checkpoint = "out/checkpoint-10";
  state.num_input_tokens_seen = 4096;
  state.total_flos = 1e9;
  state.log_history.push_back({{"loss", 0.5}, {"step", 12}});
  j = state.to_json();
  CHECK(j["epoch"] == 1.5);
  CHECK(j["global_step"] == 12);
  CHECK(j["best_metric"] == 0.25);
  CHECK(j["best_global_step"] == 10);
  CHECK(j["best_model_checkpoint"] == "out/checkpoint-10");
  CHECK(j["num_input_tokens_seen"] == 4096);
  CHECK(j["total_flos"] == 1e9);
  CHECK(j["log_history"].size() == 1);
  CHECK(j["log_history"][0]["step"] == 12);
}

TEST_CASE("state: TrainerControl serialises as HF's stateful callback entry") {
  trainpp::TrainerControl control;
  control.should_save = true;
  control.should_training_stop = true;
  const auto j = control.to_json();
  CHECK(j["attributes"] == nlohmann::json::object());
  const auto& flags = j["args"];
  CHECK(flags.size() == 5);
  CHECK(flags["should_save"] == true);
  CHECK(flags["should_training_stop"] == true);
  CHECK(flags["should_epoch_stop"] == false);
  CHECK(flags["should_evaluate"] == false);
  CHECK(flags["should_log"] == false);
}

}  // namespace state_test
