#pragma once
// EarlyStopping: stop training when the metric that defines the best model stops improving —
// transformers 5.x's EarlyStoppingCallback, with its state saved in checkpoints.

#include <trainpp/detail/config.hpp>
#include <trainpp/logging.hpp>
#include <trainpp/state.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#if TRAINPP_DEFINITIONS
#include <cmath>
#endif

namespace trainpp {

/// Stops training after `early_stopping_patience` evaluations in a row that did not improve
/// metric_for_best_model by more than `early_stopping_threshold` over the best value so far
/// (TrainerState::best_metric, in the direction greater_is_better says).
///
/// Requires metric_for_best_model and an eval strategy other than "no": the Trainer's constructor
/// refuses the combination (HF asserts at the start of training). Without load_best_model_at_end it
/// warns, as HF does: the best model is then not loaded at the end.
struct EarlyStopping {
  static constexpr std::string_view state_name = "EarlyStoppingCallback";

  std::int64_t early_stopping_patience = 1;
  double early_stopping_threshold = 0.0;
  /// Evaluations in a row without improvement (saved in checkpoints).
  std::int64_t early_stopping_patience_counter = 0;

  void on_init_end(const TrainingArguments& args, const TrainerState&, TrainerControl&) const;

  void on_train_begin(const TrainingArguments& args, const TrainerState&, TrainerControl&) const {
    if (!args.load_best_model_at_end)
      warn("Using EarlyStopping without load_best_model_at_end=True. Once training is finished, the best model "
           "will not be loaded automatically.");
  }

  void on_evaluate(const TrainingArguments& args, const TrainerState& state, TrainerControl& control,
                   const Metrics& metrics);

  [[nodiscard]] nlohmann::json state() const;

  /// HF restores the constructor arguments too: a resumed run keeps the patience it started with.
  void load_state(const nlohmann::json& saved);
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE void EarlyStopping::on_init_end(const TrainingArguments& args, const TrainerState&, TrainerControl&) const {
  if (early_stopping_patience < 1)
    throw error("EarlyStopping: early_stopping_patience must be at least 1, got {}", early_stopping_patience);
  if (!(early_stopping_threshold >= 0))
    throw error("EarlyStopping: early_stopping_threshold must be >= 0, got {}", early_stopping_threshold);
  if (!args.metric_for_best_model)
    throw error("EarlyStopping requires metric_for_best_model to be defined (e.g. --metric_for_best_model loss)");
  if (args.eval_strategy == IntervalStrategy::no)
    throw error("EarlyStopping requires an eval_strategy of steps or epoch (it is 'no')");
}

TRAINPP_INLINE void EarlyStopping::on_evaluate(const TrainingArguments& args, const TrainerState& state, TrainerControl& control,
                                               const Metrics& metrics) {
  std::string name = args.metric_for_best_model.value_or("loss");
  if (!name.starts_with("eval_")) name = "eval_" + name;
  const auto it = metrics.find(name);
  if (it == metrics.end()) {
    warn("early stopping required metric_for_best_model, but did not find {} so early stopping is disabled", name);
    return;
  }
  // Called before the Trainer records this evaluation as the best: best_metric is the best so far.
  const double value = it->second;
  const bool greater = args.greater_is_better.value_or(true);
  const bool improved = !state.best_metric ||
                        ((greater ? value > *state.best_metric : value < *state.best_metric) &&
                         std::fabs(value - *state.best_metric) > early_stopping_threshold);
  early_stopping_patience_counter = improved ? 0 : early_stopping_patience_counter + 1;
  if (early_stopping_patience_counter >= early_stopping_patience) control.should_training_stop = true;
}

TRAINPP_INLINE nlohmann::json EarlyStopping::state() const {
  return {{"args",
           {{"early_stopping_patience", early_stopping_patience},
            {"early_stopping_threshold", early_stopping_threshold}}},
          {"attributes", {{"early_stopping_patience_counter", early_stopping_patience_counter}}}};
}

TRAINPP_INLINE void EarlyStopping::load_state(const nlohmann::json& saved) {
  auto field = [&](const char* group, const char* key) -> const nlohmann::json* {
    if (!saved.contains(group)) return nullptr;
    const auto& g = saved.at(group);
    if (!g.is_object()) throw error("\"{}\" must be an object, got {}", group, g.dump());
    return g.contains(key) ? &g.at(key) : nullptr;
  };
  auto integer = [&](const char* group, const char* key, std::int64_t& out) {
    if (const auto* v = field(group, key)) {
      if (!v->is_number_integer() || v->get<std::int64_t>() < 0)
        throw error("{}.{} must be a non-negative integer, got {}", group, key, v->dump());
      out = v->get<std::int64_t>();
    }
  };
  std::int64_t patience = early_stopping_patience, counter = early_stopping_patience_counter;
  double threshold = early_stopping_threshold;
  integer("args", "early_stopping_patience", patience);
  integer("attributes", "early_stopping_patience_counter", counter);
  if (const auto* v = field("args", "early_stopping_threshold"); v && !v->is_null()) {
    if (!v->is_number() || !(v->get<double>() >= 0))
      throw error("args.early_stopping_threshold must be a number >= 0, got {}", v->dump());
    threshold = v->get<double>();
  }
  if (patience < 1) throw error("args.early_stopping_patience must be at least 1, got {}", patience);
  early_stopping_patience = patience;
  early_stopping_threshold = threshold;
  early_stopping_patience_counter = counter;
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
