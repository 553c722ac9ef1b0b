// The training loop against transformers' own Trainer: the same model, weights, data, order and
// arguments (tools/reference/gen_trainer_reference.py ran HF and recorded log_history and the final
// weights). Covers accumulation with a smaller last window, clipping with the pre-clip norm,
// scheduler stepping, decay groups, fused and foreach AdamW, SGD, shuffling and periodic evaluation,
// and the logging switches: logging_strategy epoch, logging_first_step, ratio-valued logging_steps,
// eval_delay, eval_on_start, evaluation per epoch, logging_nan_inf_filter on infinite losses. Then
// include_num_input_tokens_seen against HF's Trainer run beside the test (tokens_seen_hf_trainer.py).

#include <trainpp/loop.hpp>
#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include "skip.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace loop_test {

using nlohmann::json;

struct MlpImpl : torch::nn::Module {
  torch::nn::Linear hidden{4, 8};
  torch::nn::LayerNorm norm{torch::nn::LayerNormOptions({8})};
  torch::nn::Linear head{8, 3};
  MlpImpl() {
    register_module("hidden", hidden);
    register_module("norm", norm);
    register_module("head", head);
  }
  trainpp::ModelOutput forward(const trainpp::Batch& batch) {
    trainpp::ModelOutput out{.logits = head(torch::tanh(norm(hidden(batch.at("features")))))};
    if (batch.contains("labels")) out.loss = torch::nn::functional::cross_entropy(out.logits, batch.at("labels"));
    if (out.loss.defined() && batch.contains("poison")) {
      // An infinite loss with the finite cross-entropy gradient (the reference script's model does
      // the same): logging_nan_inf_filter's case without poisoning the weights.
      out.loss = out.loss + torch::where(batch.at("poison").any(), torch::tensor(INFINITY), torch::tensor(0.0f));
    }
    return out;
  }
};
TORCH_MODULE(Mlp);

/// Records every event with the global step it fired at, like the reference script's HF callback.
struct Recorder {
  std::shared_ptr<std::vector<std::pair<std::string, int64_t>>> events =
      std::make_shared<std::vector<std::pair<std::string, int64_t>>>();
  using A = trainpp::TrainingArguments;
  using S = trainpp::TrainerState;
  using C = trainpp::TrainerControl;
  void add(const char* name, const S& s) const { events->emplace_back(name, s.global_step); }
  void on_init_end(const A&, const S& s, C&) { add("on_init_end", s); }
  void on_train_begin(const A&, const S& s, C&) { add("on_train_begin", s); }
  void on_epoch_begin(const A&, const S& s, C&) { add("on_epoch_begin", s); }
  void on_step_begin(const A&, const S& s, C&) { add("on_step_begin", s); }
  void on_substep_end(const A&, const S& s, C&) { add("on_substep_end", s); }
  void on_pre_optimizer_step(const A&, const S& s, C&) { add("on_pre_optimizer_step", s); }
  void on_optimizer_step(const A&, const S& s, C&) { add("on_optimizer_step", s); }
  void on_step_end(const A&, const S& s, C&) { add("on_step_end", s); }
  void on_log(const A&, const S& s, C&, const json&) { add("on_log", s); }
  void on_evaluate(const A&, const S& s, C&, const trainpp::Metrics&) { add("on_evaluate", s); }
  void on_prediction_step(const A&, const S& s, C&) { add("on_prediction_step", s); }
  void on_save(const A&, const S& s, C&) { add("on_save", s); }
  void on_epoch_end(const A&, const S& s, C&) { add("on_epoch_end", s); }
  void on_train_end(const A&, const S& s, C&) { add("on_train_end", s); }
  void on_predict(const A&, const S& s, C&, const trainpp::Metrics&) { add("on_predict", s); }
};

json load_reference() {
  std::ifstream in(TRAINPP_TEST_DATA_DIR "/trainer/hf_loop_reference.json");
  REQUIRE(in.good());
  return json::parse(in);
}

