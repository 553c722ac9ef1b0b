// Metrics as HF prints and saves them (io/metrics.hpp): Python's rounding, speed_metrics,
// metrics_format's runtimes and GF, log_metrics' aligned table, and save_metrics' result files.

#include <trainpp/io/metrics.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

#include <unistd.h>

namespace metrics_test {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() / fmt::format("trainpp-metrics-test-{}-{}", ::getpid(), std::random_device{}());
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

/// What log_metrics prints, caught in a temporary file.
std::string logged(std::string_view split, const trainpp::Metrics& metrics) {
  std::FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  trainpp::log_metrics(split, metrics, f);
  std::rewind(f);
  std::string out;
  char buffer[256];
  while (const auto n = std::fread(buffer, 1, sizeof buffer, f)) out.append(buffer, n);
  std::fclose(f);
  return out;
}

TEST_CASE("metrics: round_to rounds half to even, as Python's round") {
  CHECK(trainpp::round_to(2.5, 0) == 2.0);
  CHECK(trainpp::round_to(3.5, 0) == 4.0);
  CHECK(trainpp::round_to(1.23456, 3) == doctest::Approx(1.235).epsilon(1e-12));
  CHECK(trainpp::round_to(0.125, 2) == doctest::Approx(0.12).epsilon(1e-12));  // round(0.125, 2) == 0.12
  CHECK(trainpp::round_to(-1.26, 1) == doctest::Approx(-1.3).epsilon(1e-12));
}

TEST_CASE("metrics: speed_metrics reports the runtime and the rates it was given counts for") {
  const auto start = std::chrono::steady_clock::now() - std::chrono::seconds(2);
  const auto m = trainpp::speed_metrics("eval", start, 100.0, 10.0);
  REQUIRE(m.size() == 3);
  const double runtime = m.at("eval_runtime");
  CHECK(runtime >= 2.0);
  CHECK(runtime < 3.0);
  CHECK(runtime == trainpp::round_to(runtime, 4));  // rounded to 4 places
  CHECK(m.at("eval_samples_per_second") == doctest::Approx(100.0 / runtime).epsilon(1e-3));
  CHECK(m.at("eval_steps_per_second") == doctest::Approx(10.0 / runtime).epsilon(1e-3));

  const auto only_runtime = trainpp::speed_metrics("train", start);
  CHECK(only_runtime.size() == 1);
  CHECK(only_runtime.contains("train_runtime"));
  const auto samples = trainpp::speed_metrics("test", start, 8.0);
  CHECK(samples.contains("test_samples_per_second"));
  CHECK_FALSE(samples.contains("test_steps_per_second"));
}

TEST_CASE("metrics: format_metric writes runtimes as h:mm:ss.cc, total_flos in GF, the rest to 4 places") {
  using trainpp::detail::format_metric;
  CHECK(format_metric("train_runtime", 3725.5) == "1:02:05.50");
  CHECK(format_metric("eval_runtime", 0.07) == "0:00:00.07");
  CHECK(format_metric("eval_runtime", 59.999) == "0:00:59.99");  // hundredths are cut, not rounded, as HF's
  CHECK(format_metric("total_flos", 3.0 * (1LL << 30) + 5) == "3GF");
  CHECK(format_metric("total_flos", 1e9) == "0GF");
  CHECK(format_metric("eval_loss", 0.123456) == "0.1235");
  CHECK(format_metric("epoch", 3.0) == "3.0");
  CHECK(format_metric("eval_accuracy", 1e-7) == "0.0");
}

TEST_CASE("metrics: log_metrics prints HF's header and a sorted table aligned on '='") {
  const trainpp::Metrics m{{"eval_loss", 0.5}, {"epoch", 2.0}, {"eval_runtime", 12.25}, {"eval_accuracy", 0.912345}};
  CHECK(logged("eval", m) ==
        "***** eval metrics *****\n"
        "  epoch         =        2.0\n"
        "  eval_accuracy =     0.9123\n"
        "  eval_loss     =        0.5\n"
        "  eval_runtime  = 0:00:12.25\n");
  CHECK(logged("train", {}) == "***** train metrics *****\n");
}

TEST_CASE("metrics: save_metrics writes the split's results and merges them into all_results.json") {
  TempDir dir;
  const auto out = dir.path / "run";  // created on demand
  trainpp::save_metrics(out, "train", {{"train_loss", 0.5}, {"epoch", 1.0}});
  CHECK(trainpp::read_file(out / "train_results.json") == "{\n    \"epoch\": 1.0,\n    \"train_loss\": 0.5\n}\n");
  trainpp::save_metrics(out, "eval", {{"eval_loss", 0.25}, {"epoch", 2.0}});
  // The later split's keys win where they overlap (dict.update).
  CHECK(trainpp::read_json_file(out / "all_results.json") ==
        nlohmann::json{{"train_loss", 0.5}, {"eval_loss", 0.25}, {"epoch", 2.0}});
  CHECK(trainpp::read_file(out / "all_results.json").find("\n    \"epoch\": 2.0,\n") != std::string::npos);

  trainpp::save_metrics(out, "test", {{"test_loss", 0.75}}, /*combined=*/false);
  CHECK(fs::exists(out / "test_results.json"));
  CHECK_FALSE(trainpp::read_json_file(out / "all_results.json").contains("test_loss"));
}

TEST_CASE("metrics: save_metrics refuses to merge into an all_results.json that is not a JSON object") {
  TempDir dir;
  trainpp::write_file_atomic(dir.path / "all_results.json", "[1, 2]");
  CHECK_THROWS_WITH_AS(trainpp::save_metrics(dir.path, "eval", {{"eval_loss", 1.0}}),
                       doctest::Contains("all_results.json does not hold a JSON object"), trainpp::Error);
  trainpp::write_file_atomic(dir.path / "all_results.json", "{\"a\": ");
  CHECK_THROWS_WITH_AS(trainpp::save_metrics(dir.path, "eval", {{"eval_loss", 1.0}}),
                       doctest::Contains("; remove it or fix it"), trainpp::Error);
  CHECK(trainpp::read_file(dir.path / "all_results.json") == "{\"a\": ");  // left as it was
}

}  // namespace metrics_test
