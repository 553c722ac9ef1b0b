#pragma once
// ReportTo: the integrations that args.report_to names, as HF's Trainer adds their callbacks.

#include <trainpp/detail/config.hpp>
#include <trainpp/callbacks/csv_log.hpp>
#include <trainpp/callbacks/curves.hpp>
#include <trainpp/callbacks/metrics_log.hpp>
#include <trainpp/callbacks/tensorboard.hpp>

#include <optional>
#include <string>

#if TRAINPP_DEFINITIONS
#include <algorithm>
#endif

namespace trainpp {

/// A built-in callback (the Trainer puts it after the default flow and the progress display) running
/// the integrations report_to names: "tensorboard" (TensorBoard event files), "jsonl" (MetricsLog,
/// output_dir/metrics.jsonl), "csv" (CsvLog, output_dir/metrics.csv), "curves" (TrainingCurves:
/// output_dir/training_curves.svg at the end of training), "all" for every one, "none" for none. The choice is made at on_init_end, from the
/// arguments; a run without integrations pays one branch per log.
class ReportTo {
 public:
  void on_init_end(const TrainingArguments& args, const TrainerState&, TrainerControl&);
  void on_train_begin(const TrainingArguments& args, const TrainerState& state, TrainerControl& control) {
    if (tensorboard_) tensorboard_->on_train_begin(args, state, control);
  }
  void on_log(const TrainingArguments& args, const TrainerState& state, TrainerControl& control,
              const nlohmann::json& logs) {
    if (tensorboard_) tensorboard_->on_log(args, state, control, logs);
    if (metrics_log_) metrics_log_->on_log(args, state, control, logs);
    if (csv_log_) csv_log_->on_log(args, state, control, logs);
  }
  void on_train_end(const TrainingArguments& args, const TrainerState& state, TrainerControl& control) {
    if (tensorboard_) tensorboard_->on_train_end(args, state, control);
    if (metrics_log_) metrics_log_->on_train_end(args, state, control);
    if (csv_log_) csv_log_->on_train_end(args, state, control);
    if (curves_) curves_->on_train_end(args, state, control);
  }

  /// The TensorBoard callback, when report_to asked for it (its log_dir() and event_file()).
  [[nodiscard]] const std::optional<TensorBoard>& tensorboard() const { return tensorboard_; }
  /// The JSON-lines log, when report_to asked for it.
  [[nodiscard]] const std::optional<MetricsLog>& metrics_log() const { return metrics_log_; }
  /// The CSV log, when report_to asked for it.
  [[nodiscard]] const std::optional<CsvLog>& csv_log() const { return csv_log_; }

 private:
  std::optional<TensorBoard> tensorboard_;
  std::optional<MetricsLog> metrics_log_;
  std::optional<CsvLog> csv_log_;
  std::optional<TrainingCurves> curves_;
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE void ReportTo::on_init_end(const TrainingArguments& args, const TrainerState&, TrainerControl&) {
  auto wants = [&](const char* name) {
    return std::ranges::find(args.report_to, "all") != args.report_to.end() ||
           std::ranges::find(args.report_to, name) != args.report_to.end();
  };
  if (wants("tensorboard")) tensorboard_.emplace();
  if (wants("jsonl")) metrics_log_.emplace();
  if (wants("csv")) csv_log_.emplace();
  if (wants("curves")) curves_.emplace();
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
