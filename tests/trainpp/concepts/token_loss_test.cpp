// Token-level loss under gradient accumulation (concepts/token_loss.hpp): a tiny Llama that
// transformers made, fine-tuned by HF's Trainer and by trainpp on the same padded data with a short
// last window; every logged loss and grad_norm agree. The checkpoint trainpp writes loads in
// transformers with the logits trainpp computes.

#include <trainpp/concepts/token_loss.hpp>
#include <trainpp/trainpp.hpp>
#include <trainpp/models/llama.hpp>

#include <doctest/doctest.h>

#include "skip.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace token_loss_test {

namespace fs = std::filesystem;

constexpr std::int64_t num_batches = 10, batch_size = 2;

/// Runs the reference script; nullopt when it cannot run here (exit 77, or no interpreter).
std::optional<int> run_script(const std::string& arguments) {
#ifndef TRAINPP_PYTHON
  (void)arguments;
  return std::nullopt;
#else
  const fs::path script = fs::path(TRAINPP_SOURCE_DIR) / "tests/trainpp/concepts/token_loss_hf_trainer.py";
  const std::string command = fmt::format("'{}' '{}' {}", TRAINPP_PYTHON, script.string(), arguments);
  const int status = std::system(command.c_str());
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) return std::nullopt;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw trainpp::error("{} failed (status {})", command, status);
  return 0;
#endif
}

/// The model directory, data and HF log history, made once per build tree (again when the script changed).
std::optional<fs::path> reference_dir() {
#ifndef TRAINPP_PYTHON
  return std::nullopt;
#else
  const fs::path script = fs::path(TRAINPP_SOURCE_DIR) / "tests/trainpp/concepts/token_loss_hf_trainer.py";
  const fs::path dir = fs::path(TRAINPP_BINARY_DIR) / "token_loss_hf_trainer";
  const fs::path done = dir / "hf_log_history_smoothed.json";  // the script's last file
  if (fs::exists(done) && fs::last_write_time(done) >= fs::last_write_time(script)) return dir;
  fs::remove_all(dir);
  if (!run_script(fmt::format("train '{}'", dir.string()))) return std::nullopt;
  return dir;
#endif
}

/// The rows of data.safetensors in order, each padded to the longest row of its batch.
struct Rows {
  std::vector<trainpp::Batch> rows;
  explicit Rows(const fs::path& file) {
    const auto data = trainpp::load_safetensors(file);
    auto tensor = [&](const std::string& name) -> const torch::Tensor& {
      for (const auto& [key, value] : data.tensors)
        if (key == name) return value;
      throw trainpp::error("{} has no tensor {}", file.string(), name);
    };
    for (std::int64_t b = 0; b < num_batches; ++b)
      for (std::int64_t r = 0; r < batch_size; ++r)
        rows.push_back(trainpp::Batch{{"input_ids", tensor(fmt::format("input_ids.{}", b))[r]},
                                      {"attention_mask", tensor(fmt::format("attention_mask.{}", b))[r]},
                                      {"labels", tensor(fmt::format("labels.{}", b))[r]}});
  }
  [[nodiscard]] std::size_t size() const { return rows.size(); }
  [[nodiscard]] trainpp::Batch get(std::size_t i) const { return rows.at(i); }
};

