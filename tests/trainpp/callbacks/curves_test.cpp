// TrainingCurves and MetricsLog: the picture at the end of training (its panels, one polyline per
// series with a point per logged value, escaped names) and the JSON-lines log (one line per log).

#include <trainpp/callbacks/curves.hpp>
#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <random>
#include <regex>
#include <sstream>

#include <unistd.h>

namespace curves_test {

namespace fs = std::filesystem;

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

/// The number of points in the polyline of `series`.
std::size_t points_of(const std::string& svg, const std::string& series) {
  const std::regex polyline("<polyline data-series=\"" + series + "\"[^>]* points=\"([^\"]*)\"");
  std::smatch m;
  if (!std::regex_search(svg, m, polyline)) return 0;
  std::istringstream in(m[1].str());
  std::size_t n = 0;
  for (std::string point; in >> point;) ++n;
  return n;
}

TEST_CASE("training_curves_svg draws a panel per kind of value and a point per logged value") {
  nlohmann::json history = nlohmann::json::array();
  for (int step = 1; step <= 6; ++step)
    history.push_back({{"loss", 1.0 / step}, {"grad_norm", 2.0}, {"learning_rate", 1e-3 * (7 - step)}, {"epoch", step / 6.0},
                       {"step", step}});
  history.push_back({{"eval_loss", 0.5}, {"eval_accuracy", 0.8}, {"eval_runtime", 1.5}, {"eval_samples_per_second", 99.0},
                     {"epoch", 0.5}, {"step", 3}});
  history.push_back({{"eval_loss", 0.4}, {"eval_accuracy", 0.85}, {"eval_a<b", std::nan("")}, {"epoch", 1.0}, {"step", 6}});
  history.push_back({{"train_runtime", 3.0}, {"train_loss", 0.4}, {"epoch", 1.0}, {"step", 6}});  // the summary: no point
  const auto svg = trainpp::training_curves_svg(history, "run <1>");
  CHECK(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  CHECK(svg.ends_with("</svg>\n"));
  CHECK(svg.find("run &lt;1&gt;") != std::string::npos);
  CHECK(count(svg, "<g class=\"panel\"") == 4);  // loss, learning_rate, grad_norm, evaluation metrics
  CHECK(points_of(svg, "loss") == 6);
  CHECK(points_of(svg, "eval_loss") == 2);
  CHECK(points_of(svg, "eval_accuracy") == 2);
  CHECK(points_of(svg, "learning_rate") == 6);
  CHECK(points_of(svg, "eval_runtime") == 0);  // speed and runtime are not curves
  CHECK(svg.find("train_loss") == std::string::npos);
  CHECK(svg.find("eval_a&lt;b") == std::string::npos);  // only non-finite values: no series at all
  CHECK(count(svg, "<circle") == 6 + 2 + 2 + 6 + 6);
  CHECK(trainpp::training_curves_svg(nlohmann::json::array()).find("nothing was logged") != std::string::npos);
}

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

TEST_CASE("report_to curves writes training_curves.svg, and jsonl one metrics line per log") {
  const fs::path out = fs::temp_directory_path() / fmt::format("trainpp-curves-{}-{}", ::getpid(), std::random_device{}());
  const trainpp::TensorDataset data{{"x", torch::randn({16, 2})}, {"labels", torch::zeros({16}, torch::kLong)}};
  trainpp::TrainingArguments args;
  args.output_dir = out.string();
  args.report_to = {"jsonl", "curves"};
  args.max_steps = 6;
  args.logging_steps = 2;
  args.eval_strategy = trainpp::IntervalStrategy::steps;
  args.eval_steps = 3;
  args.save_strategy = trainpp::SaveStrategy::no;
  args.disable_tqdm = true;
  trainpp::Trainer trainer(Net{}, args, trainpp::train_dataset = data, trainpp::eval_dataset = data);
  trainer.train();
  const auto svg = trainpp::read_file(out / "training_curves.svg");
  CHECK(points_of(svg, "loss") == 3);
  CHECK(points_of(svg, "eval_loss") == 2);

  std::istringstream lines(trainpp::read_file(out / "metrics.jsonl"));
  std::vector<nlohmann::json> records;
  for (std::string line; std::getline(lines, line);) records.push_back(nlohmann::json::parse(line));
  REQUIRE(records.size() == trainer.state().log_history.size());
  for (std::size_t i = 0; i < records.size(); ++i) CHECK(records[i] == trainer.state().log_history[i]);
  fs::remove_all(out);
}

}  // namespace curves_test
