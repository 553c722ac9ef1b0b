// EarlyStopping: HF's patience and threshold semantics, its requirements (metric_for_best_model and
// an eval strategy), and its counter carried through a checkpoint by stateful_callbacks.

#include <trainpp/callbacks/early_stopping.hpp>
#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <memory>
#include <random>
#include <vector>

#include <unistd.h>

namespace early_stopping_test {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() / fmt::format("trainpp-early-stopping-{}-{}", ::getpid(), std::random_device{}());
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
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  auto x = torch::randn({n, 4}, gen);
  return trainpp::TensorDataset{{"x", x}, {"labels", (x.select(1, 0) > 0).to(torch::kLong)}};
}

/// compute_metrics returning a scripted "score" per evaluation: the i-th evaluation (counting from
/// `first`) gets scores[i].
struct ScriptedScore {
  std::vector<double> scores;
  std::shared_ptr<std::size_t> next = std::make_shared<std::size_t>(0);
  trainpp::Metrics operator()(const trainpp::EvalPrediction&) const {
    REQUIRE(*next < scores.size());
    return {{"score", scores[(*next)++]}};
  }
};

trainpp::TrainingArguments args_in(const fs::path& out) {
  trainpp::TrainingArguments a;
  a.output_dir = out.string();
  a.disable_tqdm = true;
  a.per_device_train_batch_size = 4;
  a.max_steps = 12;
  a.logging_steps = 100;
  a.eval_strategy = trainpp::IntervalStrategy::steps;
  a.eval_steps = 2;  // evaluations at steps 2, 4, 6, 8, 10, 12
  a.save_strategy = trainpp::SaveStrategy::no;
  a.metric_for_best_model = "score";
  return a;
}

std::vector<std::int64_t> eval_steps_of(const trainpp::TrainerState& state) {
  std::vector<std::int64_t> steps;
  for (const auto& e : state.log_history)
    if (e.contains("eval_score")) steps.push_back(e["step"].get<std::int64_t>());
  return steps;
}

TEST_CASE("EarlyStopping stops after `patience` evaluations without improvement") {
  TempDir dir;
  trainpp::ScopedLoggerState quiet;
  trainpp::logger().set_level(trainpp::LogLevel::error);
  // best: 0.5, 0.6 (improved), then 0.55 and 0.58 fail to beat 0.6: the second miss stops at step 8.
  trainpp::Trainer trainer(Net{}, args_in(dir.path), trainpp::train_dataset = data(24), trainpp::eval_dataset = data(8),
                           trainpp::compute_metrics = ScriptedScore{{0.5, 0.6, 0.55, 0.58, 0.7, 0.8}},
                           trainpp::callbacks = trainpp::callback_list(trainpp::EarlyStopping{.early_stopping_patience = 2}));
  const auto out = trainer.train();
  CHECK(out.global_step == 8);
  CHECK(eval_steps_of(trainer.state()) == std::vector<std::int64_t>{2, 4, 6, 8});
  CHECK(trainer.callbacks().get<trainpp::EarlyStopping>().early_stopping_patience_counter == 2);
  CHECK(*trainer.state().best_metric == 0.6);
}