struct ScratchDir {
  fs::path path = fs::temp_directory_path() / fmt::format("trainpp-token-loss-{}", ::getpid());
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

trainpp::TrainingArguments arguments_of(const nlohmann::json& flags, const fs::path& out,
                                        std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{"--output_dir", out.string(), "--report_to", "none", "--use_cpu", "--disable_tqdm", "true"};
  for (const auto& [k, v] : flags.items()) {
    argv.push_back("--" + k);
    argv.push_back(v.is_string() ? v.get<std::string>() : v.dump());
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  return std::get<0>(trainpp::parse_args_into<trainpp::TrainingArguments>(argv));
}

trainpp::LlamaForCausalLM load_reference_model(const fs::path& dir) {
  trainpp::LlamaForCausalLM model(trainpp::LlamaConfig::from_json(trainpp::read_json_file(dir / "model/config.json")));
  trainpp::load_model(*model, dir / "model");  // strict: HF's names
  return model;
}

/// The logged training losses and grad norms (entries with a "loss").
std::vector<std::pair<double, double>> losses_of(const nlohmann::json& history) {
  std::vector<std::pair<double, double>> out;
  for (const auto& entry : history)
    if (entry.contains("loss")) out.emplace_back(entry["loss"].get<double>(), entry["grad_norm"].get<double>());
  return out;
}

/// The model's own mean loss through a loss policy: what a model without a token-level loss gets
/// (each micro-batch's mean divided by the window size).
struct MeanLoss {
  template <class Output, class B>
  torch::Tensor operator()(const Output& outputs, const B&) const {
    return outputs.loss;
  }
};

}  // namespace token_loss_test

namespace token_loss_test {

/// Fine-tunes the reference Llama on the reference rows with the flags of `reference_file` (the HF run's)
/// and checks every logged loss and grad_norm, and total_flos, against HF's.
void check_fine_tuning_against(const fs::path& dir, const std::string& reference_file) {
  const auto reference = trainpp::read_json_file(dir / reference_file);
  const auto expected = losses_of(reference["log_history"]);
  REQUIRE(expected.size() == 8);  // 2 epochs of windows 3, 3, 3, 1

  torch::set_num_threads(1);
  ScratchDir scratch;
  const Rows rows(dir / "data.safetensors");
  auto model = load_reference_model(dir);
  auto args = arguments_of(reference["flags"], scratch.path, {"--save_strategy", "no"});
  trainpp::Trainer trainer(model, args, trainpp::train_dataset = rows);
  trainer.train();
  const auto actual = losses_of(trainer.state().log_history);
  REQUIRE(actual.size() == expected.size());
  double worst_loss = 0, worst_norm = 0;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    worst_loss = std::max(worst_loss, std::abs(actual[i].first / expected[i].first - 1));
    worst_norm = std::max(worst_norm, std::abs(actual[i].second / expected[i].second - 1));
  }
  MESSAGE("largest relative difference to HF: loss " << worst_loss << ", grad_norm " << worst_norm);
  for (std::size_t i = 0; i < actual.size(); ++i) {
    INFO("step " << i + 1 << ": loss " << actual[i].first << " vs HF " << expected[i].first << ", grad_norm "
                 << actual[i].second << " vs HF " << expected[i].second);
    CHECK(actual[i].first == doctest::Approx(expected[i].first).epsilon(1e-4));
    CHECK(actual[i].second == doctest::Approx(expected[i].second).epsilon(1e-4));
  }
  // HF's estimate, 6 x input tokens x parameters outside the embeddings, summed over every micro-batch.
  REQUIRE(reference["total_flos"].get<double>() > 0);
  CHECK(trainer.state().total_flos == reference["total_flos"].get<double>());
}

}  // namespace token_loss_test

TEST_CASE("fine-tuning a transformers Llama: every logged loss and grad_norm equal HF Trainer's under accumulation" *
          doctest::test_suite("integration")) {
  const auto dir = token_loss_test::reference_dir();
  if (!dir) TRAINPP_SKIP_TEST("transformers cannot be imported here, or there is no interpreter");
  token_loss_test::check_fine_tuning_against(*dir, "hf_log_history.json");
}

TEST_CASE("label smoothing on a token-level loss: every logged loss and grad_norm equal HF Trainer's" *
          doctest::test_suite("integration")) {
  // --label_smoothing_factor 0.1: the labels out of the forward, shifted for the causal LM, the smoothed
  // sums divided by the window's label tokens, and no division by the window size.
  const auto dir = token_loss_test::reference_dir();
  if (!dir) TRAINPP_SKIP_TEST("transformers cannot be imported here, or there is no interpreter");
  token_loss_test::check_fine_tuning_against(*dir, "hf_log_history_smoothed.json");
}

