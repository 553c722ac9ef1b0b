// The Trainer's entry points besides the loop and the evaluation loop (evaluation_test.cpp): metrics
// output, run(), a model factory, a replaced step policy, callbacks steering, and the errors for bad settings.

#include <trainpp/trainer.hpp>

#include "tiny_classifier.hpp"

#include <doctest/doctest.h>

#include <fstream>

#include <unistd.h>

#include <cstdio>
#include <filesystem>

namespace trainer_test {

using namespace tiny_classifier;

std::string capture(const std::function<void(std::FILE*)>& write) {
  std::FILE* f = std::tmpfile();
  write(f);
  std::rewind(f);
  std::string out;
  char buf[512];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, f)) out.append(buf, n);
  std::fclose(f);
  return out;
}

TEST_CASE("log_metrics prints like HF's Trainer.log_metrics") {
  const trainpp::Metrics m{{"eval_accuracy", 0.91234567}, {"eval_loss", 0.25}, {"eval_runtime", 75.1234},
                           {"eval_samples_per_second", 133.117}, {"eval_steps_per_second", 1.0},
                           {"epoch", 2.0}, {"total_flos", 3.5e12}};
  // Produced by transformers.trainer_pt_utils.log_metrics for the same dict.
  const std::string expected =
      "***** eval metrics *****\n"
      "  epoch                   =        2.0\n"
      "  eval_accuracy           =     0.9123\n"
      "  eval_loss               =       0.25\n"
      "  eval_runtime            = 0:01:15.12\n"
      "  eval_samples_per_second =    133.117\n"
      "  eval_steps_per_second   =        1.0\n"
      "  total_flos              =     3259GF\n";
  CHECK(capture([&](std::FILE* f) { trainpp::log_metrics("eval", m, f); }) == expected);
}

TEST_CASE("save_metrics writes {split}_results.json and merges all_results.json") {
  const auto dir = std::filesystem::temp_directory_path() / "trainpp_save_metrics_test";
  std::filesystem::remove_all(dir);
  trainpp::save_metrics(dir, "train", {{"train_loss", 0.5}});
  trainpp::save_metrics(dir, "eval", {{"eval_loss", 0.25}});
  const auto all = nlohmann::json::parse(trainpp::read_file(dir / "all_results.json"));
  CHECK(all["train_loss"] == 0.5);
  CHECK(all["eval_loss"] == 0.25);
  CHECK(nlohmann::json::parse(trainpp::read_file(dir / "eval_results.json")).size() == 1);
  std::filesystem::remove_all(dir);
}

/// HF's "override training_step" in C++: derive from DefaultStep, redeclare the member.
struct CountingStep : trainpp::DefaultStep {
  std::shared_ptr<int> calls = std::make_shared<int>(0);
  template <class Trainer, class B>
  torch::Tensor training_step(Trainer& trainer, const B& batch, std::int64_t window) {
    ++*calls;
    return trainpp::DefaultStep::training_step(trainer, batch, window);
  }
};

TEST_CASE("a model factory is called after seeding: the same initial weights whatever came before") {
  auto a = quiet_args();
  a.seed = 7;
  torch::manual_seed(1);
  trainpp::Trainer first([] { return Net{}; }, a, trainpp::train_dataset = data(8));
  static_assert(std::is_same_v<decltype(first)::model_type, Net>);
  (void)torch::randn({1000});  // whatever the program drew in between
  trainpp::Trainer second([] { return Net{}; }, a, trainpp::train_dataset = data(8));
  CHECK(torch::equal(first.model()->fc->weight, second.model()->fc->weight));
  a.seed = 8;
  trainpp::Trainer other([] { return Net{}; }, a, trainpp::train_dataset = data(8));
  CHECK_FALSE(torch::equal(first.model()->fc->weight, other.model()->fc->weight));
}

