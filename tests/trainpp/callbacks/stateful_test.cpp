// Stateful callbacks: their states in trainer_state.json's stateful_callbacks (HF's layout, a list
// for several callbacks of one name), handed back on a resume with
// restore_callback_states_from_checkpoint, unclaimed entries kept and warned about, malformed ones
// refused with the file and key named.

#include <trainpp/callbacks/stateful.hpp>
#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

namespace stateful_test {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() / fmt::format("trainpp-stateful-{}-{}", ::getpid(), std::random_device{}());
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

struct NetImpl : torch::nn::Module {
  torch::nn::Linear fc{4, 3};
  NetImpl() { register_module("fc", fc); }
  trainpp::ModelOutput forward(const trainpp::Batch& b) {
    trainpp::ModelOutput out{.logits = fc(b.at("x"))};
    if (b.contains("labels")) out.loss = torch::nn::functional::cross_entropy(out.logits, b.at("labels"));
    return out;
  }
};
TORCH_MODULE(Net);

trainpp::TensorDataset data(std::int64_t n) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(9);
  auto x = torch::randn({n, 4}, gen);
  return trainpp::TensorDataset{{"x", x}, {"labels", (x.select(1, 0) > 0).to(torch::kLong)}};
}

/// Counts optimizer steps, scaled by `weight` (a constructor argument, saved as HF saves them).
struct StepCounter {
  static constexpr std::string_view state_name = "StepCounter";
  std::int64_t weight = 1;
  std::int64_t total = 0;

  void on_step_end(const trainpp::TrainingArguments&, const trainpp::TrainerState&, trainpp::TrainerControl&) {
    total += weight;
  }
  [[nodiscard]] nlohmann::json state() const {
    return {{"args", {{"weight", weight}}}, {"attributes", {{"total", total}}}};
  }
  void load_state(const nlohmann::json& j) {
    const auto& t = j.at("attributes").at("total");
    if (!t.is_number_integer()) throw trainpp::error("attributes.total must be an integer, got {}", t.dump());
    weight = j.at("args").at("weight").get<std::int64_t>();
    total = t.get<std::int64_t>();
  }
};

trainpp::TrainingArguments args_in(const fs::path& out) {
  trainpp::TrainingArguments a;
  a.output_dir = out.string();
  a.disable_tqdm = true;
  a.per_device_train_batch_size = 4;
  a.max_steps = 6;
  a.logging_steps = 100;
  a.save_strategy = trainpp::SaveStrategy::steps;
  a.save_steps = 3;
  return a;
}

auto two_counters(std::int64_t w1, std::int64_t w2) {
  return trainpp::callback_list(StepCounter{.weight = w1}, StepCounter{.weight = w2});
}

TEST_CASE("stateful callbacks land in trainer_state.json as HF lays them out") {
  TempDir dir;
  trainpp::ScopedLoggerState quiet;
  trainpp::Trainer trainer(Net{}, args_in(dir.path), trainpp::train_dataset = data(24),
                           trainpp::callbacks = two_counters(1, 10));
  trainer.train();
  const auto saved = trainpp::read_json_file(dir.path / "checkpoint-3" / "trainer_state.json");
  const auto& sc = saved["stateful_callbacks"];
  REQUIRE(sc["StepCounter"].is_array());  // two callbacks of one name: a list, in callback order
  CHECK(sc["StepCounter"][0] == nlohmann::json{{"args", {{"weight", 1}}}, {"attributes", {{"total", 3}}}});
  CHECK(sc["StepCounter"][1] == nlohmann::json{{"args", {{"weight", 10}}}, {"attributes", {{"total", 30}}}});
  CHECK(sc["TrainerControl"]["args"]["should_save"] == true);  // saved while the save was under way
  // HF's own reader accepts the file: trainer_state.json's other fields are unchanged by this.
  CHECK(trainpp::read_trainer_state(dir.path / "checkpoint-3" / "trainer_state.json").global_step == 3);
}

