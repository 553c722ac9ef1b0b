#pragma once
// Console output on the main process: a live progress bar on a terminal (HF's ProgressCallback), or
// plain lines (HF's PrinterCallback, chosen by disable_tqdm or when stderr is not a terminal).

#include <trainpp/detail/config.hpp>
#include <trainpp/detail/format.hpp>
#include <trainpp/state.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <string>

#if TRAINPP_DEFINITIONS
#include <cmath>
#include <unistd.h>
#endif

namespace trainpp {
namespace detail {

/// A log dict as HF prints it: {'loss': 0.1234, 'epoch': 1.0}, floats in `.4g` like ProgressCallback.
std::string format_logs(const nlohmann::json& logs);

std::string format_duration(double seconds);

}  // namespace detail

/// Progress on the main process. On a terminal: one live line — step/total, a bar, it/s, elapsed,
/// ETA and the latest loss — and a nested line during evaluation. Elsewhere (a pipe, CI, or
/// disable_tqdm): a plain line per log event and at most one progress line every `plain_interval`.
class ConsoleProgress {
 public:
  /// `live`: nullopt decides from isatty(stderr) and args.disable_tqdm.
  explicit ConsoleProgress(std::optional<bool> live = std::nullopt, double plain_interval_s = 10.0)
      : forced_live_(live), plain_interval_s_(plain_interval_s) {}

  void on_train_begin(const TrainingArguments& args, const TrainerState& state, TrainerControl&);
  void on_step_end(const TrainingArguments&, const TrainerState& state, TrainerControl&);
  void on_log(const TrainingArguments&, const TrainerState& state, TrainerControl&, const nlohmann::json& logs);
  void on_prediction_step(const TrainingArguments&, const TrainerState& state, TrainerControl&, auto& trainer) {
    if (!live_ || !state.is_world_process_zero) return;
    const auto total = trainer.current_eval_batches();
    ++eval_done_;
    std::fprintf(stderr, "\r\033[2K  eval %zu/%zu", eval_done_, total);
    std::fflush(stderr);
  }
  void on_evaluate(const TrainingArguments&, const TrainerState&, TrainerControl&, const Metrics&) {
    eval_done_ = 0;
    if (live_) std::fprintf(stderr, "\r\033[2K");
  }
  void on_predict(const TrainingArguments& a, const TrainerState& s, TrainerControl& c, const Metrics& m) {
    on_evaluate(a, s, c, m);
  }
  void on_train_end(const TrainingArguments&, const TrainerState&, TrainerControl&) {
    if (enabled_ && live_) std::fprintf(stderr, "\n");
  }

 private:
  using clock = std::chrono::steady_clock;
  static double seconds(clock::duration d) { return std::chrono::duration<double>(d).count(); }

  std::string line(const TrainerState& state, clock::time_point now) const;
  void draw(const TrainerState& state, clock::time_point now);

  std::optional<bool> forced_live_;
  double plain_interval_s_;
  bool enabled_ = true, live_ = false, progress_ = true;
  clock::time_point start_{}, last_plain_{}, last_draw_{};
  std::int64_t first_step_ = 0;
  std::optional<double> last_loss_;
  std::size_t eval_done_ = 0;
};

/// HF's PrinterCallback: each log on the local main process as one line, floats as '.4g' strings
/// ({'loss': '0.1234', 'epoch': 1}), total_flos left out. A bare alternative to ConsoleProgress for
/// user callback lists.
struct Printer {
  void on_log(const TrainingArguments&, const TrainerState& state, TrainerControl&, const nlohmann::json& logs) const;
};

#if TRAINPP_DEFINITIONS

namespace detail {

TRAINPP_INLINE std::string format_logs(const nlohmann::json& logs) {
  std::string out = "{";
  bool first = true;
  for (const auto& [key, value] : logs.items()) {
    if (key == "total_flos") continue;
    if (!first) out += ", ";
    first = false;
    out += fmt::format("'{}': ", key);
    if (value.is_number_float()) out += fmt::format("{:.4g}", value.get<double>());
    else if (value.is_string()) out += fmt::format("'{}'", value.get<std::string>());
    else out += value.dump();
  }
  return out + "}";
}

TRAINPP_INLINE std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<long long>(seconds);
  return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
                   : fmt::format("{:02}:{:02}", s / 60, s % 60);
}

}  // namespace detail