TEST_CASE("run() trains, saves the model and state, evaluates, and logs and saves both splits' metrics") {
  auto a = quiet_args();
  a.output_dir = (std::filesystem::temp_directory_path() / fmt::format("trainpp_trainer_run_{}", ::getpid())).string();
  std::filesystem::remove_all(a.output_dir);
  a.max_steps = 3;
  trainpp::Trainer trainer([] { return Net{}; }, a, trainpp::train_dataset = data(16), trainpp::eval_dataset = data(8));
  std::string printed;
  trainpp::Metrics metrics;
  {
    // log_metrics prints to stdout.
    std::fflush(stdout);
    const int saved = ::dup(1);
    std::FILE* f = std::tmpfile();
    ::dup2(::fileno(f), 1);
    metrics = trainer.run();
    std::fflush(stdout);
    ::dup2(saved, 1);
    ::close(saved);
    std::rewind(f);
    char buf[512];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, f)) printed.append(buf, n);
    std::fclose(f);
  }
  CHECK(trainer.state().global_step == 3);
  CHECK(metrics.count("train_loss") == 1);
  CHECK(metrics.count("eval_loss") == 1);
  CHECK(printed.find("***** train metrics *****") < printed.find("***** eval metrics *****"));
  CHECK(printed.find("***** eval metrics *****") != std::string::npos);
  const std::filesystem::path out = a.output_dir;
  for (const char* file : {"model.safetensors", "trainer_state.json", "train_results.json", "eval_results.json",
                           "all_results.json"})
    CHECK_MESSAGE(std::filesystem::exists(out / file), file);
  std::filesystem::remove_all(out);
}

TEST_CASE("a replaced step policy runs for every micro-batch") {
  auto args = quiet_args();
  args.per_device_train_batch_size = 4;
  args.gradient_accumulation_steps = 2;
  args.num_train_epochs = 2;
  CountingStep step;
  trainpp::Trainer trainer(Net{}, args, trainpp::train_dataset = data(12), trainpp::step = step);
  const auto out = trainer.train();
  CHECK(*step.calls == 6);      // 3 micro-batches per epoch, 2 epochs
  CHECK(out.global_step == 4);  // windows of 2 + 1 per epoch
}

TEST_CASE("bad settings are clear errors") {
  SUBCASE("an eval strategy without an eval dataset") {
    auto args = quiet_args();
    args.eval_strategy = trainpp::IntervalStrategy::steps;
    CHECK_THROWS_WITH_AS(trainpp::Trainer(Net{}, args, trainpp::train_dataset = data(4)),
                         doctest::Contains("didn't pass an eval_dataset"), trainpp::Error);
  }
  SUBCASE("a batch size of 0") {
    auto args = quiet_args();
    args.per_device_train_batch_size = 0;
    CHECK_THROWS_WITH_AS(trainpp::Trainer(Net{}, args, trainpp::train_dataset = data(4)),
                         doctest::Contains("per_device_train_batch_size must be a positive number"), trainpp::Error);
  }
  SUBCASE("training data that yields no batch") {
    auto args = quiet_args();
    args.per_device_train_batch_size = 8;
    args.dataloader_drop_last = true;
    trainpp::Trainer trainer(Net{}, args, trainpp::train_dataset = data(5));
    CHECK_THROWS_WITH_AS(trainer.train(), doctest::Contains("yields no batch"), trainpp::Error);
  }
  SUBCASE("bf16 with fp16") {
    auto args = quiet_args();
    args.bf16 = args.fp16 = true;
    CHECK_THROWS_AS(trainpp::Trainer(Net{}, args), trainpp::Error);
  }
  SUBCASE("load_best_model_at_end with strategies that do not line up") {
    auto args = quiet_args();
    args.load_best_model_at_end = true;
    args.eval_strategy = trainpp::IntervalStrategy::epoch;
    args.save_strategy = trainpp::SaveStrategy::steps;
    CHECK_THROWS_WITH_AS(args.finalize(), doctest::Contains("save and eval strategy to match"), trainpp::Error);
  }
}

TEST_CASE("callbacks steer the loop through TrainerControl") {
  struct StopAtThree {
    void on_step_end(const trainpp::TrainingArguments&, const trainpp::TrainerState& s, trainpp::TrainerControl& c) {
      if (s.global_step == 3) c.should_training_stop = true;
    }
  };
  struct ForceLog {
    void on_step_end(const trainpp::TrainingArguments&, const trainpp::TrainerState&, trainpp::TrainerControl& c) {
      c.should_log = true;
    }
  };
  auto args = quiet_args();
  args.per_device_train_batch_size = 2;
  args.num_train_epochs = 5;
  trainpp::Trainer trainer(Net{}, args, trainpp::train_dataset = data(8),
                           trainpp::callbacks = trainpp::callback_list(StopAtThree{}, ForceLog{}));
  const auto out = trainer.train();
  CHECK(out.global_step == 3);
  // One log per step (forced) plus the final train metrics.
  CHECK(trainer.state().log_history.size() == 4);
  CHECK(trainer.state().log_history[2]["step"] == 3);
}

