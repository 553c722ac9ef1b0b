// MetricsLog: one JSON line per log in output_dir/metrics.jsonl, with the step, appended across runs,
// written by the main process only, and an error naming the file when it cannot be opened.

#include <trainpp/callbacks/metrics_log.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace metrics_log_test {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() / fmt::format("trainpp-metrics-log-{}-{}", ::getpid(), std::random_device{}());
  TempDir() { fs::create_directories(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::vector<nlohmann::json> lines_of(const fs::path& file) {
  std::ifstream in(file);
  std::vector<nlohmann::json> out;
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

trainpp::TrainingArguments args_in(const fs::path& dir) {
  trainpp::TrainingArguments args;
  args.output_dir = dir.string();
  return args;
}

trainpp::TrainerState state_at(std::int64_t step) {
  trainpp::TrainerState state;
  state.global_step = step;
  return state;
}

TEST_CASE("metrics log: each log is one line of JSON with its step, in a directory made on the first log") {
  TempDir dir;
  const auto out = dir.path / "run";  // not there yet
  const auto args = args_in(out);
  trainpp::TrainerControl control;
  trainpp::MetricsLog log;
  log.on_log(args, state_at(2), control, {{"loss", 0.5}, {"epoch", 0.25}});
  log.on_log(args, state_at(4), control, {{"eval_loss", 0.75}});
  CHECK(log.path() == out / "metrics.jsonl");
  // Flushed per line: readable before the run ends.
  const auto lines = lines_of(out / "metrics.jsonl");
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == nlohmann::json{{"loss", 0.5}, {"epoch", 0.25}, {"step", 2}});
  CHECK(lines[1] == nlohmann::json{{"eval_loss", 0.75}, {"step", 4}});
  log.on_train_end(args, state_at(4), control);
}

TEST_CASE("metrics log: a resumed run appends, copies share the file, and only the main process writes") {
  TempDir dir;
  const auto args = args_in(dir.path);
  trainpp::TrainerControl control;
  {
    trainpp::MetricsLog first;
    first.on_log(args, state_at(1), control, {{"loss", 1.0}});
    first.on_train_end(args, state_at(1), control);
  }
  trainpp::MetricsLog second;
  second.on_log(args, state_at(2), control, {{"loss", 2.0}});
  trainpp::MetricsLog copy = second;
  copy.on_log(args, state_at(3), control, {{"loss", 3.0}});
  CHECK(copy.path() == second.path());
  auto other_rank = state_at(4);
  other_rank.is_world_process_zero = false;
  trainpp::MetricsLog elsewhere;
  elsewhere.on_log(args, other_rank, control, {{"loss", 4.0}});
  CHECK(elsewhere.path().empty());
  second.on_train_end(args, state_at(3), control);
  const auto lines = lines_of(dir.path / "metrics.jsonl");
  REQUIRE(lines.size() == 3);
  CHECK(lines[0]["step"] == 1);
  CHECK(lines[1]["step"] == 2);
  CHECK(lines[2]["step"] == 3);
}

TEST_CASE("metrics log: a log whose strings are not UTF-8 is still written, not an exception") {
  TempDir dir;
  const auto args = args_in(dir.path);
  trainpp::TrainerControl control;
  trainpp::MetricsLog log;
  log.on_log(args, state_at(1), control, {{"note", std::string("bad \xff byte")}, {"loss", 1.5}});
  log.on_train_end(args, state_at(1), control);
  const auto lines = lines_of(dir.path / "metrics.jsonl");
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["loss"] == 1.5);
  CHECK(lines[0]["note"] == "bad \xEF\xBF\xBD byte");  // U+FFFD in place of the stray byte
}

TEST_CASE("metrics log: an output_dir that cannot hold the file is an error naming it") {
  TempDir dir;
  const auto blocker = dir.path / "a_file";
  std::ofstream(blocker) << "not a directory";
  trainpp::TrainerControl control;
  trainpp::MetricsLog log;
  CHECK_THROWS_WITH_AS(log.on_log(args_in(blocker), state_at(1), control, {{"loss", 1.0}}),
                       doctest::Contains(fmt::format("cannot open {} to append metrics", (blocker / "metrics.jsonl").string()).c_str()),
                       trainpp::Error);
}

}  // namespace metrics_log_test
