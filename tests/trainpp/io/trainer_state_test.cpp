// The strict reader of trainer_state.json (io/trainer_state.hpp): round trips of TrainerState through
// HF's schema, the defaults of missing or null keys, and the TrainerControl flags stored with it.

#include <trainpp/io/trainer_state.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

namespace trainer_state_test {

namespace fs = std::filesystem;

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const trainpp::Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST_CASE("trainer_state.json round-trips and rejects wrong types, naming the file and the key") {
  trainpp::TrainerState s;
  s.epoch = 1.25;
  s.global_step = 40;
  s.max_steps = 100;
  s.logging_steps = 5;
  s.eval_steps = 10;
  s.save_steps = 20;
  s.train_batch_size = 16;
  s.num_train_epochs = 4;
  s.total_flos = 12345.5;
  s.log_history = nlohmann::json::array({{{"loss", 0.5}, {"grad_norm", 1.5}, {"learning_rate", 1e-3}, {"epoch", 0.5}, {"step", 5}},
                                         {{"eval_loss", 0.25}, {"eval_accuracy", 0.9}, {"epoch", 1.0}, {"step", 10}}});
  s.best_metric = 0.9;
  s.best_global_step = 20;
  s.best_model_checkpoint = "out/checkpoint-20";
  s.stateful_callbacks = {{"TrainerControl", {{"args", {{"should_save", true}, {"should_log", false}}}, {"attributes", nlohmann::json::object()}}}};
  const auto back = trainpp::trainer_state_from_json(s.to_json(), "state.json");
  CHECK(back.to_json() == s.to_json());
  const auto control = trainpp::control_from_state(back, "state.json");
  REQUIRE(control);
  CHECK(control->should_save);
  CHECK(!control->should_log);

  // A file from an older writer lacks keys: they keep their defaults, as HF's dataclass does.
  const auto minimal = trainpp::trainer_state_from_json({{"global_step", 3}, {"future_key", {1, 2}}}, "old.json");
  CHECK(minimal.global_step == 3);
  CHECK(!minimal.best_metric);

  struct Bad {
    nlohmann::json patch;
    const char* phrase;
  };
  const std::vector<Bad> cases{
      {{{"global_step", "40"}}, "\"global_step\" must be an integer"},
      {{{"global_step", -1}}, "\"global_step\" must be an integer of at least 0"},
      {{{"global_step", 1.5}}, "\"global_step\" must be an integer"},
      {{{"epoch", "one"}}, "\"epoch\" must be a number"},
      {{{"best_metric", true}}, "\"best_metric\" must be a number"},
      {{{"best_model_checkpoint", 7}}, "\"best_model_checkpoint\" must be a string"},
      {{{"log_history", {{"a", 1}}}}, "\"log_history\" must be an array of objects"},
      {{{"log_history", {1, 2}}}, "log_history[0] must be a JSON object"},
      {{{"log_history", {{{"loss", {{"nested", 1}}}}}}}, "log_history[0] \"loss\" must be a number, string"},
      {{{"log_history", {{{"step", "5"}}}}}, "log_history[0] \"step\" must be an integer"},
      {{{"stateful_callbacks", {1}}}, "\"stateful_callbacks\" must be an object"},
      {{{"is_world_process_zero", "yes"}}, "\"is_world_process_zero\" must be true or false"},
  };
  for (const auto& c : cases) {
    auto j = s.to_json();
    j.update(c.patch);
    const auto message = message_of([&] { (void)trainpp::trainer_state_from_json(j, "ckpt/trainer_state.json"); });
    CHECK_MESSAGE(message.starts_with("ckpt/trainer_state.json: "), message);
    CHECK_MESSAGE(message.find(c.phrase) != std::string::npos, message, " lacks ", c.phrase);
  }
  auto bad_control = s.to_json();
  bad_control["stateful_callbacks"]["TrainerControl"]["args"]["should_save"] = "true";
  const auto parsed = trainpp::trainer_state_from_json(bad_control, "c.json");
  CHECK(message_of([&] { (void)trainpp::control_from_state(parsed, "c.json"); }).find("\"should_save\" must be true or false") !=
        std::string::npos);
}

TEST_CASE("trainer_state: null values keep the defaults HF's dataclass has") {
  const nlohmann::json j = {{"epoch", nullptr},         {"global_step", nullptr},  {"logging_steps", nullptr},
                            {"eval_steps", nullptr},    {"save_steps", nullptr},   {"total_flos", nullptr},
                            {"best_metric", nullptr},   {"best_global_step", nullptr},
                            {"best_model_checkpoint", nullptr}, {"trial_name", nullptr}, {"trial_params", nullptr}};
  const auto s = trainpp::trainer_state_from_json(j, "nulls.json");
  CHECK_FALSE(s.epoch);
  CHECK(s.global_step == 0);
  CHECK(s.logging_steps == 500);
  CHECK(s.eval_steps == 500);
  CHECK(s.save_steps == 500);
  CHECK(s.total_flos == 0.0);
  CHECK_FALSE(s.best_metric);
  CHECK_FALSE(s.best_global_step);
  CHECK_FALSE(s.best_model_checkpoint);
  CHECK_FALSE(s.trial_name);
  CHECK(s.trial_params.is_null());
  CHECK(s.log_history == nlohmann::json::array());
  CHECK(s.is_local_process_zero);
  CHECK(s.is_world_process_zero);
  CHECK_FALSE(s.is_hyper_param_search);
}

TEST_CASE("trainer_state: the hyperparameter search fields and integral total_flos are read") {
  const nlohmann::json j = {{"is_hyper_param_search", true},
                            {"is_local_process_zero", false},
                            {"trial_name", "trial-3"},
                            {"trial_params", {{"learning_rate", 3e-4}}},
                            {"total_flos", 1234567890123LL},  // json.dump writes a whole float as an integer
                            {"num_input_tokens_seen", 4096},
                            {"best_global_step", 12}};
  const auto s = trainpp::trainer_state_from_json(j, "search.json");
  CHECK(s.is_hyper_param_search);
  CHECK_FALSE(s.is_local_process_zero);
  CHECK(s.trial_name == "trial-3");
  CHECK(s.trial_params.at("learning_rate") == 3e-4);
  CHECK(s.total_flos == 1234567890123.0);
  CHECK(s.num_input_tokens_seen == 4096);
  CHECK(s.best_global_step == 12);
}

TEST_CASE("trainer_state: the document and its fields are checked, errors naming the source") {
  CHECK_THROWS_WITH_AS((void)trainpp::trainer_state_from_json(nlohmann::json::array({1}), "arr.json"),
                       doctest::Contains("arr.json: trainer state must be a JSON object, got array"), trainpp::Error);
  CHECK_THROWS_WITH_AS((void)trainpp::trainer_state_from_json({{"trial_params", {1, 2}}}, "t.json"),
                       doctest::Contains("t.json: trainer state \"trial_params\" must be an object or null"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS((void)trainpp::trainer_state_from_json({{"best_global_step", -2}}, "b.json"),
                       doctest::Contains("\"best_global_step\" must be an integer of at least 0"), trainpp::Error);
  CHECK_THROWS_WITH_AS((void)trainpp::trainer_state_from_json({{"trial_name", 3}}, "n.json"),
                       doctest::Contains("\"trial_name\" must be a string"), trainpp::Error);
  // A step that is negative inside the history is as wrong as a negative global_step.
  CHECK_THROWS_WITH_AS(
      (void)trainpp::trainer_state_from_json({{"log_history", {{{"loss", 1.0}, {"step", -4}}}}}, "h.json"),
      doctest::Contains("h.json: log_history[0] \"step\" must be an integer of at least 0"), trainpp::Error);
  // Strings, booleans and nulls are values HF logs too.
  const auto s = trainpp::trainer_state_from_json(
      {{"log_history", {{{"note", "resumed"}, {"flag", true}, {"eval_loss", nullptr}, {"step", 2}}}}}, "ok.json");
  CHECK(s.log_history.at(0).at("note") == "resumed");
}

TEST_CASE("trainer_state: read_trainer_state reads a file and names it in errors") {
  const fs::path dir = fs::temp_directory_path() /
                       fmt::format("trainpp-trainer-state-test-{}-{}", ::getpid(), std::random_device{}());
  fs::create_directories(dir);
  trainpp::TrainerState s;
  s.global_step = 17;
  s.epoch = 0.5;
  trainpp::write_json_file(dir / "trainer_state.json", s.to_json());
  CHECK(trainpp::read_trainer_state(dir / "trainer_state.json").to_json() == s.to_json());
  trainpp::write_json_file(dir / "bad.json", {{"max_steps", "ten"}});
  CHECK_THROWS_WITH_AS((void)trainpp::read_trainer_state(dir / "bad.json"),
                       doctest::Contains(((dir / "bad.json").string() + ": trainer state \"max_steps\" must be an integer").c_str()),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS((void)trainpp::read_trainer_state(dir / "missing.json"),
                       doctest::Contains((dir / "missing.json").string().c_str()), trainpp::Error);
  fs::remove_all(dir);
}

TEST_CASE("trainer_state: control_from_state reads the TrainerControl flags, absent ones false") {
  trainpp::TrainerState s;
  CHECK_FALSE(trainpp::control_from_state(s, "s.json"));  // no stateful callbacks at all
  s.stateful_callbacks = {{"EarlyStoppingCallback", {{"args", nlohmann::json::object()}}}};
  CHECK_FALSE(trainpp::control_from_state(s, "s.json"));

  s.stateful_callbacks = {{"TrainerControl", nlohmann::json::object()}};  // no args: every flag down
  auto c = trainpp::control_from_state(s, "s.json");
  REQUIRE(c);
  CHECK(c->to_json() == trainpp::TrainerControl{}.to_json());

  s.stateful_callbacks = {{"TrainerControl", {{"args", {{"should_training_stop", true}, {"should_epoch_stop", true},
                                                        {"should_evaluate", true}}}}}};
  c = trainpp::control_from_state(s, "s.json");
  REQUIRE(c);
  CHECK(c->should_training_stop);
  CHECK(c->should_epoch_stop);
  CHECK(c->should_evaluate);
  CHECK_FALSE(c->should_save);
  CHECK_FALSE(c->should_log);

  s.stateful_callbacks = {{"TrainerControl", {1, 2}}};
  CHECK_THROWS_WITH_AS((void)trainpp::control_from_state(s, "s.json"),
                       doctest::Contains("s.json: stateful_callbacks.TrainerControl must be a JSON object"),
                       trainpp::Error);
  s.stateful_callbacks = {{"TrainerControl", {{"args", "none"}}}};
  CHECK_THROWS_WITH_AS((void)trainpp::control_from_state(s, "s.json"),
                       doctest::Contains("stateful_callbacks.TrainerControl.args must be a JSON object, got string"),
                       trainpp::Error);
}

}  // namespace trainer_state_test
