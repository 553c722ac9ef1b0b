#pragma once
// CsvLog: every log as one row of output_dir/metrics.csv — for spreadsheets and plotting tools.

#include <trainpp/detail/config.hpp>
#include <trainpp/io/atomic_write.hpp>
#include <trainpp/state.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#if TRAINPP_DEFINITIONS
#include <algorithm>
#include <cerrno>
#include <cstring>
#endif

namespace trainpp {

/// On the main process, one row per on_log: "step", then each logged key in the order it first appeared
/// (a key a row lacks is an empty field). A row is appended and flushed while the columns stay the same;
/// a log with a new key (eval metrics at the first evaluation, the summary at the end) rewrites the file
/// atomically with the wider header, earlier rows getting empty fields, so the file is valid CSV
/// (RFC 4180: fields with a comma, quote or line break are quoted) whenever it is read. A run resumed in
/// the same output_dir continues the file, with its columns. Copies share the file.
class CsvLog {
 public:
  static constexpr std::string_view file_name = "metrics.csv";

  void on_log(const TrainingArguments& args, const TrainerState& state, TrainerControl&, const nlohmann::json& logs);
  void on_train_end(const TrainingArguments&, const TrainerState&, TrainerControl&) { file_->close(); }

  /// The file written, once the first log came.
  [[nodiscard]] std::filesystem::path path() const { return file_->path; }

  /// One CSV field: numbers as the shortest text that reads back the same, strings quoted when needed,
  /// null as nothing, anything else as its JSON.
  [[nodiscard]] static std::string field(const nlohmann::json& value);

 private:
  struct File {
    std::filesystem::path path;
    std::vector<std::string> columns;  // "step" first
    std::FILE* handle = nullptr;
    void close() {
      if (handle) std::fclose(handle);
      handle = nullptr;
    }
    ~File() { close(); }
  };

  [[nodiscard]] static std::string quoted(const std::string& text);

  /// The fields of one CSV line (quotes undone): enough to read back the header this class wrote.
  [[nodiscard]] static std::vector<std::string> split_line(std::string_view line);

  static void open(File& f, const std::string& output_dir);

  [[nodiscard]] static std::string header(const File& f);

  static void write_header_only(File& f);

  /// The file again with the current header, every earlier row padded with `added` empty fields.
  static void widen(File& f, std::size_t added);

  std::shared_ptr<File> file_ = std::make_shared<File>();
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE void CsvLog::on_log(const TrainingArguments& args, const TrainerState& state, TrainerControl&, const nlohmann::json& logs) {
  if (!state.is_world_process_zero) return;
  File& f = *file_;
  if (f.path.empty()) open(f, args.output_dir);
  std::size_t added = 0;
  for (const auto& [key, value] : logs.items())
    if (key != "step" && std::ranges::find(f.columns, key) == f.columns.end()) {
      f.columns.push_back(key);
      ++added;
    }
  std::string row;
  for (std::size_t c = 0; c < f.columns.size(); ++c) {
    if (c > 0) row += ',';
    if (c == 0) row += std::to_string(state.global_step);
    else if (logs.contains(f.columns[c])) row += field(logs.at(f.columns[c]));
  }
  row += '\n';
  if (added > 0) widen(f, added);
  if (std::fwrite(row.data(), 1, row.size(), f.handle) != row.size() || std::fflush(f.handle) != 0)
    throw error("cannot append metrics to {}: {}", f.path.string(), std::strerror(errno));
}

TRAINPP_INLINE std::string CsvLog::field(const nlohmann::json& value) {
  if (value.is_null()) return {};
  if (value.is_number_float()) return fmt::format("{}", value.get<double>());
  if (value.is_number() || value.is_boolean()) return value.dump();
  return quoted(value.is_string() ? value.get<std::string>() : value.dump());
}

TRAINPP_INLINE std::string CsvLog::quoted(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + '"';
}

TRAINPP_INLINE std::vector<std::string> CsvLog::split_line(std::string_view line) {
  std::vector<std::string> out(1);
  bool in_quotes = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (in_quotes) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') out.back() += '"', ++i;
      else if (c == '"') in_quotes = false;
      else out.back() += c;
    } else if (c == '"') {
      in_quotes = true;
    } else if (c == ',') {
      out.emplace_back();
    } else {
      out.back() += c;
    }
  }
  return out;
}

TRAINPP_INLINE void CsvLog::open(File& f, const std::string& output_dir) {
  const std::filesystem::path dir = output_dir;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  f.path = dir / file_name;
  f.columns = {"step"};
  if (std::filesystem::exists(f.path, ec)) {  // a resumed run: continue with the file's columns
    const std::string text = read_file(f.path);
    const auto header = std::string_view(text).substr(0, text.find('\n'));
    if (!header.empty()) {
      f.columns = split_line(header);
      if (f.columns.empty() || f.columns.front() != "step")
        throw error("{} exists but is not a metrics file trainpp wrote (its first column is not \"step\"); "
                    "move it away or use another output_dir", f.path.string());
    }
    if (!text.empty() && text.back() != '\n')  // cut by a crash mid-row: that row is dropped
      write_file_atomic(f.path, text.substr(0, text.rfind('\n') + 1));
  }
  f.handle = std::fopen(f.path.c_str(), "ae");
  if (!f.handle) throw error("cannot open {} to append metrics: {}", f.path.string(), std::strerror(errno));
  if (std::ftell(f.handle) == 0) write_header_only(f);
}

TRAINPP_INLINE std::string CsvLog::header(const File& f) {
  std::string out;
  for (std::size_t c = 0; c < f.columns.size(); ++c) {
    if (c > 0) out += ',';
    out += quoted(f.columns[c]);
  }
  return out + '\n';
}

TRAINPP_INLINE void CsvLog::write_header_only(File& f) {
  const auto text = header(f);
  if (std::fwrite(text.data(), 1, text.size(), f.handle) != text.size() || std::fflush(f.handle) != 0)
    throw error("cannot write {}: {}", f.path.string(), std::strerror(errno));
}

TRAINPP_INLINE void CsvLog::widen(File& f, std::size_t added) {
  f.close();
  const std::string text = read_file(f.path);
  std::string out = header(f);
  const std::string padding(added, ',');
  std::size_t start = text.find('\n');
  start = start == std::string::npos ? text.size() : start + 1;  // past the old header
  while (start < text.size()) {
    const auto end = text.find('\n', start);
    if (end == std::string::npos) break;  // open() keeps the file ending in a whole row
    out.append(text, start, end - start);
    out += padding;
    out += '\n';
    start = end + 1;
  }
  write_file_atomic(f.path, out);
  f.handle = std::fopen(f.path.c_str(), "ae");
  if (!f.handle) throw error("cannot open {} to append metrics: {}", f.path.string(), std::strerror(errno));
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
