#pragma once
// MetricsLog: every log as one JSON line in output_dir/metrics.jsonl — for tools that tail a file.

#include <trainpp/detail/config.hpp>
#include <trainpp/state.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#if TRAINPP_DEFINITIONS
#include <cerrno>
#include <cstring>
#endif

namespace trainpp {

/// On the main process, appends each on_log's values with "step" (and "epoch" when the logs carry it, as
/// the Trainer's do once training has begun) as one line of JSON to output_dir/metrics.jsonl, flushed
/// per line, so a reader never sees half a record unless the process dies mid-write (then only the
/// last line is cut). A run resumed in the same output_dir appends to the file. Copies share the open
/// file.
class MetricsLog {
 public:
  static constexpr std::string_view file_name = "metrics.jsonl";

  void on_log(const TrainingArguments& args, const TrainerState& state, TrainerControl&, const nlohmann::json& logs);
  void on_train_end(const TrainingArguments&, const TrainerState&, TrainerControl&) { file_->close(); }

  /// The file written, once the first log came.
  [[nodiscard]] std::filesystem::path path() const { return file_->path; }

 private:
  struct File {
    std::filesystem::path path;
    std::FILE* handle = nullptr;
    void close() {
      if (handle) std::fclose(handle);
      handle = nullptr;
    }
    ~File() { close(); }
  };
  std::shared_ptr<File> file_ = std::make_shared<File>();
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE void MetricsLog::on_log(const TrainingArguments& args, const TrainerState& state, TrainerControl&, const nlohmann::json& logs) {
  if (!state.is_world_process_zero) return;
  if (!file_->handle) {
    const std::filesystem::path dir = args.output_dir;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    file_->path = dir / file_name;
    file_->handle = std::fopen(file_->path.c_str(), "ae");
    if (!file_->handle) throw error("cannot open {} to append metrics: {}", file_->path.string(), std::strerror(errno));
  }
  nlohmann::json line = logs;
  line["step"] = state.global_step;
  const auto text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  if (std::fwrite(text.data(), 1, text.size(), file_->handle) != text.size() || std::fflush(file_->handle) != 0)
    throw error("cannot append metrics to {}: {}", file_->path.string(), std::strerror(errno));
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