/// Reaches the model, optimizer, scheduler and loader through the trainer (a local class could not
/// have the generic `auto& trainer` hooks).
struct Inspect {
  std::shared_ptr<std::vector<std::string>> seen = std::make_shared<std::vector<std::string>>();
  void on_train_begin(const trainpp::TrainingArguments&, const trainpp::TrainerState&, trainpp::TrainerControl&,
                      auto& trainer) {
    REQUIRE(trainer.train_dataloader() != nullptr);
    seen->push_back(fmt::format("batches {}", trainer.train_dataloader()->num_batches()));
  }
  void on_step_end(const trainpp::TrainingArguments&, const trainpp::TrainerState& s, trainpp::TrainerControl&,
                   auto& trainer) {
    const double lr = trainer.optimizer().param_groups().begin()->lr;
    const auto params = trainer.model()->parameters().size();
    seen->push_back(fmt::format("step {} lr {:.3g} params {} scheduler {}", s.global_step, lr, params,
                                trainer.lr_scheduler().state().is_null() ? "stateless" : "stateful"));
  }
};

TEST_CASE("a hook taking the trainer reaches the model, optimizer, scheduler and training loader") {
  auto args = quiet_args();
  args.per_device_train_batch_size = 2;
  args.max_steps = 2;
  args.learning_rate = 0.1;
  args.lr_scheduler_type = trainpp::SchedulerType::constant;
  Inspect inspect;
  trainpp::Trainer trainer(Net{}, args, trainpp::train_dataset = data(8),
                           trainpp::callbacks = trainpp::callback_list(inspect));
  CHECK(trainer.train_dataloader() == nullptr);
  trainer.train();
  CHECK(trainer.train_dataloader() == nullptr);  // only while training runs
  CHECK(*inspect.seen == std::vector<std::string>{"batches 4", "step 1 lr 0.1 params 2 scheduler stateful",
                                                 "step 2 lr 0.1 params 2 scheduler stateful"});
}

TEST_CASE("an output_dir that cannot be created fails before the first step") {
  const auto blocker = std::filesystem::temp_directory_path() / fmt::format("trainpp-blocker-{}", ::getpid());
  std::ofstream(blocker) << "a file where a directory should go";
  auto args = quiet_args();
  args.output_dir = (blocker / "out").string();
  struct CountSteps {
    std::shared_ptr<int> steps = std::make_shared<int>(0);
    void on_step_end(const trainpp::TrainingArguments&, const trainpp::TrainerState&, trainpp::TrainerControl&) { ++*steps; }
  };
  CountSteps counter;
  trainpp::Trainer trainer(Net{}, args, trainpp::train_dataset = data(8), trainpp::callbacks = trainpp::callback_list(counter));
  CHECK_THROWS_WITH_AS(trainer.train(), doctest::Contains("cannot create output_dir"), trainpp::Error);
  CHECK(*counter.steps == 0);
  std::filesystem::remove(blocker);
}

TEST_CASE("the trainer state serialises with HF's trainer_state.json keys") {
  trainpp::Trainer trainer(Net{}, quiet_args());
  const auto j = trainer.state_json();
  for (const auto* key : {"best_global_step", "best_metric", "best_model_checkpoint", "epoch", "eval_steps",
                          "global_step", "is_hyper_param_search", "is_local_process_zero", "is_world_process_zero",
                          "log_history", "logging_steps", "max_steps", "num_input_tokens_seen", "num_train_epochs",
                          "save_steps", "stateful_callbacks", "total_flos", "train_batch_size", "trial_name",
                          "trial_params"})
    CHECK_MESSAGE(j.contains(key), key);
  CHECK(j["stateful_callbacks"]["TrainerControl"]["args"].size() == 5);
}

}  // namespace trainer_test