torch::Tensor tensor_from(const json& values, std::vector<int64_t> shape, torch::Dtype dtype = torch::kFloat32) {
  if (dtype == torch::kLong) return torch::tensor(values.get<std::vector<int64_t>>(), torch::kLong).reshape(shape);
  return torch::tensor(values.get<std::vector<float>>(), torch::kFloat32).reshape(shape);
}

void load_weights(Mlp& model, const json& weights, const json& shapes) {
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) item.value().copy_(tensor_from(weights[item.key()], shapes[item.key()]));
}

/// The HF arguments of a case as command-line flags: exercises the parser on the way.
std::vector<std::string> flags_of(const json& args, const std::string& output_dir) {
  std::vector<std::string> flags{"--output_dir", output_dir, "--report_to", "none", "--use_cpu", "--save_strategy",
                                 "no", "--disable_tqdm", "true"};
  for (const auto& [k, v] : args.items()) {
    flags.push_back("--" + k);
    flags.push_back(v.is_string() ? v.get<std::string>() : v.dump());
  }
  return flags;
}

void check_close(double actual, double expected, double rel, const std::string& what) {
  INFO(what << ": trainpp " << actual << " vs HF " << expected);
  CHECK(std::abs(actual - expected) <= rel * std::max(1.0, std::abs(expected)));
}

void run_case(const json& c) {
  INFO("case " << c["name"].get<std::string>());
  const auto n_train = static_cast<int64_t>(c["train_labels"].size());
  const auto n_eval = static_cast<int64_t>(c["eval_labels"].size());
  // Nothing is saved, but the run still draws its curves into output_dir: a scratch directory.
  const auto out_dir = std::filesystem::temp_directory_path() / fmt::format("trainpp-loop-test-{}", ::getpid());
  struct RemoveAfter {
    std::filesystem::path path;
    ~RemoveAfter() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  } remove_after{out_dir};
  auto args = std::get<0>(trainpp::parse_args_into<trainpp::TrainingArguments>(flags_of(c["args"], out_dir.string())));

  trainpp::TensorDataset train{{"features", tensor_from(c["train_features"], {n_train, 4})},
                               {"labels", tensor_from(c["train_labels"], {n_train}, torch::kLong)}};
  if (c.contains("train_poison") && !c["train_poison"].is_null())
    train = trainpp::TensorDataset{{"features", tensor_from(c["train_features"], {n_train, 4})},
                                   {"labels", tensor_from(c["train_labels"], {n_train}, torch::kLong)},
                                   {"poison", tensor_from(c["train_poison"], {n_train})}};
  trainpp::TensorDataset eval{{"features", n_eval ? tensor_from(c["eval_features"], {n_eval, 4}) : torch::zeros({1, 4})},
                              {"labels", n_eval ? tensor_from(c["eval_labels"], {n_eval}, torch::kLong)
                                                : torch::zeros({1}, torch::kLong)}};
  Mlp model;
  load_weights(model, c["initial_weights"], c["shapes"]);

  Recorder recorder;
  auto check = [&](auto& trainer) {
    auto result = trainer.train();
    const auto& ours = trainer.state().log_history;
    const auto& hf = c["log_history"];
    REQUIRE(ours.size() == hf.size());
    for (std::size_t i = 0; i < hf.size(); ++i) {
      INFO("log_history[" << i << "] trainpp " << ours[i].dump() << " HF " << hf[i].dump());
      CHECK(ours[i]["step"] == hf[i]["step"]);
      for (const auto& key : {"loss", "grad_norm", "learning_rate", "epoch", "eval_loss", "train_loss"}) {
        CHECK(ours[i].contains(key) == hf[i].contains(key));
        if (ours[i].contains(key) && hf[i].contains(key))
          check_close(ours[i][key].template get<double>(), hf[i][key].template get<double>(), 2e-5, key);
      }
      for (const auto& key : {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos",
                              "eval_runtime", "eval_samples_per_second", "eval_steps_per_second"})
        CHECK(ours[i].contains(key) == hf[i].contains(key));
    }
    CHECK(result.global_step == c["global_step"].get<int64_t>());
    check_close(result.training_loss, c["train_loss"].get<double>(), 2e-5, "train_loss");
    for (auto& item : trainer.model()->named_parameters()) {
      const auto& name = item.key();
      const auto p = item.value().cpu();
      const auto expected = tensor_from(c["final_weights"][name], c["shapes"][name]);
      INFO("final weight " << name << " max diff " << (p - expected).abs().max().template item<double>());
      CHECK(torch::allclose(p, expected, 1e-4, 1e-5));
    }
  };
  if (n_eval) {
    trainpp::Trainer trainer(model, args, trainpp::train_dataset = train, trainpp::eval_dataset = eval,
                             trainpp::callbacks = trainpp::callback_list(recorder));
    check(trainer);
    auto metrics = trainer.evaluate();
    check_close(metrics.at("eval_loss"), c["final_eval"]["eval_loss"].get<double>(), 2e-5, "final eval_loss");
    CHECK(metrics.count("epoch") == 1);
  } else {
    trainpp::Trainer trainer(model, args, trainpp::train_dataset = train,
                             trainpp::callbacks = trainpp::callback_list(recorder));
    check(trainer);
  }
  // Every event, in HF's order, at HF's global step.
  const auto& hf_events = c["events"];
  const auto& ours = *recorder.events;
  CHECK(ours.size() == hf_events.size());
  for (std::size_t i = 0; i < std::min(ours.size(), hf_events.size()); ++i) {
    INFO("event " << i << ": trainpp " << ours[i].first << "@" << ours[i].second << " HF "
                  << hf_events[i][0].get<std::string>() << "@" << hf_events[i][1].get<int64_t>());
    CHECK(ours[i].first == hf_events[i][0].get<std::string>());
    CHECK(ours[i].second == hf_events[i][1].get<int64_t>());
  }
}

