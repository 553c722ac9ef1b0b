#pragma once
// TensorBoard: the logs as TensorBoard scalars — transformers 5.x's TensorBoardCallback, writing its
// event files with trainpp's own writer (io/tfevents.hpp) instead of torch.utils.tensorboard.

#include <trainpp/detail/config.hpp>
#include <trainpp/cli.hpp>
#include <trainpp/io/tfevents.hpp>
#include <trainpp/logging.hpp>
#include <trainpp/state.hpp>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#if TRAINPP_DEFINITIONS
#include <ctime>
#endif

namespace trainpp {

/// HF's rewrite_logs: the TensorBoard tag of each log key — "eval_<x>" becomes "eval/<x>",
/// "test_<x>" becomes "test/<x>", and any other key "train/<key>".
[[nodiscard]] nlohmann::json rewrite_logs(const nlohmann::json& logs);

namespace detail {

/// SummaryWriter's default run directory: "runs/<%b%d_%H-%M-%S local time>_<hostname>".
[[nodiscard]] std::filesystem::path tensorboard_default_run();

/// A leading "~" replaced by $HOME, as Python's os.path.expanduser.
[[nodiscard]] inline std::filesystem::path expand_user(std::string_view path) {
  const char* home = std::getenv("HOME");
  if (home && *home && (path == "~" || path.starts_with("~/"))) return std::string(home) + std::string(path.substr(1));
  return std::filesystem::path(path);
}

}  // namespace detail

/// Writes the logs to TensorBoard event files, as transformers 5.x's TensorBoardCallback (main process
/// only):
/// - on_train_begin: opens an event file in the log directory and writes the arguments (as
///   pretty-printed JSON) as text under "args" (the tag TensorBoard shows: "args/text_summary").
/// - on_log: each log key renamed by rewrite_logs ("train/loss", "eval/accuracy", ...); numbers (and
///   booleans) written as scalars at state.global_step, strings as text; anything else is skipped,
///   with a warning the first time each key is. The file is flushed after each log.
/// - on_train_end: closes the file (a later log, e.g. from evaluate(), opens a new one in the same
///   directory).
///
/// The log directory: args.logging_dir when it was set to something other than finalize()'s default
/// (output_dir + "/runs"); else $TENSORBOARD_LOGGING_DIR, as HF reads it; else HF's default,
/// output_dir/runs/<%b%d_%H-%M-%S>_<hostname> — a new directory per run, so that TensorBoard shows
/// runs side by side. A hyper-parameter search trial writes to output_dir/runs/<time>_<host>/<trial>.
/// It is chosen once, at the first event that needs it.
///
/// Copies share one writer (the callback list stores callbacks by value): keep a copy to ask it
/// log_dir() and event_file() after training. Errors writing the file are trainpp::Error naming it.
class TensorBoard {
 public:
  void on_train_begin(const TrainingArguments& args, const TrainerState& state, TrainerControl&);

  void on_log(const TrainingArguments& args, const TrainerState& state, TrainerControl&, const nlohmann::json& logs);

  void on_train_end(const TrainingArguments&, const TrainerState&, TrainerControl&) { close_writer(); }

  /// The log directory, once chosen (at the first on_train_begin or on_log of the main process).
  [[nodiscard]] std::optional<std::filesystem::path> log_dir() const { return shared_->log_dir; }
  /// The event file being written, if one is open.
  [[nodiscard]] std::optional<std::filesystem::path> event_file() const {
    if (!shared_->writer) return std::nullopt;
    return shared_->writer->path();
  }

  /// The directory events go to for `args` when none was chosen yet (see the class comment).
  [[nodiscard]] static std::filesystem::path resolve_log_dir(const TrainingArguments& args);

 private:
  struct Shared {
    std::optional<std::filesystem::path> log_dir;
    std::optional<EventFileWriter> writer;
    std::set<std::string> warned;
  };

  EventFileWriter& open(const TrainingArguments& args) {
    if (!shared_->log_dir) shared_->log_dir = resolve_log_dir(args);
    if (!shared_->writer) shared_->writer.emplace(*shared_->log_dir);
    return *shared_->writer;
  }

  void close_writer();

  std::shared_ptr<Shared> shared_ = std::make_shared<Shared>();
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE nlohmann::json rewrite_logs(const nlohmann::json& logs) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [key, value] : logs.items()) {
    const std::string_view k = key;
    if (k.starts_with("eval_")) out["eval/" + std::string(k.substr(5))] = value;
    else if (k.starts_with("test_")) out["test/" + std::string(k.substr(5))] = value;
    else out["train/" + key] = value;
  }
  return out;
}

namespace detail {

TRAINPP_INLINE std::filesystem::path tensorboard_default_run() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  ::localtime_r(&now, &local);
  char stamp[64] = {};
  std::strftime(stamp, sizeof stamp, "%b%d_%H-%M-%S", &local);
  return std::filesystem::path("runs") / (std::string(stamp) + "_" + tfevents::hostname());
}

}  // namespace detail

TRAINPP_INLINE void TensorBoard::on_train_begin(const TrainingArguments& args, const TrainerState& state, TrainerControl&) {
  if (!state.is_world_process_zero) return;
  if (state.is_hyper_param_search && state.trial_name) {
    // HF: a trial writes to a directory of its own.
    shared_->log_dir = std::filesystem::path(args.output_dir) / detail::tensorboard_default_run() / *state.trial_name;
    close_writer();
  }
  auto& writer = open(args);
  writer.add_text("args", args_json(args).dump(2));
  writer.flush();
}

TRAINPP_INLINE void TensorBoard::on_log(const TrainingArguments& args, const TrainerState& state, TrainerControl&, const nlohmann::json& logs) {
  if (!state.is_world_process_zero) return;
  auto& writer = open(args);
  const nlohmann::json tagged = rewrite_logs(logs);
  for (const auto& [tag, value] : tagged.items()) {
    if (value.is_number() || value.is_boolean()) {
      writer.add_scalar(tag, value.is_boolean() ? (value.get<bool>() ? 1.0 : 0.0) : value.get<double>(),
                        state.global_step);
    } else if (value.is_string()) {
      writer.add_text(tag, value.get_ref<const std::string&>(), state.global_step);
    } else if (shared_->warned.insert(tag).second) {
      warn("TensorBoard: the log value {} for \"{}\" is not a number or a string; it is not written "
           "(nor are later values of \"{}\" that are not)", value.dump(), tag, tag);
    }
  }
  writer.flush();
}

TRAINPP_INLINE std::filesystem::path TensorBoard::resolve_log_dir(const TrainingArguments& args) {
  if (args.logging_dir && !args.logging_dir->empty() && *args.logging_dir != args.output_dir + "/runs")
    return detail::expand_user(*args.logging_dir);
  if (const char* env = std::getenv("TENSORBOARD_LOGGING_DIR"); env && *env) return detail::expand_user(env);
  return std::filesystem::path(args.output_dir) / detail::tensorboard_default_run();
}

TRAINPP_INLINE void TensorBoard::close_writer() {
  if (!shared_->writer) return;
  EventFileWriter writer = std::move(*shared_->writer);
  shared_->writer.reset();
  writer.close();
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
