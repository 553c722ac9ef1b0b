#pragma once
// TrainerState and TrainerControl: what the loop knows, and how callbacks steer it (HF's fields).

#include <trainpp/args.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace trainpp {

/// Named scalar results: evaluate(), predict() and train() return these (HF's metrics dicts).
/// Ordered by key, which is also the order log_metrics prints them in.
using Metrics = std::map<std::string, double>;

/// The state of training, with transformers 5.x's TrainerState fields and meanings. It is what
/// trainer_state.json holds; callbacks read it.
struct TrainerState {
  std::optional<double> epoch;          ///< fractional epoch: e + (micro-batches done)/(batches per epoch)
  std::int64_t global_step = 0;         ///< optimizer updates done
  std::int64_t max_steps = 0;
  std::int64_t logging_steps = 500;     ///< ratio-valued arguments already resolved to steps
  std::int64_t eval_steps = 500;
  std::int64_t save_steps = 500;
  std::int64_t train_batch_size = 0;
  std::int64_t num_train_epochs = 0;
  std::int64_t num_input_tokens_seen = 0;
  double total_flos = 0;
  nlohmann::json log_history = nlohmann::json::array();
  std::optional<double> best_metric;
  std::optional<std::int64_t> best_global_step;
  std::optional<std::string> best_model_checkpoint;
  bool is_local_process_zero = true;
  bool is_world_process_zero = true;
  bool is_hyper_param_search = false;
  std::optional<std::string> trial_name;
  nlohmann::json trial_params = nullptr;
  nlohmann::json stateful_callbacks = nlohmann::json::object();

  /// HF's TrainerState.compute_steps: a value below 1 is a ratio of max_steps (rounded up).
  void compute_steps(const TrainingArguments& args, std::int64_t max_steps_);

  /// The JSON object HF writes as trainer_state.json (same keys, same meanings).
  [[nodiscard]] nlohmann::json to_json() const;
};

/// The flags through which callbacks steer the loop (HF's TrainerControl). The loop resets each flag
/// at the event HF resets it: should_training_stop at on_train_begin, should_epoch_stop at
/// on_epoch_begin, should_log / should_evaluate / should_save at on_step_begin, and each of those
/// three again once its action ran.
struct TrainerControl {
  bool should_training_stop = false;
  bool should_epoch_stop = false;
  bool should_save = false;
  bool should_evaluate = false;
  bool should_log = false;

  [[nodiscard]] nlohmann::json to_json() const;
};

/// What train() returns (HF's TrainOutput).
struct TrainOutput {
  std::int64_t global_step = 0;
  double training_loss = 0;
  Metrics metrics;
};

/// What evaluate()'s inner loop and predict() return (HF's EvalLoopOutput / PredictionOutput):
/// predictions and label ids on the CPU, concatenated over batches (undefined when not collected).
struct PredictionOutput {
  torch::Tensor predictions;
  torch::Tensor label_ids;
  Metrics metrics;
};

/// What compute_metrics receives (HF's EvalPrediction), on the CPU.
struct EvalPrediction {
  torch::Tensor predictions;
  torch::Tensor label_ids;
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE void TrainerState::compute_steps(const TrainingArguments& args, std::int64_t max_steps_) {
  max_steps = max_steps_;
  auto resolve = [&](double v) {
    return v < 1 ? static_cast<std::int64_t>(std::ceil(static_cast<double>(max_steps) * v))
                 : static_cast<std::int64_t>(v);
  };
  logging_steps = resolve(args.logging_steps);
  eval_steps = args.eval_steps ? resolve(*args.eval_steps) : logging_steps;
  save_steps = resolve(args.save_steps);
}

TRAINPP_INLINE nlohmann::json TrainerState::to_json() const {
  auto opt = [](const auto& o) -> nlohmann::json { return o ? nlohmann::json(*o) : nlohmann::json(nullptr); };
  return {{"best_global_step", opt(best_global_step)},
          {"best_metric", opt(best_metric)},
          {"best_model_checkpoint", opt(best_model_checkpoint)},
          {"epoch", opt(epoch)},
          {"eval_steps", eval_steps},
          {"global_step", global_step},
          {"is_hyper_param_search", is_hyper_param_search},
          {"is_local_process_zero", is_local_process_zero},
          {"is_world_process_zero", is_world_process_zero},
          {"log_history", log_history},
          {"logging_steps", logging_steps},
          {"max_steps", max_steps},
          {"num_input_tokens_seen", num_input_tokens_seen},
          {"num_train_epochs", num_train_epochs},
          {"save_steps", save_steps},
          {"stateful_callbacks", stateful_callbacks},
          {"total_flos", total_flos},
          {"train_batch_size", train_batch_size},
          {"trial_name", opt(trial_name)},
          {"trial_params", trial_params}};
}

TRAINPP_INLINE nlohmann::json TrainerControl::to_json() const {
  return {{"args",
           {{"should_epoch_stop", should_epoch_stop},
            {"should_evaluate", should_evaluate},
            {"should_log", should_log},
            {"should_save", should_save},
            {"should_training_stop", should_training_stop}}},
          {"attributes", nlohmann::json::object()}};
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
