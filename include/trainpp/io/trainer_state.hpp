#pragma once
// trainer_state.json (HF's schema): the strict reader of a TrainerState and of the TrainerControl
// flags stored with it. The Trainer writes it (Trainer::state_json).

#include <trainpp/detail/config.hpp>
#include <trainpp/io/json.hpp>
#include <trainpp/io/json_fields.hpp>
#include <trainpp/state.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace trainpp {

/// A TrainerState from trainer_state.json's object. Keys HF's schema does not have are ignored (a
/// newer writer may add some); a missing key keeps its default, as HF's dataclass does; a key with
/// the wrong type is an Error naming `source` and the key.
[[nodiscard]] TrainerState trainer_state_from_json(const nlohmann::json& j, std::string_view source);

/// Reads trainer_state.json (see trainer_state_from_json).
[[nodiscard]] inline TrainerState read_trainer_state(const std::filesystem::path& path) {
  return trainer_state_from_json(read_json_file(path), path.string());
}

/// The TrainerControl flags stored in trainer_state.json's stateful_callbacks, if any.
[[nodiscard]] std::optional<TrainerControl> control_from_state(const TrainerState& state, std::string_view source);

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE TrainerState trainer_state_from_json(const nlohmann::json& j, std::string_view source) {
  const detail::JsonFields f(j, std::string(source), "trainer state");
  TrainerState s;
  using F = detail::JsonFields;
  auto integer = [&](const char* key, std::int64_t fallback, std::int64_t min = 0) {
    return f.is_null(key) ? fallback : f.integer(key, min);
  };
  s.epoch = f.optional("epoch", &F::number);
  s.global_step = integer("global_step", 0);
  s.max_steps = integer("max_steps", 0);
  s.logging_steps = integer("logging_steps", 500);
  s.eval_steps = integer("eval_steps", 500);
  s.save_steps = integer("save_steps", 500);
  s.train_batch_size = integer("train_batch_size", 0);
  s.num_train_epochs = integer("num_train_epochs", 0);
  s.num_input_tokens_seen = integer("num_input_tokens_seen", 0);
  s.total_flos = f.is_null("total_flos") ? 0.0 : f.number("total_flos");
  if (f.has("log_history")) {
    const auto& history = f.at("log_history");
    if (!history.is_array()) throw f.fail("log_history", "an array of objects", history);
    for (std::size_t i = 0; i < history.size(); ++i) {
      const auto& entry = history[i];
      const detail::JsonFields e(entry, std::string(source), fmt::format("log_history[{}]", i));
      for (const auto& [key, value] : entry.items())
        if (!value.is_number() && !value.is_string() && !value.is_null() && !value.is_boolean())
          throw e.fail(key.c_str(), "a number, string, boolean or null", value);
      if (e.has("step")) (void)e.integer("step");
    }
    s.log_history = history;
  }
  s.best_metric = f.optional("best_metric", &F::number);
  s.best_global_step = f.is_null("best_global_step") ? std::nullopt : std::optional(f.integer("best_global_step"));
  s.best_model_checkpoint = f.optional("best_model_checkpoint", &F::string);
  s.is_local_process_zero = f.has("is_local_process_zero") ? f.boolean("is_local_process_zero") : true;
  s.is_world_process_zero = f.has("is_world_process_zero") ? f.boolean("is_world_process_zero") : true;
  s.is_hyper_param_search = f.has("is_hyper_param_search") ? f.boolean("is_hyper_param_search") : false;
  s.trial_name = f.optional("trial_name", &F::string);
  if (f.has("trial_params")) {
    const auto& tp = f.at("trial_params");
    if (!tp.is_null() && !tp.is_object()) throw f.fail("trial_params", "an object or null", tp);
    s.trial_params = tp;
  }
  if (f.has("stateful_callbacks")) {
    const auto& sc = f.at("stateful_callbacks");
    if (!sc.is_object()) throw f.fail("stateful_callbacks", "an object", sc);
    s.stateful_callbacks = sc;
  }
  return s;
}

TRAINPP_INLINE std::optional<TrainerControl> control_from_state(const TrainerState& state, std::string_view source) {
  if (!state.stateful_callbacks.contains("TrainerControl")) return std::nullopt;
  const auto& stored = state.stateful_callbacks.at("TrainerControl");
  const detail::JsonFields entry(stored, std::string(source), "stateful_callbacks.TrainerControl");
  if (!entry.has("args")) return TrainerControl{};
  const detail::JsonFields f(entry.at("args"), std::string(source), "stateful_callbacks.TrainerControl.args");
  TrainerControl c;
  auto flag = [&](const char* key) { return f.has(key) ? f.boolean(key) : false; };
  c.should_training_stop = flag("should_training_stop");
  c.should_epoch_stop = flag("should_epoch_stop");
  c.should_save = flag("should_save");
  c.should_evaluate = flag("should_evaluate");
  c.should_log = flag("should_log");
  return c;
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