TEST_CASE("the per-micro-batch mean divided by the window is not what HF logs for this data" *
          doctest::test_suite("integration")) {
  // The control of the case above: the data's micro-batches score different numbers of tokens, so
  // the old rule (a loss policy of the model's mean) logs other numbers from the first step on.
  using namespace token_loss_test;
  const auto dir = reference_dir();
  if (!dir) TRAINPP_SKIP_TEST("transformers cannot be imported here, or there is no interpreter");
  const auto reference = trainpp::read_json_file(*dir / "hf_log_history.json");
  const auto expected = losses_of(reference["log_history"]);

  torch::set_num_threads(1);
  ScratchDir scratch;
  const Rows rows(*dir / "data.safetensors");
  auto model = load_reference_model(*dir);
  auto args = arguments_of(reference["flags"], scratch.path, {"--save_strategy", "no", "--max_steps", "1"});
  trainpp::Trainer trainer(model, args, trainpp::train_dataset = rows, trainpp::loss = MeanLoss{});
  trainer.train();
  const auto actual = losses_of(trainer.state().log_history);
  REQUIRE(actual.size() == 1);
  INFO("mean rule " << actual[0].first << " vs HF " << expected[0].first);
  CHECK(std::abs(actual[0].first - expected[0].first) > 1e-3 * expected[0].first);
}

TEST_CASE("the fine-tuned model's checkpoints and save_model load in transformers with equal logits, and resume" *
          doctest::test_suite("integration")) {
  using namespace token_loss_test;
  const auto dir = reference_dir();
  if (!dir) TRAINPP_SKIP_TEST("transformers cannot be imported here, or there is no interpreter");
  const auto reference = trainpp::read_json_file(*dir / "hf_log_history.json");
  const auto expected = losses_of(reference["log_history"]);

  torch::set_num_threads(1);
  ScratchDir scratch;
  const Rows rows(*dir / "data.safetensors");
  auto model = load_reference_model(*dir);
  auto args = arguments_of(reference["flags"], scratch.path / "run", {"--save_strategy", "steps", "--save_steps", "4"});
  trainpp::Trainer trainer(model, args, trainpp::train_dataset = rows);
  trainer.train();
  trainer.save_model();
  for (const auto& name : {"run/checkpoint-4", "run/checkpoint-8", "run"})
    for (const auto& file : {"config.json", "generation_config.json", "model.safetensors"}) {
      INFO(name << "/" << file);
      CHECK(fs::is_regular_file(scratch.path / name / file));
    }
  CHECK_FALSE(fs::exists(scratch.path / "run/.save_pretrained"));

  // The trained model's logits, and transformers' of the final checkpoint and of save_model's directory.
  model->eval();
  const auto& batch = rows.rows;
  const auto input_ids = torch::stack({batch[2].at("input_ids"), batch[3].at("input_ids")});
  const auto attention_mask = torch::stack({batch[2].at("attention_mask"), batch[3].at("attention_mask")});
  trainpp::save_safetensors(scratch.path / "inputs.safetensors",
                            {{"input_ids", input_ids}, {"attention_mask", attention_mask}});
  torch::Tensor ours;
  {
    torch::NoGradGuard no_grad;
    ours = model->forward(trainpp::Batch{{"input_ids", input_ids}, {"attention_mask", attention_mask}}).logits;
  }
  const auto real = attention_mask.to(torch::kBool);
  for (const auto& name : {"run/checkpoint-8", "run"}) {
    INFO(name);
    const auto out = scratch.path / "hf_logits.safetensors";
    REQUIRE(run_script(fmt::format("logits '{}' '{}' '{}'", (scratch.path / name).string(),
                                   (scratch.path / "inputs.safetensors").string(), out.string())));
    const auto theirs = trainpp::load_safetensors(out).tensors.at(0).second;
    REQUIRE(theirs.sizes() == ours.sizes());
    const double difference = (theirs.index({real}) - ours.index({real})).abs().max().item<double>();
    INFO("largest logit difference " << difference);
    CHECK(difference <= 1e-5);
  }

  // Resuming from the checkpoint that config.json now sits in continues as the uninterrupted run.
  auto resumed_model = load_reference_model(*dir);
  auto resumed_args = arguments_of(reference["flags"], scratch.path / "run", {"--save_strategy", "no", "--save_steps", "4"});
  trainpp::Trainer resumed(resumed_model, resumed_args, trainpp::train_dataset = rows);
  resumed.train((scratch.path / "run/checkpoint-4").string());
  const auto after = losses_of(resumed.state().log_history);
  REQUIRE(after.size() == expected.size());
  for (std::size_t i = 4; i < after.size(); ++i) {
    INFO("step " << i + 1 << ": loss " << after[i].first << " vs HF " << expected[i].first);
    CHECK(after[i].first == doctest::Approx(expected[i].first).epsilon(1e-4));
    CHECK(after[i].second == doctest::Approx(expected[i].second).epsilon(1e-4));
  }
}