TEST_CASE("a resume hands the states back only when restore_callback_states_from_checkpoint is set") {
  TempDir dir;
  trainpp::ScopedLoggerState quiet;
  trainpp::logger().set_level(trainpp::LogLevel::error);
  {
    trainpp::Trainer trainer(Net{}, args_in(dir.path), trainpp::train_dataset = data(24),
                             trainpp::callbacks = two_counters(1, 10));
    trainer.train();
  }
  auto resumed = [&](bool restore) {
    auto a = args_in(dir.path);
    a.resume_from_checkpoint = (dir.path / "checkpoint-3").string();
    a.restore_callback_states_from_checkpoint = restore;
    trainpp::Trainer trainer(Net{}, a, trainpp::train_dataset = data(24), trainpp::callbacks = two_counters(2, 20));
    trainer.train();
    auto& c = trainer.callbacks();
    return std::pair{c.template at<3>(), c.template at<4>()};  // after the three built-ins
  };
  SUBCASE("restored: the counts continue, with the saved weights") {
    const auto [first, second] = resumed(true);
    CHECK(first.weight == 1);
    CHECK(first.total == 6);
    CHECK(second.weight == 10);
    CHECK(second.total == 60);
  }
  SUBCASE("not restored: fresh callbacks") {
    const auto [first, second] = resumed(false);
    CHECK(first.total == 2 * 3);
    CHECK(second.total == 20 * 3);
  }
}

TEST_CASE("entries no callback claims are kept and warned about, malformed ones refused") {
  TempDir dir;
  trainpp::ScopedLoggerState restore;
  std::vector<std::string> warnings;
  trainpp::logger().set_level(trainpp::LogLevel::warning);
  trainpp::logger().set_sink([&](trainpp::LogLevel level, std::string_view text) {
    if (level == trainpp::LogLevel::warning) warnings.emplace_back(text);
  });
  {
    trainpp::Trainer trainer(Net{}, args_in(dir.path), trainpp::train_dataset = data(24),
                             trainpp::callbacks = two_counters(1, 10));
    trainer.train();
  }
  const auto state_file = dir.path / "checkpoint-3" / "trainer_state.json";
  auto a = args_in(dir.path);
  a.resume_from_checkpoint = (dir.path / "checkpoint-3").string();
  a.restore_callback_states_from_checkpoint = true;

  SUBCASE("a run without the callbacks") {
    trainpp::Trainer trainer(Net{}, a, trainpp::train_dataset = data(24));
    trainer.train();
    bool warned = false;
    for (const auto& w : warnings)
      warned |= w.find("Checkpoint included callbacks not included in current configuration. Ignoring. (StepCounter)") !=
                std::string::npos;
    CHECK(warned);
    // The next checkpoint still carries them: nothing saved is lost by a run that did not use it.
    const auto later = trainpp::read_json_file(dir.path / "checkpoint-6" / "trainer_state.json");
    CHECK(later["stateful_callbacks"]["StepCounter"][1]["attributes"]["total"] == 30);
  }
  SUBCASE("a malformed entry") {
    auto j = trainpp::read_json_file(state_file);
    j["stateful_callbacks"]["StepCounter"][0]["attributes"]["total"] = "three";
    trainpp::write_file_atomic(state_file, j.dump(2));
    trainpp::write_checkpoint_manifest(state_file.parent_path());  // edited on purpose: the reader is tested
    trainpp::Trainer trainer(Net{}, a, trainpp::train_dataset = data(24), trainpp::callbacks = two_counters(1, 10));
    CHECK_THROWS_WITH_AS(trainer.train(),
                         doctest::Contains("checkpoint-3/trainer_state.json: stateful_callbacks.StepCounter: "
                                           "attributes.total must be an integer, got \"three\""),
                         trainpp::Error);
  }
  SUBCASE("an entry that is not an object") {
    auto j = trainpp::read_json_file(state_file);
    j["stateful_callbacks"]["StepCounter"] = 7;
    trainpp::write_file_atomic(state_file, j.dump(2));
    trainpp::write_checkpoint_manifest(state_file.parent_path());  // edited on purpose: the reader is tested
    trainpp::Trainer trainer(Net{}, a, trainpp::train_dataset = data(24), trainpp::callbacks = two_counters(1, 10));
    CHECK_THROWS_WITH_AS(trainer.train(), doctest::Contains("stateful_callbacks.StepCounter must be an object"),
                         trainpp::Error);
  }
}

}  // namespace stateful_test