TEST_CASE("an improvement must exceed the threshold, in the direction greater_is_better says") {
  TempDir dir;
  trainpp::ScopedLoggerState quiet;
  trainpp::logger().set_level(trainpp::LogLevel::error);
  SUBCASE("greater is better: +0.03 is not enough with threshold 0.05") {
    trainpp::Trainer trainer(Net{}, args_in(dir.path), trainpp::train_dataset = data(24), trainpp::eval_dataset = data(8),
                             trainpp::compute_metrics = ScriptedScore{{0.5, 0.53, 0.9, 0.95, 0.99, 1.0}},
                             trainpp::callbacks = trainpp::callback_list(trainpp::EarlyStopping{
                                 .early_stopping_patience = 1, .early_stopping_threshold = 0.05}));
    CHECK(trainer.train().global_step == 4);
  }
  SUBCASE("the same scores without a threshold run to the end") {
    trainpp::Trainer trainer(Net{}, args_in(dir.path), trainpp::train_dataset = data(24), trainpp::eval_dataset = data(8),
                             trainpp::compute_metrics = ScriptedScore{{0.5, 0.53, 0.9, 0.95, 0.99, 1.0}},
                             trainpp::callbacks = trainpp::callback_list(trainpp::EarlyStopping{.early_stopping_patience = 1}));
    CHECK(trainer.train().global_step == 12);
  }
  SUBCASE("a loss: lower is better") {
    auto a = args_in(dir.path);
    a.metric_for_best_model = "score_loss";  // a name ending in "loss": greater_is_better defaults to false
    trainpp::Trainer trainer(Net{}, a, trainpp::train_dataset = data(24), trainpp::eval_dataset = data(8),
                             trainpp::compute_metrics = [next = std::make_shared<int>(0)](const trainpp::EvalPrediction&) {
                               const double losses[] = {1.0, 0.8, 0.9, 0.5, 0.6, 0.7};
                               return trainpp::Metrics{{"score_loss", losses[(*next)++]}};
                             },
                             trainpp::callbacks = trainpp::callback_list(trainpp::EarlyStopping{.early_stopping_patience = 2}));
    // 1.0, 0.8 (better), 0.9 (miss 1), 0.5 (better: reset), 0.6 (miss 1), 0.7 (miss 2): stops at 12 anyway,
    // on its last evaluation.
    const auto out = trainer.train();
    CHECK(out.global_step == 12);
    CHECK(trainer.callbacks().get<trainpp::EarlyStopping>().early_stopping_patience_counter == 2);
    CHECK(*trainer.state().best_metric == 0.5);
  }
}

TEST_CASE("EarlyStopping needs metric_for_best_model and an eval strategy") {
  TempDir dir;
  trainpp::ScopedLoggerState quiet;
  trainpp::logger().set_level(trainpp::LogLevel::error);
  auto a = args_in(dir.path);
  a.metric_for_best_model.reset();
  CHECK_THROWS_WITH_AS(trainpp::Trainer(Net{}, a, trainpp::train_dataset = data(24), trainpp::eval_dataset = data(8),
                                        trainpp::callbacks = trainpp::callback_list(trainpp::EarlyStopping{})),
                       doctest::Contains("EarlyStopping requires metric_for_best_model"), trainpp::Error);
  a = args_in(dir.path);
  a.eval_strategy = trainpp::IntervalStrategy::no;
  CHECK_THROWS_WITH_AS(trainpp::Trainer(Net{}, a, trainpp::train_dataset = data(24), trainpp::eval_dataset = data(8),
                                        trainpp::callbacks = trainpp::callback_list(trainpp::EarlyStopping{})),
                       doctest::Contains("EarlyStopping requires an eval_strategy of steps or epoch"), trainpp::Error);
  a = args_in(dir.path);
  CHECK_THROWS_WITH_AS(trainpp::Trainer(Net{}, a, trainpp::train_dataset = data(24), trainpp::eval_dataset = data(8),
                                        trainpp::callbacks = trainpp::callback_list(trainpp::EarlyStopping{.early_stopping_patience = 0})),
                       doctest::Contains("early_stopping_patience must be at least 1"), trainpp::Error);
}

TEST_CASE("EarlyStopping warns without load_best_model_at_end, as HF does") {
  TempDir dir;
  trainpp::ScopedLoggerState restore;
  std::vector<std::string> warnings;
  trainpp::logger().set_sink([&](trainpp::LogLevel level, std::string_view text) {
    if (level == trainpp::LogLevel::warning) warnings.emplace_back(text);
  });
  trainpp::Trainer trainer(Net{}, args_in(dir.path), trainpp::train_dataset = data(24), trainpp::eval_dataset = data(8),
                           trainpp::compute_metrics = ScriptedScore{{0.5, 0.6, 0.7, 0.8, 0.9, 1.0}},
                           trainpp::callbacks = trainpp::callback_list(trainpp::EarlyStopping{.early_stopping_patience = 2}));
  trainer.train();
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("without load_best_model_at_end=True") != std::string::npos);
}