TEST_CASE("the loop reproduces transformers' Trainer step by step" *
          doctest::test_suite("integration")) {
  const auto ref = load_reference();
  for (const auto& c : ref["cases"]) run_case(c);
}


/// Mean-pools the embeddings of the unpadded tokens: what it learns does not matter, only which tokens
/// each micro-batch holds.
struct TokenClassifierImpl : torch::nn::Module {
  torch::nn::Embedding embed{11, 4};
  torch::nn::Linear head{4, 2};
  TokenClassifierImpl() {
    register_module("embed", embed);
    register_module("head", head);
  }
  trainpp::ModelOutput forward(const trainpp::Batch& batch) {
    const auto mask = batch.at("attention_mask").unsqueeze(-1).to(torch::kFloat32);
    const auto pooled = (embed(batch.at("input_ids")) * mask).sum(1) / mask.sum(1);
    trainpp::ModelOutput out{.logits = head(pooled)};
    if (batch.contains("labels")) out.loss = torch::nn::functional::cross_entropy(out.logits, batch.at("labels"));
    return out;
  }
};
TORCH_MODULE(TokenClassifier);

TEST_CASE("include_num_input_tokens_seen counts as HF's Trainer: every log, evaluation and the end" *
          doctest::test_suite("integration")) {
#ifndef TRAINPP_PYTHON
  TRAINPP_SKIP_TEST("no Python interpreter to run transformers' Trainer");
#else
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / fmt::format("trainpp-tokens-seen-{}", ::getpid());
  struct RemoveAfter {
    fs::path path;
    ~RemoveAfter() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } remove_after{dir};
  const fs::path script = fs::path(TRAINPP_SOURCE_DIR) / "tests/trainpp/tokens_seen_hf_trainer.py";
  const int status = std::system(fmt::format("'{}' '{}' '{}' > /dev/null", TRAINPP_PYTHON, script.string(), dir.string()).c_str());
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) TRAINPP_SKIP_TEST("transformers cannot be imported");
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);

  const json data = json::parse(std::ifstream(dir / "data.json"));
  const auto rows = static_cast<int64_t>(data["labels"].size());
  const auto width = static_cast<int64_t>(data["input_ids"][0].size());
  const auto eval_rows = data["eval_rows"].get<int64_t>();
  auto flat = [](const json& nested) {
    std::vector<int64_t> out;
    for (const auto& row : nested)
      for (const auto& v : row) out.push_back(v.get<int64_t>());
    return out;
  };
  const auto input_ids = torch::tensor(flat(data["input_ids"])).reshape({rows, width});
  const auto attention_mask = torch::tensor(flat(data["attention_mask"])).reshape({rows, width});
  const auto labels = torch::tensor(data["labels"].get<std::vector<int64_t>>());
  trainpp::TensorDataset train{{"input_ids", input_ids}, {"attention_mask", attention_mask}, {"labels", labels}};
  trainpp::TensorDataset eval{{"input_ids", input_ids.slice(0, 0, eval_rows)},
                              {"attention_mask", attention_mask.slice(0, 0, eval_rows)},
                              {"labels", labels.slice(0, 0, eval_rows)}};

  for (const std::string mode : {"all", "non_padding"}) {
    INFO("include_num_input_tokens_seen " << mode);
    const json hf = json::parse(std::ifstream(dir / fmt::format("hf_log_history_{}.json", mode)));
    auto args = std::get<0>(trainpp::parse_args_into<trainpp::TrainingArguments>(
        {"--output_dir", (dir / ("trainpp_" + mode)).string(), "--per_device_train_batch_size", "3",
         "--per_device_eval_batch_size", "2", "--gradient_accumulation_steps", "2", "--num_train_epochs", "2",
         "--logging_steps", "1", "--eval_strategy", "steps", "--eval_steps", "2", "--save_strategy", "no",
         "--include_num_input_tokens_seen", mode, "--train_sampling_strategy", "sequential", "--use_cpu",
         "--report_to", "none", "--disable_tqdm", "true", "--seed", "3"}));
    trainpp::Trainer trainer(TokenClassifier{}, args, trainpp::train_dataset = std::ref(train),
                             trainpp::eval_dataset = std::ref(eval));
    trainer.train();
    const json& ours = trainer.state().log_history;
    REQUIRE(ours.size() == hf.size());
    for (std::size_t i = 0; i < hf.size(); ++i) {
      INFO("log_history[" << i << "]: trainpp " << ours[i].dump() << " HF " << hf[i].dump());
      CHECK(ours[i]["step"] == hf[i]["step"]);
      REQUIRE(ours[i].contains("num_input_tokens_seen"));
      CHECK(ours[i]["num_input_tokens_seen"].is_number_integer());
      CHECK(ours[i]["num_input_tokens_seen"] == hf[i]["num_input_tokens_seen"]);
      // A training log carries this run's token rate; evaluations and the final metrics do not.
      CHECK(ours[i].contains("train_tokens_per_second") == hf[i].contains("train_tokens_per_second"));
      CHECK(ours[i].contains("eval_loss") == hf[i].contains("eval_loss"));
    }
    CHECK(trainer.state().num_input_tokens_seen == hf.back()["num_input_tokens_seen"].get<int64_t>());
  }
  // HF spells `all` true and `no` false as well; the arguments keep the canonical names.
  const auto spelled = std::get<0>(trainpp::parse_args_into<trainpp::TrainingArguments>(
      {"--include_num_input_tokens_seen", "true"}));
  CHECK(spelled.include_num_input_tokens_seen == trainpp::TokenCounting::all);
  CHECK(trainpp::to_string(spelled.include_num_input_tokens_seen) == "all");
  CHECK_THROWS_WITH_AS(trainpp::parse_args_into<trainpp::TrainingArguments>({"--include_num_input_tokens_seen", "some"}),
                       doctest::Contains("invalid choice: 'some'"), trainpp::Error);
#endif
}

}  // namespace loop_test
