// The host memory metrics (--skip_memory_metrics false): the tracker's figures against memory the test
// maps and touches itself, one stage at a time, and the metric names the Trainer reports where HF's
// Trainer reports them (memory_tracker_hf.py runs transformers beside the test).

#include <trainpp/detail/memory_tracker.hpp>
#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include "skip.hpp"
#include "trainpp/tiny_classifier.hpp"

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace memory_tracker_test {

constexpr std::size_t mib = std::size_t{1} << 20;

/// Anonymous memory, every page touched so that it is resident; unmapped when destroyed.
struct Resident {
  void* data;
  std::size_t bytes;
  explicit Resident(std::size_t n) : data(::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)), bytes(n) {
    REQUIRE(data != MAP_FAILED);
    std::memset(data, 1, n);
  }
  ~Resident() { ::munmap(data, bytes); }
};

std::vector<std::string> memory_keys(const std::map<std::string, double>& metrics) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : metrics)
    if (key.find("_mem_") != std::string::npos) keys.push_back(key);
  return keys;
}

TEST_CASE("memory tracker: what a stage keeps is its alloc delta, what it touched and let go its peaked delta") {
  REQUIRE(trainpp::detail::resident_set_bytes() > 0);
  trainpp::detail::MemoryTracker tracker(true);
  std::map<std::string, double> metrics;
  tracker.start("train");
  auto kept = std::make_unique<Resident>(64 * mib);
  { const Resident passing(128 * mib); }
  tracker.stop_and_update("train", &metrics);
  CHECK(memory_keys(metrics) == std::vector<std::string>{"train_mem_cpu_alloc_delta", "train_mem_cpu_peaked_delta"});
  // Other threads of the process (LibTorch's pools) move the figures by a few MiB at most.
  CHECK(metrics.at("train_mem_cpu_alloc_delta") >= 60.0 * mib);
  CHECK(metrics.at("train_mem_cpu_alloc_delta") <= 80.0 * mib);
  CHECK(metrics.at("train_mem_cpu_peaked_delta") >= 120.0 * mib);
  CHECK(metrics.at("train_mem_cpu_peaked_delta") <= 150.0 * mib);
  kept.reset();

  // The next stage starts from the memory of its own start: the freed 64 MiB is a negative alloc delta.
  std::map<std::string, double> next;
  auto again = std::make_unique<Resident>(16 * mib);
  tracker.start("eval");
  again.reset();
  tracker.stop_and_update("eval", &next);
  CHECK(next.at("eval_mem_cpu_alloc_delta") <= -12.0 * mib);
  CHECK(next.at("eval_mem_cpu_peaked_delta") >= 0);
}

TEST_CASE("memory tracker: a stage inside another reports nothing, init comes with the first report, off is silent") {
  trainpp::detail::MemoryTracker tracker(true);
  tracker.start("init");
  tracker.stop_and_update("init", nullptr);
  tracker.start("train");
  std::map<std::string, double> inside;
  tracker.start("eval");  // an evaluation inside training
  tracker.stop_and_update("eval", &inside);
  CHECK(inside.empty());
  std::map<std::string, double> train;
  tracker.stop_and_update("train", &train);
  CHECK(memory_keys(train) == std::vector<std::string>{"before_init_mem_cpu", "init_mem_cpu_alloc_delta",
                                                       "init_mem_cpu_peaked_delta", "train_mem_cpu_alloc_delta",
                                                       "train_mem_cpu_peaked_delta"});
  CHECK(train.at("before_init_mem_cpu") > 0);
  std::map<std::string, double> later;
  tracker.start("test");
  tracker.stop_and_update("test", &later);
  CHECK(memory_keys(later) == std::vector<std::string>{"test_mem_cpu_alloc_delta", "test_mem_cpu_peaked_delta"});

  trainpp::detail::MemoryTracker off(false);
  std::map<std::string, double> none;
  off.start("train");
  off.stop_and_update("train", &none);
  CHECK(none.empty());
}

TEST_CASE("memory tracker: the Trainer reports the memory metrics where HF's Trainer does" *
          doctest::test_suite("integration")) {
#ifndef TRAINPP_PYTHON
  TRAINPP_SKIP_TEST("no Python interpreter to run transformers' Trainer");
#else
  namespace fs = std::filesystem;
  const fs::path out = fs::temp_directory_path() / fmt::format("trainpp-memory-metrics-{}.json", ::getpid());
  const fs::path script = fs::path(TRAINPP_SOURCE_DIR) / "tests/trainpp/detail/memory_tracker_hf.py";
  const int status = std::system(fmt::format("'{}' '{}' '{}' > /dev/null", TRAINPP_PYTHON, script.string(), out.string()).c_str());
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) TRAINPP_SKIP_TEST("transformers cannot be imported");
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  const auto hf = nlohmann::json::parse(std::ifstream(out));
  fs::remove(out);
  auto names = [](const nlohmann::json& list) { return list.get<std::vector<std::string>>(); };

  using namespace tiny_classifier;
  auto args = quiet_args("trainpp_memory_tracker_test");
  args.skip_memory_metrics = false;
  args.per_device_train_batch_size = 4;
  args.num_train_epochs = 1;
  args.eval_strategy = trainpp::IntervalStrategy::steps;
  args.eval_steps = 1;
  auto rows = data(8);
  trainpp::Trainer trainer(Net{}, args, trainpp::train_dataset = std::ref(rows), trainpp::eval_dataset = std::ref(rows));
  const auto train = trainer.train().metrics;
  CHECK(memory_keys(train) == names(hf["train"]));
  std::vector<std::vector<std::string>> inside;
  std::map<std::string, double> train_entry;
  for (const auto& entry : trainer.state().log_history) {
    std::map<std::string, double> values;
    for (const auto& [key, value] : entry.items())
      if (value.is_number()) values[key] = value.get<double>();
    if (entry.contains("eval_loss")) inside.push_back(memory_keys(values));
    if (entry.contains("train_loss")) train_entry = values;
  }
  CHECK(inside == hf["evaluations_inside_training"].get<std::vector<std::vector<std::string>>>());
  CHECK(memory_keys(train_entry) == names(hf["log_history_train"]));
  CHECK(memory_keys(trainer.evaluate()) == names(hf["evaluate"]));
  std::map<std::string, double> evaluate_entry;
  for (const auto& [key, value] : trainer.state().log_history.back().items())
    if (value.is_number()) evaluate_entry[key] = value.get<double>();
  CHECK(memory_keys(evaluate_entry) == names(hf["evaluate_log_history"]));
  CHECK(memory_keys(trainer.predict(rows).metrics) == names(hf["predict"]));

  // The default, as HF's: no memory metrics at all.
  auto quiet = quiet_args("trainpp_memory_tracker_test");
  trainpp::Trainer plain(Net{}, quiet, trainpp::train_dataset = std::ref(rows), trainpp::eval_dataset = std::ref(rows));
  CHECK(memory_keys(plain.train().metrics).empty());
  CHECK(memory_keys(plain.evaluate()).empty());
#endif
}

TEST_CASE("memory tracker: log_metrics shows memory in MB, as HF's metrics_format") {
  CHECK(trainpp::detail::format_metric("train_mem_cpu_alloc_delta", 64.0 * mib + 5) == "64MB");
  CHECK(trainpp::detail::format_metric("before_init_mem_cpu", 3.5 * mib) == "3MB");
  CHECK(trainpp::detail::format_metric("eval_mem_cpu_alloc_delta", -1.0) == "-1MB");
}

}  // namespace memory_tracker_test
