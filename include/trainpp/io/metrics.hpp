#pragma once
// Metrics as HF prints and saves them: log_metrics, save_metrics, speed_metrics.

#include <trainpp/detail/config.hpp>
#include <trainpp/detail/format.hpp>
#include <trainpp/io/atomic_write.hpp>
#include <trainpp/io/json.hpp>
#include <trainpp/state.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

namespace trainpp {

/// Python's round(x, digits) for the values HF rounds (runtimes, rates).
[[nodiscard]] inline double round_to(double x, int digits) {
  const double scale = std::pow(10.0, digits);
  return std::nearbyint(x * scale) / scale;
}

/// HF's speed_metrics: {split}_runtime, _samples_per_second, _steps_per_second, _tokens_per_second.
[[nodiscard]] Metrics speed_metrics(std::string_view split, std::chrono::steady_clock::time_point start,
                                    std::optional<double> num_samples = std::nullopt,
                                    std::optional<double> num_steps = std::nullopt,
                                    std::optional<double> num_tokens = std::nullopt);

namespace detail {
/// HF's metrics_format: memory in MB, runtimes as h:mm:ss.cc, total_flos in GF, other floats rounded to 4 places.
std::string format_metric(const std::string& key, double v);
}  // namespace detail

/// Prints metrics as HF's Trainer.log_metrics does:
///   ***** eval metrics *****
///     eval_accuracy = 0.9123
/// Keys sorted, aligned. `out` defaults to stdout.
void log_metrics(std::string_view split, const Metrics& metrics, std::FILE* out = stdout);

/// Writes {output_dir}/{split}_results.json and, with `combined`, merges into all_results.json — as
/// HF's save_metrics does (indent 4, sorted keys). Atomic writes.
void save_metrics(const std::filesystem::path& output_dir, std::string_view split, const Metrics& metrics,
                  bool combined = true);

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE Metrics speed_metrics(std::string_view split,
                                     std::chrono::steady_clock::time_point start,
                                     std::optional<double> num_samples,
                                     std::optional<double> num_steps,
                                     std::optional<double> num_tokens) {
  const double runtime = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  Metrics m{{fmt::format("{}_runtime", split), round_to(runtime, 4)}};
  if (runtime == 0) return m;
  if (num_samples) m[fmt::format("{}_samples_per_second", split)] = round_to(*num_samples / runtime, 3);
  if (num_steps) m[fmt::format("{}_steps_per_second", split)] = round_to(*num_steps / runtime, 3);
  if (num_tokens) m[fmt::format("{}_tokens_per_second", split)] = round_to(*num_tokens / runtime, 3);
  return m;
}

namespace detail {

TRAINPP_INLINE std::string format_metric(const std::string& key, double v) {
  if (key.find("_runtime") != std::string::npos) {
    const auto secs = static_cast<long long>(v);
    const int centis = static_cast<int>(std::fabs(v - static_cast<double>(secs)) * 100);
    return fmt::format("{}:{:02}:{:02}.{:02}", secs / 3600, (secs / 60) % 60, secs % 60, centis);
  }
  if (key.find("_mem_") != std::string::npos) return fmt::format("{}MB", static_cast<long long>(v) >> 20);
  if (key == "total_flos") return fmt::format("{}GF", static_cast<long long>(v) >> 30);
  return python_float(round_to(v, 4));
}

}  // namespace detail

TRAINPP_INLINE void log_metrics(std::string_view split, const Metrics& metrics, std::FILE* out) {
  std::fprintf(out, "***** %.*s metrics *****\n", static_cast<int>(split.size()), split.data());
  std::size_t key_width = 0, value_width = 0;
  std::vector<std::pair<std::string, std::string>> rows;
  for (const auto& [k, v] : metrics) {
    rows.emplace_back(k, detail::format_metric(k, v));
    key_width = std::max(key_width, k.size());
    value_width = std::max(value_width, rows.back().second.size());
  }
  for (const auto& [k, v] : rows) std::fprintf(out, "%s\n", fmt::format("  {:<{}} = {:>{}}", k, key_width, v, value_width).c_str());
  std::fflush(out);
}

TRAINPP_INLINE void save_metrics(const std::filesystem::path& output_dir,
                                 std::string_view split,
                                 const Metrics& metrics,
                                 bool combined) {
  std::filesystem::create_directories(output_dir);
  nlohmann::json j(metrics);
  write_json_file(output_dir / fmt::format("{}_results.json", split), j, 4);
  if (combined) {
    const auto all = output_dir / "all_results.json";
    nlohmann::json merged = nlohmann::json::object();
    if (std::filesystem::exists(all)) {
      try {
        merged = read_json_file(all);
      } catch (const Error& e) {
        throw error("{}; remove it or fix it", e.what());
      }
      if (!merged.is_object()) throw error("{} does not hold a JSON object", all.string());
    }
    merged.update(j);
    write_json_file(all, merged, 4);
  }
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
