// The logger: HF's levels and their per-process choice (log_level, log_level_replica,
// log_on_each_node, RANK / LOCAL_RANK), redirection and silencing, and the Trainer's messages
// reaching it.

#include <trainpp/logging.hpp>
#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

namespace logging_test {

using trainpp::LogLevel;

/// Captures what reaches the logger's sink, and puts the logger back as it was afterwards.
struct Captured {
  trainpp::ScopedLoggerState restore;
  std::vector<std::pair<LogLevel, std::string>> messages;
  Captured() {
    trainpp::logger().set_sink([this](LogLevel level, std::string_view text) { messages.emplace_back(level, text); });
  }
  [[nodiscard]] bool has(std::string_view needle) const {
    for (const auto& [level, text] : messages)
      if (text.find(needle) != std::string::npos) return true;
    return false;
  }
};

/// Sets an environment variable for one scope (unset: nullopt).
struct EnvVar {
  std::string name;
  std::optional<std::string> old;
  EnvVar(std::string n, std::optional<std::string> value) : name(std::move(n)) {
    if (const char* v = std::getenv(name.c_str())) old = v;
    if (value) ::setenv(name.c_str(), value->c_str(), 1);
    else ::unsetenv(name.c_str());
  }
  ~EnvVar() {
    if (old) ::setenv(name.c_str(), old->c_str(), 1);
    else ::unsetenv(name.c_str());
  }
};

/// The environment torchrun gives one process of a job of `world` processes, for one scope.
struct Launched {
  EnvVar rank, local, world, local_world, addr, port;
  Launched(int r, int local_r, int world_size = 8, int local_world_size = 4)
      : rank("RANK", std::to_string(r)), local("LOCAL_RANK", std::to_string(local_r)),
        world("WORLD_SIZE", std::to_string(world_size)), local_world("LOCAL_WORLD_SIZE", std::to_string(local_world_size)),
        addr("MASTER_ADDR", "127.0.0.1"), port("MASTER_PORT", "29500") {}
};

TEST_CASE("the level filters messages, as HF's verbosity does") {
  Captured c;
  trainpp::logger().set_level(LogLevel::warning);  // transformers' default
  trainpp::logger().info("hidden {}", 1);
  trainpp::logger().debug("hidden too");
  trainpp::warn("shown {}", 2);
  trainpp::logger().error("shown {}", 3);
  REQUIRE(c.messages.size() == 2);
  CHECK((c.messages[0].first == LogLevel::warning && c.messages[0].second == "shown 2"));
  CHECK((c.messages[1].first == LogLevel::error && c.messages[1].second == "shown 3"));

  trainpp::logger().set_level(LogLevel::debug);
  trainpp::note("now shown");
  trainpp::logger().debug("and this");
  CHECK(c.messages.size() == 4);
  trainpp::logger().set_level(LogLevel::passive);  // passive changes nothing
  CHECK(trainpp::logger().level() == LogLevel::debug);
  trainpp::logger().set_level(LogLevel::critical);
  trainpp::logger().error("hidden");
  trainpp::logger().critical("shown");
  CHECK(c.messages.size() == 5);
}

TEST_CASE("silence drops everything, and the scoped state restores sink, level and silence") {
  const LogLevel before = trainpp::logger().level();
  {
    Captured c;
    trainpp::logger().silence();
    trainpp::logger().critical("dropped");
    CHECK(c.messages.empty());
    trainpp::logger().unsilence();
    trainpp::logger().critical("kept");
    CHECK(c.messages.size() == 1);
    {
      trainpp::ScopedLoggerState inner;
      trainpp::logger().silence();
      trainpp::logger().set_level(LogLevel::error);
    }
    CHECK_FALSE(trainpp::logger().silenced());
    trainpp::logger().critical("kept again");
    CHECK(c.messages.size() == 2);  // the inner scope gave the sink back
  }
  CHECK(trainpp::logger().level() == before);
  CHECK_FALSE(trainpp::logger().sink());
}

TEST_CASE("get_process_log_level: log_level on a main process, log_level_replica elsewhere") {
  trainpp::ScopedLoggerState restore;
  trainpp::logger().set_level(LogLevel::warning);
  trainpp::TrainingArguments a;
  a.log_level = LogLevel::info;
  a.log_level_replica = LogLevel::error;
  {
    EnvVar rank("RANK", std::nullopt), local("LOCAL_RANK", std::nullopt);
    CHECK(a.process_index() == 0);
    CHECK(a.should_log());
    CHECK(a.get_process_log_level() == LogLevel::info);
  }
  {
    // The first process of the second node: a main process only with log_on_each_node (the default).
    Launched process(4, 0);
    CHECK(a.process_index() == 4);
    CHECK(a.local_process_index() == 0);
    CHECK(a.get_process_log_level() == LogLevel::info);
    a.log_on_each_node = false;
    CHECK_FALSE(a.should_log());
    CHECK(a.get_process_log_level() == LogLevel::error);
    a.log_on_each_node = true;
  }
  {
    Launched process(1, 1);
    CHECK(a.get_process_log_level() == LogLevel::error);
    a.log_level_replica = LogLevel::passive;  // passive: whatever the logger is at
    CHECK(a.get_process_log_level() == LogLevel::warning);
  }
  a.log_level = LogLevel::passive;
  CHECK(a.get_process_log_level() == LogLevel::warning);
}

TEST_CASE("a malformed launch environment is refused, not taken for rank 0 of 1") {
  trainpp::TrainingArguments a;
  {
    Launched process(0, 0, 2, 2);
    EnvVar rank("RANK", "one");
    CHECK(a.process_index() == 0);  // the logger still writes its messages
    CHECK_THROWS_WITH_AS(a.finalize(), doctest::Contains("the environment variable RANK must be a non-negative integer, got 'one'"),
                         trainpp::Error);
  }
  {
    Launched process(0, 0, 2, 2);
    EnvVar local("LOCAL_RANK", "1x");
    CHECK_THROWS_WITH_AS(a.finalize(), doctest::Contains("LOCAL_RANK must be a non-negative integer"), trainpp::Error);
  }
  {
    EnvVar rank("RANK", "2");  // no WORLD_SIZE: half a launcher's environment
    CHECK_THROWS_WITH_AS(a.finalize(), doctest::Contains("WORLD_SIZE is not set"), trainpp::Error);
  }
  Launched process(2, 0);
  CHECK_NOTHROW(a.finalize());
  CHECK(a.process_index() == 2);
}

TEST_CASE("the rank prefixes messages on processes other than the first") {
  trainpp::ScopedLoggerState restore;
  Launched process(3, 3);
  // The default sink writes to stderr; point stderr at a file for the moment.
  const auto path = std::filesystem::temp_directory_path() / fmt::format("trainpp-log-{}.txt", ::getpid());
  std::fflush(stderr);
  const int saved = ::dup(2);
  FILE* file = std::fopen(path.c_str(), "w");
  REQUIRE(file != nullptr);
  ::dup2(::fileno(file), 2);
  trainpp::warn("from a replica");
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::fclose(file);
  std::string text;
  {
    std::ifstream in(path);
    std::getline(in, text);
  }
  std::filesystem::remove(path);
  CHECK(text == "[rank 3] trainpp: warning: from a replica");
}

// ---- the Trainer and the logger --------------------------------------------------------------

struct TinyImpl : torch::nn::Module {
  torch::nn::Linear fc{2, 2};
  TinyImpl() { register_module("fc", fc); }
  trainpp::ModelOutput forward(const trainpp::Batch& b) {
    trainpp::ModelOutput out{.logits = fc(b.at("x"))};
    if (b.contains("labels")) out.loss = torch::nn::functional::cross_entropy(out.logits, b.at("labels"));
    return out;
  }
};
TORCH_MODULE(Tiny);

trainpp::TensorDataset tiny_data() {
  auto x = torch::randn({12, 2});
  return trainpp::TensorDataset{{"x", x}, {"labels", (x.select(1, 0) > 0).to(torch::kLong)}};
}

trainpp::TrainingArguments tiny_args() {
  trainpp::TrainingArguments a;
  a.output_dir = (std::filesystem::temp_directory_path() / fmt::format("trainpp-logging-test-{}", ::getpid())).string();
  a.disable_tqdm = true;
  a.per_device_train_batch_size = 4;
  a.max_steps = 3;
  a.save_strategy = trainpp::SaveStrategy::no;
  return a;
}

TEST_CASE("the Trainer sets the level from log_level and reports through the logger") {
  Captured c;
  trainpp::logger().set_level(LogLevel::warning);
  SUBCASE("log_level info: HF's training summary") {
    auto a = tiny_args();
    a.log_level = LogLevel::info;
    trainpp::Trainer trainer(Tiny{}, a, trainpp::train_dataset = tiny_data());
    CHECK(trainpp::logger().level() == LogLevel::info);
    trainer.train();
    CHECK(c.has("***** Running training *****"));
    CHECK(c.has("  Num examples = 12"));
    CHECK(c.has("  Total optimization steps = 3"));
    CHECK(c.has("  Number of trainable parameters = 6"));
  }
  SUBCASE("passive keeps the program's level: warning hides the summary") {
    trainpp::Trainer trainer(Tiny{}, tiny_args(), trainpp::train_dataset = tiny_data());
    trainer.train();
    CHECK_FALSE(c.has("Running training"));
  }
  SUBCASE("a replica uses log_level_replica") {
    Launched process(1, 1);
    auto a = tiny_args();
    a.log_level = LogLevel::debug;
    a.log_level_replica = LogLevel::critical;
    a.use_cpu = true;  // local rank 1 would ask for a second GPU on a machine with one
    // The default sharding slot would join the other 7 processes of this pretended launch: a slot that
    // joins nothing keeps the test to the logger.
    struct JoinsNothing : trainpp::SingleDevice {
      void configure(const trainpp::TrainingArguments&, torch::Device) const {}
    };
    trainpp::Trainer trainer(Tiny{}, a, trainpp::sharding = JoinsNothing{}, trainpp::train_dataset = tiny_data());
    CHECK(trainpp::logger().level() == LogLevel::critical);
  }
  std::error_code ec;
  std::filesystem::remove_all(tiny_args().output_dir, ec);
}

TEST_CASE("thousands separators as Python's {:,}") {
  CHECK(trainpp::detail::thousands(0) == "0");
  CHECK(trainpp::detail::thousands(999) == "999");
  CHECK(trainpp::detail::thousands(60000) == "60,000");
  CHECK(trainpp::detail::thousands(1234567) == "1,234,567");
  CHECK(trainpp::detail::thousands(-1000) == "-1,000");
}

}  // namespace logging_test