TEST_CASE("the patience counter survives a resume with restore_callback_states_from_checkpoint") {
  TempDir dir;
  trainpp::ScopedLoggerState quiet;
  trainpp::logger().set_level(trainpp::LogLevel::error);
  const std::vector<double> scores{0.5, 0.4, 0.45, 0.3, 0.2, 0.1};  // never better than the first
  auto a = args_in(dir.path);
  a.save_strategy = trainpp::SaveStrategy::steps;
  a.save_steps = 2;

  // Uninterrupted: misses at 4, 6, 8; patience 3 stops at step 8.
  {
    trainpp::Trainer trainer(Net{}, a, trainpp::train_dataset = data(24), trainpp::eval_dataset = data(8),
                             trainpp::compute_metrics = ScriptedScore{scores},
                             trainpp::callbacks = trainpp::callback_list(trainpp::EarlyStopping{.early_stopping_patience = 3}));
    CHECK(trainer.train().global_step == 8);
  }
  const auto saved = trainpp::read_json_file(dir.path / "checkpoint-6" / "trainer_state.json");
  const auto& entry = saved["stateful_callbacks"]["EarlyStoppingCallback"];
  CHECK(entry["args"]["early_stopping_patience"] == 3);
  CHECK(entry["args"]["early_stopping_threshold"] == 0.0);
  CHECK(entry["attributes"]["early_stopping_patience_counter"] == 2);
  CHECK(saved["stateful_callbacks"].contains("TrainerControl"));

  auto resume_from_6 = [&](bool restore) {
    auto r = a;
    r.resume_from_checkpoint = (dir.path / "checkpoint-6").string();
    r.restore_callback_states_from_checkpoint = restore;
    ScriptedScore rest{scores};
    *rest.next = 3;  // evaluations 2, 4 and 6 happened before the checkpoint
    // A fresh callback with another patience: restoring brings back the saved one too (HF rebuilds
    // the callback from the saved args).
    trainpp::Trainer trainer(Net{}, r, trainpp::train_dataset = data(24), trainpp::eval_dataset = data(8),
                             trainpp::compute_metrics = rest,
                             trainpp::callbacks = trainpp::callback_list(trainpp::EarlyStopping{.early_stopping_patience = 5}));
    const auto steps = trainer.train().global_step;
    return std::pair{steps, trainer.callbacks().get<trainpp::EarlyStopping>()};
  };
  SUBCASE("restored: stops where the uninterrupted run stopped") {
    const auto [steps, cb] = resume_from_6(true);
    CHECK(steps == 8);
    CHECK(cb.early_stopping_patience == 3);
    CHECK(cb.early_stopping_patience_counter == 3);
  }
  SUBCASE("not restored: the counter starts over and training runs on") {
    const auto [steps, cb] = resume_from_6(false);
    CHECK(steps == 12);
    CHECK(cb.early_stopping_patience == 5);
    CHECK(cb.early_stopping_patience_counter == 3);  // misses at 8, 10, 12
  }
}

TEST_CASE("a malformed saved state is refused, naming the file and the key") {
  trainpp::EarlyStopping cb;
  CHECK_THROWS_WITH_AS(cb.load_state({{"attributes", {{"early_stopping_patience_counter", "two"}}}}),
                       doctest::Contains("attributes.early_stopping_patience_counter must be a non-negative integer"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(cb.load_state({{"args", {{"early_stopping_patience", 0}}}}),
                       doctest::Contains("early_stopping_patience must be at least 1"), trainpp::Error);
  CHECK_THROWS_WITH_AS(cb.load_state({{"args", {{"early_stopping_threshold", -1}}}}),
                       doctest::Contains("early_stopping_threshold must be a number >= 0"), trainpp::Error);
  cb.load_state({{"args", {{"early_stopping_patience", 4}, {"early_stopping_threshold", nullptr}}},
                 {"attributes", {{"early_stopping_patience_counter", 2}}}});
  CHECK(cb.early_stopping_patience == 4);
  CHECK(cb.early_stopping_patience_counter == 2);
}

}  // namespace early_stopping_test
