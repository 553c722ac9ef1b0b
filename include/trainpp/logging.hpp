#pragma once
// The one logger every trainpp message goes through, with HF's levels (transformers.utils.logging):
// a process-wide level, a sink a program can replace (to redirect into its own logging, or to capture
// in a test), and a rank prefix on the processes other than the first.

#include <trainpp/detail/config.hpp>
#include <trainpp/detail/error.hpp>
#include <trainpp/distributed/launch_environment.hpp>

#include <fmt/format.h>

#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace trainpp {

/// HF's log levels. `passive` is not a level: set as log_level it leaves the logger's level as the
/// program set it (the library default is warning, as transformers').
enum class LogLevel { passive, debug, info, warning, error, critical };

namespace detail {
const char* level_label(LogLevel level);
}  // namespace detail

/// The rank of this process among all processes, from the launcher's environment (torchrun, srun,
/// mpirun: see detect_launch_environment); 0 without a launcher. A malformed environment reads as
/// rank 0 here, so that a message can always be written; TrainingArguments::finalize refuses it.
[[nodiscard]] long process_index();
/// The rank of this process on its node (0 without a launcher; see process_index).
[[nodiscard]] long local_process_index();

/// Where messages go and which are kept. One per process: `trainpp::logger()`.
///
/// By default a message at or above the level is written to stderr as "trainpp: warning: ..." (on
/// a process whose RANK is not 0: "[rank N] trainpp: warning: ..."). `set_sink` replaces the
/// writer: it receives the level and the formatted message (without prefix); `silence()` drops
/// everything. Thread-safe: messages from data-loading threads do not interleave.
class Logger {
 public:
  using Sink = std::function<void(LogLevel, std::string_view)>;

  [[nodiscard]] LogLevel level() const { return level_.load(std::memory_order_relaxed); }
  /// Keeps messages at `level` and above; `passive` changes nothing (HF's meaning of it).
  void set_level(LogLevel level) {
    if (level != LogLevel::passive) level_.store(level, std::memory_order_relaxed);
  }
  [[nodiscard]] bool enabled_for(LogLevel level) const {
    return !silenced_.load(std::memory_order_relaxed) && level >= this->level();
  }

  /// Sends messages to `sink` instead of stderr; an empty sink restores stderr.
  void set_sink(Sink sink) {
    const std::lock_guard lock(mutex_);
    sink_ = std::move(sink);
  }
  [[nodiscard]] Sink sink() const {
    const std::lock_guard lock(mutex_);
    return sink_;
  }
  /// Drops every message (until `unsilence()`), whatever the level.
  void silence() { silenced_.store(true, std::memory_order_relaxed); }
  void unsilence() { silenced_.store(false, std::memory_order_relaxed); }
  [[nodiscard]] bool silenced() const { return silenced_.load(std::memory_order_relaxed); }

  template <typename... Args>
  void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
    if (!enabled_for(level)) return;  // nothing is formatted for a message nobody keeps
    write(level, fmt::format(format, std::forward<Args>(args)...));
  }
  template <typename... Args>
  void debug(fmt::format_string<Args...> format, Args&&... args) { log(LogLevel::debug, format, std::forward<Args>(args)...); }
  template <typename... Args>
  void info(fmt::format_string<Args...> format, Args&&... args) { log(LogLevel::info, format, std::forward<Args>(args)...); }
  template <typename... Args>
  void warning(fmt::format_string<Args...> format, Args&&... args) { log(LogLevel::warning, format, std::forward<Args>(args)...); }
  template <typename... Args>
  void error(fmt::format_string<Args...> format, Args&&... args) { log(LogLevel::error, format, std::forward<Args>(args)...); }
  template <typename... Args>
  void critical(fmt::format_string<Args...> format, Args&&... args) { log(LogLevel::critical, format, std::forward<Args>(args)...); }

 private:
  void write(LogLevel level, const std::string& message);

  std::atomic<LogLevel> level_{LogLevel::warning};
  std::atomic<bool> silenced_{false};
  mutable std::mutex mutex_;
  Sink sink_;
};

/// The process's logger.
[[nodiscard]] inline Logger& logger() {
  static Logger instance;
  return instance;
}

/// A warning through the logger ("trainpp: warning: <message>" on stderr by default): for problems
/// training survives (a mismatch on resume, a file it could not clean up).
template <typename... Args>
void warn(fmt::format_string<Args...> format, Args&&... args) {
  logger().warning(format, std::forward<Args>(args)...);
}

/// An info message through the logger: what the library did on the user's behalf (resumed from a
/// checkpoint, loaded the best model, deleted an old checkpoint). Shown at log level info or below,
/// as HF's logger.info.
template <typename... Args>
void note(fmt::format_string<Args...> format, Args&&... args) {
  logger().info(format, std::forward<Args>(args)...);
}

/// Restores the logger's level, sink and silence when it leaves scope (for tests and for code that
/// quiets the library for a while).
class ScopedLoggerState {
 public:
  ScopedLoggerState() : level_(logger().level()), sink_(logger().sink()), silenced_(logger().silenced()) {}
  ~ScopedLoggerState() {
    logger().set_level(level_);
    logger().set_sink(std::move(sink_));
    if (silenced_) logger().silence();
    else logger().unsilence();
  }
  ScopedLoggerState(const ScopedLoggerState&) = delete;
  ScopedLoggerState& operator=(const ScopedLoggerState&) = delete;

 private:
  LogLevel level_;
  Logger::Sink sink_;
  bool silenced_;
};

#if TRAINPP_DEFINITIONS

namespace detail {

TRAINPP_INLINE const char* level_label(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return "debug: ";
    case LogLevel::info: return "";
    case LogLevel::warning: return "warning: ";
    case LogLevel::error: return "error: ";
    case LogLevel::critical: return "critical: ";
    case LogLevel::passive: break;
  }
  return "";
}

}  // namespace detail

TRAINPP_INLINE long process_index() {
  try {
    return detect_launch_environment().rank;
  } catch (const Error&) {
    return 0;
  }
}

TRAINPP_INLINE long local_process_index() {
  try {
    return detect_launch_environment().local_rank;
  } catch (const Error&) {
    return 0;
  }
}

TRAINPP_INLINE void Logger::write(LogLevel level, const std::string& message) {
  const std::lock_guard lock(mutex_);
  if (sink_) {
    sink_(level, message);
    return;
  }
  const long rank = process_index();
  const std::string prefix = rank != 0 ? fmt::format("[rank {}] trainpp: ", rank) : std::string("trainpp: ");
  fmt::print(stderr, "{}{}{}\n", prefix, detail::level_label(level), message);
  std::fflush(stderr);
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