TRAINPP_INLINE void ConsoleProgress::on_train_begin(const TrainingArguments& args, const TrainerState& state, TrainerControl&) {
  enabled_ = state.is_world_process_zero;
  // disable_tqdm: no progress display at all, only the log lines (HF's PrinterCallback).
  progress_ = !args.disable_tqdm.value_or(false);
  live_ = forced_live_.value_or(progress_ && ::isatty(STDERR_FILENO) != 0);
  start_ = last_plain_ = clock::now();
  first_step_ = state.global_step;
}

TRAINPP_INLINE void ConsoleProgress::on_step_end(const TrainingArguments&, const TrainerState& state, TrainerControl&) {
  if (!enabled_ || (!progress_ && !live_)) return;
  const auto now = clock::now();
  if (live_) {
    draw(state, now);
  } else if (seconds(now - last_plain_) >= plain_interval_s_ || state.global_step == state.max_steps) {
    last_plain_ = now;
    std::fprintf(stderr, "%s\n", line(state, now).c_str());
  }
}

TRAINPP_INLINE void ConsoleProgress::on_log(const TrainingArguments&, const TrainerState& state, TrainerControl&, const nlohmann::json& logs) {
  if (!enabled_ && !state.is_world_process_zero) return;
  if (logs.contains("loss")) last_loss_ = logs["loss"].get<double>();
  if (live_) std::fprintf(stderr, "\r\033[2K");
  std::fprintf(stdout, "%s\n", detail::format_logs(logs).c_str());
  std::fflush(stdout);
  if (live_ && enabled_ && state.max_steps > 0) draw(state, clock::now());
}

TRAINPP_INLINE std::string ConsoleProgress::line(const TrainerState& state, clock::time_point now) const {
  const double elapsed = seconds(now - start_);
  const auto done = state.global_step - first_step_;
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  const double eta = rate > 0 ? static_cast<double>(state.max_steps - state.global_step) / rate : NAN;
  std::string s = fmt::format("{}/{} [{}<{}, {:.2f}it/s", state.global_step, state.max_steps,
                              detail::format_duration(elapsed), detail::format_duration(eta), rate);
  if (last_loss_) s += fmt::format(", loss={:.4g}", *last_loss_);
  return s + "]";
}

TRAINPP_INLINE void ConsoleProgress::draw(const TrainerState& state, clock::time_point now) {
  // Redrawing costs a write syscall; a few per second is plenty for a person to read.
  if (seconds(now - last_draw_) < 0.1 && state.global_step != state.max_steps) return;
  last_draw_ = now;
  constexpr int width = 24;
  const double frac = state.max_steps > 0 ? static_cast<double>(state.global_step) / state.max_steps : 0.0;
  const int filled = static_cast<int>(frac * width);
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.resize(width, '.');
  std::fprintf(stderr, "\r\033[2K%3d%%|%s| %s", static_cast<int>(frac * 100), bar.c_str(),
               line(state, now).c_str());
  std::fflush(stderr);
}

TRAINPP_INLINE void Printer::on_log(const TrainingArguments&, const TrainerState& state, TrainerControl&, const nlohmann::json& logs) const {
  if (!state.is_local_process_zero) return;
  std::string out = "{";
  for (const auto& [key, value] : logs.items()) {
    if (key == "total_flos") continue;
    if (out.size() > 1) out += ", ";
    out += fmt::format("'{}': ", key);
    if (value.is_number_float()) out += fmt::format("'{:.4g}'", value.get<double>());
    else if (value.is_string()) out += fmt::format("'{}'", value.get<std::string>());
    else out += value.dump();
  }
  std::fprintf(stdout, "%s}\n", out.c_str());
  std::fflush(stdout);
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
