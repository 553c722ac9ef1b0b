// report_to csv: output_dir/metrics.csv read back by Python's csv module holds every log_history entry,
// one row each, with the columns that appear mid-run (evaluation, the final summary) added to the
// header; a resumed run continues the file; fields that need quoting are quoted as RFC 4180 says.

#include <trainpp/callbacks/csv_log.hpp>
#include <trainpp/trainpp.hpp>

#include "skip.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <random>

#include <unistd.h>

namespace csv_log_test {

namespace fs = std::filesystem;

struct NetImpl : torch::nn::Module {
  torch::nn::Linear fc{2, 3};
  NetImpl() { register_module("fc", fc); }
  trainpp::ModelOutput forward(const trainpp::Batch& b) {
    trainpp::ModelOutput out{.logits = fc(b.at("x"))};
    out.loss = torch::nn::functional::cross_entropy(out.logits, b.at("labels"));
    return out;
  }
};
TORCH_MODULE(Net);

TEST_CASE("CsvLog quotes what CSV needs quoted and writes numbers exactly") {
  CHECK(trainpp::CsvLog::field(0.1) == "0.1");
  CHECK(trainpp::CsvLog::field(1e-300) == "1e-300");
  CHECK(trainpp::CsvLog::field(12) == "12");
  CHECK(trainpp::CsvLog::field(true) == "true");
  CHECK(trainpp::CsvLog::field(nullptr).empty());
  CHECK(trainpp::CsvLog::field("plain") == "plain");
  CHECK(trainpp::CsvLog::field("a,b") == "\"a,b\"");
  CHECK(trainpp::CsvLog::field("say \"hi\"") == "\"say \"\"hi\"\"\"");
  CHECK(trainpp::CsvLog::field("two\nlines") == "\"two\nlines\"");
}

TEST_CASE("report_to csv: every log a row, read back by Python's csv module" * doctest::test_suite("integration")) {
#ifndef TRAINPP_PYTHON
  TRAINPP_SKIP_TEST("needs a Python interpreter");
#else
  const fs::path out = fs::temp_directory_path() / fmt::format("trainpp-csv-log-{}-{}", ::getpid(), std::random_device{}());
  const trainpp::TensorDataset data{{"x", torch::randn({32, 2})}, {"labels", torch::randint(0, 3, {32})}};
  trainpp::TrainingArguments args;
  args.output_dir = out.string();
  args.report_to = {"csv"};
  args.max_steps = 6;
  args.logging_steps = 2;
  args.eval_strategy = trainpp::IntervalStrategy::steps;
  args.eval_steps = 3;
  args.save_strategy = trainpp::SaveStrategy::steps;
  args.save_steps = 4;
  args.disable_tqdm = true;
  nlohmann::json history = nlohmann::json::array();
  {
    trainpp::Trainer trainer(Net{}, args, trainpp::train_dataset = data, trainpp::eval_dataset = data);
    trainer.train();
    history = trainer.state().log_history;
  }
  {  // resumed from checkpoint-4 in the same output_dir: the file goes on with its own columns
    args.resume_from_checkpoint = "true";
    args.max_steps = 8;
    trainpp::Trainer trainer(Net{}, args, trainpp::train_dataset = data, trainpp::eval_dataset = data);
    trainer.train();
    const auto& resumed = trainer.state().log_history;
    // The resumed run logs what its own run appended after step 4 (log_history restored up to there).
    for (const auto& entry : resumed)
      if (entry.value("step", 0) > 4 || entry.contains("train_runtime")) history.push_back(entry);
  }
  const fs::path json = out / "read_back.json";
  const auto command = fmt::format(
      "'{}' -c 'import csv, json, sys; rows = list(csv.DictReader(open(sys.argv[1], newline=\"\"))); "
      "json.dump(rows, open(sys.argv[2], \"w\"))' '{}' '{}'",
      TRAINPP_PYTHON, (out / "metrics.csv").string(), json.string());
  const int status = std::system(command.c_str());
  REQUIRE((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  const auto rows = trainpp::read_json_file(json);
  REQUIRE(rows.is_array());
  // The rows: first run's logs (steps 2, 3 eval, 4, 6, 6 eval, summary), then the resumed run's
  // (6, 6 eval, 8, summary: it re-trains steps 5..8 from checkpoint-4).
  const auto& first_row = rows.at(0);
  CHECK(first_row.contains("eval_loss"));   // a column added mid-run is in the header
  CHECK(first_row.at("eval_loss") == "");   // and empty for rows before it appeared
  CHECK(first_row.contains("train_runtime"));
  std::size_t matched = 0;
  for (const auto& row : rows) {
    CAPTURE(row.dump());
    // Each row equals a log_history entry: same step and, for every value, the same number.
    bool found = false;
    for (const auto& entry : history) {
      if (std::to_string(entry.at("step").get<std::int64_t>()) != row.at("step").get<std::string>()) continue;
      bool same = true;
      for (const auto& [key, value] : entry.items()) {
        if (key == "step") continue;
        if (!row.contains(key) || row.at(key) == "") { same = false; break; }
        if (value.is_number() && std::stod(row.at(key).get<std::string>()) != value.get<double>()) same = false;
      }
      found = found || same;
    }
    CHECK(found);
    matched += found;
  }
  CHECK(matched == rows.size());
  CHECK(rows.size() >= 8);
  fs::remove_all(out);
#endif
}

}  // namespace csv_log_test
