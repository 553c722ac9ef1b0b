// The command line: HF's flag names and value forms, a JSON arguments file, and clear errors.

#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

namespace cli_test {

using trainpp::TrainingArguments;

TrainingArguments parse(std::vector<std::string> argv) {
  return std::get<0>(trainpp::parse_args_into<TrainingArguments>(argv));
}

TEST_CASE("an HF command line carries over") {
  const auto a = parse({"--learning_rate", "2e-5", "--num_train_epochs", "3", "--output_dir", "out", "--do_train",
                        "--eval_strategy", "steps", "--eval_steps", "100", "--lr_scheduler_type", "cosine",
                        "--lr_scheduler_kwargs", R"({"num_cycles": 2})", "--label_names", "start", "end",
                        "--no_dataloader_pin_memory", "--warmup_steps=0.1", "--max_grad_norm", "0",
                        "--logging_first_step", "false", "--data_seed", "7", "--optim", "sgd"});
  CHECK(a.learning_rate == 2e-5);
  CHECK(a.num_train_epochs == 3);
  CHECK(a.output_dir == "out");
  CHECK(a.do_train);
  CHECK(a.eval_strategy == trainpp::IntervalStrategy::steps);
  CHECK(*a.eval_steps == 100);
  CHECK(a.lr_scheduler_type == trainpp::SchedulerType::cosine);
  CHECK(a.lr_scheduler_kwargs["num_cycles"] == 2);
  CHECK(a.label_names == std::vector<std::string>{"start", "end"});
  CHECK_FALSE(a.dataloader_pin_memory);
  CHECK(a.warmup_steps == 0.1);
  CHECK(a.max_grad_norm == 0);
  CHECK_FALSE(a.logging_first_step);
  CHECK(*a.data_seed == 7);
  CHECK(a.optim == trainpp::OptimizerName::sgd);
}

TEST_CASE("HF's defaults and derived values") {
  const auto a = parse({"--eval_strategy", "steps", "--logging_steps", "50", "--load_best_model_at_end",
                        "--save_steps", "100"});
  CHECK(a.per_device_train_batch_size == 8);
  CHECK(a.learning_rate == 5e-5);
  CHECK(a.optim == trainpp::OptimizerName::adamw_torch_fused);
  CHECK(*a.eval_steps == 50);                        // falls back to logging_steps
  CHECK(*a.metric_for_best_model == "loss");         // load_best_model_at_end's default metric
  CHECK_FALSE(*a.greater_is_better);                 // a loss: lower is better
  CHECK(a.output_dir == "trainer_output");
}

TEST_CASE("bad flags and values name the problem") {
  CHECK_THROWS_WITH_AS(parse({"--learning_rat", "1"}), doctest::Contains("did you mean --learning_rate?"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--learning_rate", "fast"}), doctest::Contains("argument --learning_rate: invalid float value: 'fast'"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--max_steps", "1.5"}), doctest::Contains("invalid int value"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--eval_strategy", "often"}), doctest::Contains("choose from no, steps, epoch"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--seed"}), doctest::Contains("--seed: expected a value"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--lr_scheduler_kwargs", "{num_cycles: 2}"}), doctest::Contains("invalid JSON value"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"extra"}), doctest::Contains("unexpected argument 'extra'"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--per_device_train_batch_size", "0"}), doctest::Contains("must be a positive number"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--bf16", "--fp16"}), doctest::Contains("fp16 and bf16"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--do_train", "maybe"}), doctest::Contains("unexpected argument 'maybe'"), trainpp::Error);
}

TEST_CASE("a JSON arguments file, with the command line winning") {
  const auto path = std::filesystem::temp_directory_path() / "trainpp_cli_test_args.json";
  {
    std::ofstream f(path);
    f << R"({"learning_rate": 0.001, "num_train_epochs": 2, "label_names": ["y"], "eval_strategy": "epoch"})";
  }
  const auto a = parse({path.string(), "--num_train_epochs", "4"});
  CHECK(a.learning_rate == 0.001);
  CHECK(a.num_train_epochs == 4);
  CHECK(a.label_names == std::vector<std::string>{"y"});
  CHECK(a.eval_strategy == trainpp::IntervalStrategy::epoch);
  {
    std::ofstream f(path);
    f << R"({"learning_rate": "high"})";
  }
  CHECK_THROWS_WITH_AS(parse({path.string()}), doctest::Contains("expected a number"), trainpp::Error);
  {
    std::ofstream f(path);
    f << R"({"learning_rate": 0.1,)";
  }
  CHECK_THROWS_WITH_AS(parse({path.string()}), doctest::Contains("is not valid JSON"), trainpp::Error);
  std::filesystem::remove(path);
}

struct MyArgs {
  std::string data_dir = "data";
  int64_t hidden = 16;
};
template <class V>
void visit_fields(MyArgs& a, V&& v) {
  v(trainpp::FieldInfo{"data_dir", "where the data is"}, a.data_dir);
  v(trainpp::FieldInfo{"hidden", "hidden width"}, a.hidden);
}

TEST_CASE("a user's own argument struct parses beside TrainingArguments") {
  auto [mine, args] = trainpp::parse_args_into<MyArgs, TrainingArguments>({"--hidden", "64", "--seed", "3"});
  CHECK(mine.hidden == 64);
  CHECK(mine.data_dir == "data");
  CHECK(args.seed == 3);
}

TEST_CASE("--help lists the arguments and asks to exit") {
  CHECK_THROWS_AS(parse({"--help"}), trainpp::HelpRequested);
}

TEST_CASE("training_args.json round-trips through the parser") {
  auto a = parse({"--learning_rate", "0.3", "--label_names", "a", "b", "--eval_strategy", "epoch"});
  const auto j = trainpp::args_json(a);
  CHECK(j["learning_rate"] == 0.3);
  CHECK(j["eval_strategy"] == "epoch");
  CHECK(j["resume_from_checkpoint"].is_null());
  const auto path = std::filesystem::temp_directory_path() / "trainpp_cli_roundtrip.json";
  std::ofstream(path) << j.dump();
  const auto b = parse({path.string()});
  CHECK(trainpp::args_json(b) == j);
  std::filesystem::remove(path);
}

}  // namespace cli_test
