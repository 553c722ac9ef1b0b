// Seq2SeqTrainer: Seq2SeqTrainingArguments on the command line, generation_config.json files, the
// precedence of generation settings, HF's prediction_step with generation, and evaluate / predict
// feeding compute_metrics generated sequences.

#include <trainpp/data/tensor_dataset.hpp>
#include <trainpp/seq2seq.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

namespace seq2seq_test {

using trainpp::GenerationConfig;
using trainpp::Seq2SeqTrainingArguments;

constexpr std::int64_t vocab = 8, pad = 0, start = 1, eos = 2;

/// A model whose generation is known in advance: it copies the source tokens, then ends with eos.
/// Its forward gives a loss that depends only on the labels, so that both prediction paths can be
/// compared. The KV cache holds the decoded tokens (the decoding position is its length).
struct CopyModelImpl : torch::nn::Module {
  torch::Tensor scale;
  CopyModelImpl() { scale = register_parameter("scale", torch::tensor(10.0, torch::kFloat64)); }

  torch::Tensor encode(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
    return torch::one_hot(input_ids, vocab).to(torch::kFloat64) * attention_mask.unsqueeze(-1).to(torch::kFloat64);
  }
  torch::Tensor decode_step(const torch::Tensor& decoder_input_ids, const torch::Tensor& encoder_states,
                            const torch::Tensor&, trainpp::KVCache& cache) {
    if (cache.layers.empty()) cache.layers.resize(1);
    auto& layer = cache.layers[0];
    const auto past = layer.self_k.defined() ? layer.self_k.size(1) : 0;
    layer.self_k = layer.self_k.defined() ? torch::cat({layer.self_k, decoder_input_ids}, 1) : decoder_input_ids.clone();
    const auto n = decoder_input_ids.size(0);
    // On the inputs' device: the Trainer places the model and batches on a GPU when there is one.
    const auto end = torch::one_hot(torch::full({n}, eos, decoder_input_ids.options()), vocab).to(torch::kFloat64);
    std::vector<torch::Tensor> steps;
    for (std::int64_t t = 0; t < decoder_input_ids.size(1); ++t) {
      const auto p = past + t;
      auto target = p < encoder_states.size(1) ? encoder_states.select(1, p) : torch::zeros({n, vocab}, encoder_states.options());
      target = target + end * target.sum(-1, /*keepdim=*/true).eq(0).to(torch::kFloat64);
      steps.push_back(target * scale);
    }
    return torch::stack(steps, 1);
  }
  trainpp::ModelOutput forward(const trainpp::Batch& batch) {
    const auto& labels = batch.at("labels");
    const auto loss = (scale - 9.0).pow(2) * labels.ne(-100).to(torch::kFloat64).mean();
    return {loss, torch::one_hot(labels.clamp_min(0), vocab).to(torch::kFloat64)};
  }
};
TORCH_MODULE(CopyModel);

/// A copy model that also has HF's model.generation_config.
struct ConfiguredModelImpl : CopyModelImpl {
  GenerationConfig generation_config() const {
    GenerationConfig c;
    c.max_length = 15;
    c.num_beams = 2;
    c.decoder_start_token_id = start;
    c.eos_token_id = eos;
    c.pad_token_id = pad;
    return c;
  }
};
TORCH_MODULE(ConfiguredModel);

/// Sources of lengths 1..5 right-padded to 6, labels = the source then eos, padded with -100 to 7.
trainpp::TensorDataset copy_task(std::int64_t n) {
  auto input_ids = torch::zeros({n, 6}, torch::kInt64);
  auto attention_mask = torch::zeros({n, 6}, torch::kInt64);
  auto labels = torch::full({n, 7}, -100, torch::kInt64);
  for (std::int64_t i = 0; i < n; ++i) {
    const auto l = 1 + i % 5;
    const auto tokens = torch::arange(3, 3 + l, torch::kInt64).remainder(5) + 3;
    input_ids[i].narrow(0, 0, l).copy_(tokens);
    attention_mask[i].narrow(0, 0, l).fill_(1);
    labels[i].narrow(0, 0, l).copy_(tokens);
    labels[i][l] = eos;
  }
  return trainpp::TensorDataset{{"input_ids", input_ids}, {"attention_mask", attention_mask}, {"labels", labels}};
}

/// What generation must give for copy_task's example i, padded with pad to `width`.
torch::Tensor expected_sequence(std::int64_t i, std::int64_t width) {
  const auto l = 1 + i % 5;
  auto row = torch::full({width}, pad, torch::kInt64);
  row[0] = start;
  row.narrow(0, 1, l).copy_(torch::arange(3, 3 + l, torch::kInt64).remainder(5) + 3);
  row[l + 1] = eos;
  return row;
}

Seq2SeqTrainingArguments quiet_args() {
  Seq2SeqTrainingArguments a;
  a.output_dir = (std::filesystem::temp_directory_path() / "trainpp_seq2seq_test").string();
  a.disable_tqdm = true;
  a.per_device_eval_batch_size = 4;
  return a;
}

GenerationConfig copy_generation_config() {
  GenerationConfig c;
  c.decoder_start_token_id = start;
  c.eos_token_id = eos;
  c.pad_token_id = pad;
  return c;
}

std::filesystem::path write_file(const std::string& name, const std::string& text) {
  const auto dir = std::filesystem::temp_directory_path() / "trainpp_seq2seq_test_files";
  std::filesystem::create_directories(dir);
  const auto path = dir / name;
  std::ofstream(path) << text;
  return path;
}

/// The tokens of a row up to and including the first eos, without the start token when `generated`.
std::vector<std::int64_t> until_eos(const torch::Tensor& row, bool generated) {
  std::vector<std::int64_t> out;
  for (std::int64_t j = generated ? 1 : 0; j < row.size(0); ++j) {
    const auto token = row[j].item<std::int64_t>();
    out.push_back(token);
    if (token == eos) break;
  }
  return out;
}

/// compute_metrics that keeps what it received and scores exact matches: the generated sequence
/// (after the start token, up to eos) equals the labels (up to eos).
struct Recorder {
  std::shared_ptr<trainpp::EvalPrediction> seen = std::make_shared<trainpp::EvalPrediction>();
  trainpp::Metrics operator()(const trainpp::EvalPrediction& p) const {
    *seen = p;
    double matches = 0;
    for (std::int64_t i = 0; i < p.predictions.size(0); ++i)
      matches += until_eos(p.predictions[i], true) == until_eos(p.label_ids[i], false) ? 1 : 0;
    return {{"exact_match", matches / static_cast<double>(p.predictions.size(0))}};
  }
};

// ---- arguments ----------------------------------------------------------------------------------

TEST_CASE("Seq2SeqTrainingArguments take HF's flags beside TrainingArguments'") {
  const auto a = std::get<0>(trainpp::parse_args_into<Seq2SeqTrainingArguments>(
      {"--predict_with_generate", "--generation_max_length", "12", "--generation_num_beams", "3",
       "--generation_config", "gen/generation_config.json", "--learning_rate", "1e-3", "--sortish_sampler", "false"}));
  CHECK(a.predict_with_generate);
  CHECK(a.generation_max_length == 12);
  CHECK(a.generation_num_beams == 3);
  CHECK(a.generation_config == "gen/generation_config.json");
  CHECK(a.learning_rate == 1e-3);
  CHECK_FALSE(a.sortish_sampler);

  const auto defaults = std::get<0>(trainpp::parse_args_into<Seq2SeqTrainingArguments>({}));
  CHECK_FALSE(defaults.predict_with_generate);
  CHECK_FALSE(defaults.generation_max_length);
  CHECK_FALSE(defaults.generation_num_beams);
  CHECK_FALSE(defaults.generation_config);

  const auto file = write_file("args.json", R"({"predict_with_generate": true, "generation_num_beams": 4, "seed": 3})");
  const auto from_file = std::get<0>(trainpp::parse_args_into<Seq2SeqTrainingArguments>({file.string(), "--seed", "5"}));
  CHECK(from_file.predict_with_generate);
  CHECK(from_file.generation_num_beams == 4);
  CHECK(from_file.seed == 5);

  CHECK(trainpp::help_text<Seq2SeqTrainingArguments>("prog").find("--predict_with_generate") != std::string::npos);
  CHECK(trainpp::args_json(a)["generation_num_beams"] == 3);
}

TEST_CASE("bad Seq2SeqTrainingArguments are refused with the flag named") {
  auto parse = [](std::vector<std::string> argv) {
    return std::get<0>(trainpp::parse_args_into<Seq2SeqTrainingArguments>(argv));
  };
  CHECK_THROWS_WITH_AS(parse({"--generation_num_beams", "0"}), doctest::Contains("generation_num_beams must be at least 1"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--generation_max_length", "1"}), doctest::Contains("generation_max_length must be at least 2"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--generation_num_beam", "2"}), doctest::Contains("did you mean --generation_num_beams"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--generation_max_length", "ten"}), doctest::Contains("--generation_max_length"),
                       trainpp::Error);
}

// ---- generation_config.json ---------------------------------------------------------------------

TEST_CASE("a generation_config.json as transformers writes it loads with HF's keys") {
  // Written by transformers' GenerationConfig.save_pretrained, with some sampling keys at rest.
  const auto file = write_file("generation_config.json", R"({
  "_from_model_config": true,
  "decoder_start_token_id": 0,
  "early_stopping": "never",
  "eos_token_id": [1],
  "length_penalty": 0.6,
  "max_new_tokens": 32,
  "num_beams": 4,
  "pad_token_id": 0,
  "temperature": 0.7,
  "do_sample": false,
  "a_custom_entry": {"kept": "inert"},
  "transformers_version": "5.24.0"
})");
  for (const auto& path : {file, file.parent_path()}) {
    const auto c = GenerationConfig::from_file(path);
    CHECK(c.decoder_start_token_id == 0);
    CHECK(c.early_stopping == trainpp::EarlyStoppingMode::never);
    CHECK(c.eos_token_id == 1);
    CHECK(c.length_penalty == 0.6);
    CHECK(c.max_new_tokens == 32);
    CHECK_FALSE(c.max_length);
    CHECK(c.num_beams == 4);
    CHECK(c.pad_token_id == 0);
    CHECK(c.effective_max_length() == 33);
  }
  // Written by transformers itself (tools/reference/gen_generation_reference.py): save_pretrained's
  // file, through its directory, and the same config with every key (unset ones null).
  const std::filesystem::path saved = std::string(TRAINPP_TEST_DATA_DIR) + "/generation/saved_generation_config";
  for (const auto& path : {saved, saved / "generation_config_full.json"}) {
    const auto c = GenerationConfig::from_file(path);
    CAPTURE(path.string());
    CHECK(c.early_stopping == trainpp::EarlyStoppingMode::never);
    CHECK(c.eos_token_id == 1);
    CHECK(c.length_penalty == 0.6);
    CHECK(c.max_new_tokens == 32);
    CHECK_FALSE(c.max_length);
    CHECK(c.num_beams == 4);
    CHECK(c.pad_token_id == 0);
    CHECK(c.decoder_start_token_id == 0);
    CHECK(c.min_length == 0);
    CHECK(c.use_cache);
  }
  CHECK(GenerationConfig::from_json(nlohmann::json::parse(R"({"early_stopping": true})")).early_stopping ==
        trainpp::EarlyStoppingMode::enabled);
  CHECK(GenerationConfig::from_json(nlohmann::json::parse(R"({"early_stopping": false})")).early_stopping ==
        trainpp::EarlyStoppingMode::heuristic);
  const auto round_trip = GenerationConfig::from_json(GenerationConfig::from_file(file).to_json());
  CHECK(round_trip.to_json() == GenerationConfig::from_file(file).to_json());
}

TEST_CASE("a malformed generation_config.json is refused naming the file and the key") {
  auto refused = [](const std::string& name, const std::string& text, const std::string& message) {
    const auto file = write_file(name, text);
    CAPTURE(text);
    CHECK_THROWS_WITH_AS((void)GenerationConfig::from_file(file), doctest::Contains(file.string().c_str()), trainpp::Error);
    CHECK_THROWS_WITH_AS((void)GenerationConfig::from_file(file), doctest::Contains(message.c_str()), trainpp::Error);
  };
  refused("beams_text.json", R"({"num_beams": "four"})", "\"num_beams\": expected an integer");
  refused("beams_zero.json", R"({"num_beams": 0})", "num_beams must be at least 1");
  refused("early.json", R"({"early_stopping": "always"})", "\"early_stopping\": expected true, false or \"never\"");
  refused("eos_none.json", R"({"eos_token_id": []})", "expected a token id or a non-empty list of them");
  refused("sample.json", R"({"do_sample": "yes"})", "key \"do_sample\": expected a boolean");
  refused("repetition.json", R"({"repetition_penalty": 0})", "repetition_penalty must be a positive number");
  refused("dola.json", R"({"dola_layers": "high"})", "\"dola_layers\"");
  refused("syntax.json", R"({"num_beams": 4,})", "syntax.json");
  refused("array.json", R"([1, 2])", "must hold a JSON object");
  refused("negative.json", R"({"pad_token_id": -1})", "pad_token_id must be a token id");
  refused("max_new.json", R"({"max_new_tokens": 0})", "max_new_tokens must be greater than 0");
  CHECK_THROWS_WITH_AS((void)GenerationConfig::from_file("/nonexistent/generation_config.json"),
                       doctest::Contains("does not exist"), trainpp::Error);
}

// ---- precedence ---------------------------------------------------------------------------------

TEST_CASE("generation settings: overrides, then generation_max_length and generation_num_beams, then the config file or the model's") {
  SUBCASE("the model's generation_config when nothing else is set") {
    trainpp::Seq2SeqTrainer trainer(ConfiguredModel{}, quiet_args());
    const auto c = trainer.generation_config();
    CHECK(c.max_length == 15);
    CHECK(c.num_beams == 2);
    CHECK(trainer.step().generation_config.max_length == 15);
  }
  SUBCASE("generation_max_length and generation_num_beams over the model's") {
    auto args = quiet_args();
    args.generation_max_length = 9;
    args.generation_num_beams = 3;
    trainpp::Seq2SeqTrainer trainer(ConfiguredModel{}, args);
    CHECK(trainer.generation_config().max_length == 9);
    CHECK(trainer.generation_config().num_beams == 3);
    // An override of max_length or max_new_tokens sets generation_max_length aside.
    const auto with_new_tokens = trainer.generation_config({.max_new_tokens = 4});
    CHECK(with_new_tokens.max_length == 15);
    CHECK(with_new_tokens.max_new_tokens == 4);
    CHECK(with_new_tokens.effective_max_length() == 5);
    CHECK(with_new_tokens.num_beams == 3);
    const auto overridden = trainer.generation_config({.max_length = 6, .num_beams = 4});
    CHECK(overridden.max_length == 6);
    CHECK(overridden.num_beams == 4);
  }
  SUBCASE("the args' generation_config file replaces the model's") {
    auto args = quiet_args();
    args.generation_config = write_file("replacing.json", R"({"num_beams": 5, "decoder_start_token_id": 1, "eos_token_id": 2})").string();
    trainpp::Seq2SeqTrainer trainer(ConfiguredModel{}, args);
    const auto c = trainer.generation_config();
    CHECK(c.num_beams == 5);
    CHECK_FALSE(c.max_length);  // the model's 15 is gone with the rest of its config
    CHECK_FALSE(c.pad_token_id);
    CHECK(trainer.generation_config({.num_beams = 1}).num_beams == 1);
  }
  SUBCASE("GenerationConfig's defaults without a model config or file") {
    trainpp::Seq2SeqTrainer trainer(CopyModel{}, quiet_args());
    const auto c = trainer.generation_config();
    CHECK_FALSE(c.max_length);
    CHECK(c.num_beams == 1);
    CHECK(c.effective_max_length() == 21);
  }
  SUBCASE("a bad file or override is an error") {
    auto args = quiet_args();
    args.generation_config = (std::filesystem::temp_directory_path() / "trainpp_seq2seq_missing.json").string();
    CHECK_THROWS_WITH_AS(trainpp::Seq2SeqTrainer(CopyModel{}, args), doctest::Contains("does not exist"), trainpp::Error);
    trainpp::Seq2SeqTrainer trainer(CopyModel{}, quiet_args());
    CHECK_THROWS_WITH_AS((void)trainer.generation_config({.num_beams = 0}), doctest::Contains("num_beams"), trainpp::Error);
  }
}

// ---- prediction_step ----------------------------------------------------------------------------

TEST_CASE("prediction_step generates, pads tokens and labels to the generation length, and keeps the loss") {
  const auto data = copy_task(5);
  auto args = quiet_args();
  args.predict_with_generate = true;
  trainpp::Seq2SeqTrainer trainer(CopyModel{}, args);
  std::vector<std::int64_t> rows{0, 1, 2, 3, 4};
  const auto batch = data.gather(rows);
  auto& step = trainer.step();

  step.generation_config = copy_generation_config();
  step.generation_config.max_length = 10;
  auto out = step.prediction_step(trainer, batch, /*prediction_loss_only=*/false);
  REQUIRE(out.logits.defined());
  CHECK(out.logits.sizes() == std::vector<std::int64_t>{5, 10});  // padded from 7 (the longest) to max_length
  for (std::int64_t i = 0; i < 5; ++i) CHECK(torch::equal(out.logits[i], expected_sequence(i, 10)));
  REQUIRE(out.labels.defined());
  CHECK(out.labels.sizes() == std::vector<std::int64_t>{5, 10});
  CHECK(out.labels.narrow(1, 7, 3).eq(pad).all().item<bool>());  // labels padded with the pad token, as HF
  CHECK(torch::equal(out.labels.narrow(1, 0, 7), batch.at("labels")));
  REQUIRE(out.loss.defined());
  const auto reference = trainpp::DefaultStep{}.prediction_step(trainer, batch, false);
  CHECK(out.loss.item<double>() == doctest::Approx(reference.loss.item<double>()));

  // max_length unset (20) with max_new_tokens: HF pads to max_length when the sequence is shorter.
  step.generation_config = copy_generation_config();
  step.generation_config.max_new_tokens = 6;
  CHECK(step.prediction_step(trainer, batch, false).logits.size(1) == 20);
  // A max_length shorter than the sequences: padded to max_new_tokens + 1 instead (two short
  // examples generate 4 tokens at most; labels are 7 wide).
  step.generation_config.max_length = 3;
  step.generation_config.max_new_tokens = 8;
  out = step.prediction_step(trainer, data.gather({0, 1}), false);
  CHECK(out.logits.size(1) == 9);
  CHECK(torch::equal(out.logits[1], expected_sequence(1, 9)));
  CHECK(out.labels.size(1) == 9);
  // Nothing to pad when the sequences are as long as both.
  step.generation_config.max_new_tokens = 6;
  CHECK(step.prediction_step(trainer, batch, false).logits.size(1) == 7);

  // Only the loss: DefaultStep's path, no generation.
  out = step.prediction_step(trainer, batch, /*prediction_loss_only=*/true);
  CHECK(out.loss.defined());
  CHECK_FALSE(out.logits.defined());

  // Without a pad or eos token the padding has nothing to fill with.
  step.generation_config = copy_generation_config();
  step.generation_config.max_length = 10;
  step.generation_config.eos_token_id.reset();
  step.generation_config.pad_token_id.reset();
  CHECK_THROWS_WITH_AS((void)step.prediction_step(trainer, batch, false), doctest::Contains("pad_token_id"), trainpp::Error);
}

TEST_CASE("prediction_step without predict_with_generate is DefaultStep's") {
  const auto data = copy_task(3);
  trainpp::Seq2SeqTrainer trainer(CopyModel{}, quiet_args());
  const auto batch = data.gather({0, 1, 2});
  const auto out = trainer.step().prediction_step(trainer, batch, false);
  CHECK(out.logits.dim() == 3);  // the model's logits, not generated tokens
  CHECK(out.logits.size(2) == vocab);
}

// ---- evaluate and predict -----------------------------------------------------------------------

/// A step that records the generation settings each prediction step used.
struct RecordingStep : trainpp::Seq2SeqStep {
  std::shared_ptr<std::vector<GenerationConfig>> used = std::make_shared<std::vector<GenerationConfig>>();
  template <class Trainer, class B>
  trainpp::PredictionStep prediction_step(Trainer& trainer, const B& batch, bool prediction_loss_only) {
    used->push_back(generation_config);
    return Seq2SeqStep::prediction_step(trainer, batch, prediction_loss_only);
  }
};

TEST_CASE("evaluate with predict_with_generate feeds compute_metrics the generated sequences") {
  auto args = quiet_args();
  args.predict_with_generate = true;
  args.generation_max_length = 9;
  args.generation_config = write_file("copy.json", R"({"decoder_start_token_id": 1, "eos_token_id": 2, "pad_token_id": 0})").string();
  Recorder recorder;
  RecordingStep step;
  trainpp::Seq2SeqTrainer trainer(CopyModel{}, args, trainpp::eval_dataset = copy_task(10),
                                  trainpp::compute_metrics = recorder, trainpp::step = step);
  const auto metrics = trainer.evaluate();
  CHECK(metrics.at("eval_exact_match") == 1.0);
  REQUIRE(recorder.seen->predictions.defined());
  CHECK(recorder.seen->predictions.sizes() == std::vector<std::int64_t>{10, 9});
  for (std::int64_t i = 0; i < 10; ++i) CHECK(torch::equal(recorder.seen->predictions[i], expected_sequence(i, 9)));
  CHECK(recorder.seen->label_ids.sizes() == std::vector<std::int64_t>{10, 9});
  CHECK(step.used->size() == 3);  // batches of 4, 4 and 2
  CHECK(step.used->back().max_length == 9);

  // The same loss as an evaluation without generation.
  auto plain_args = quiet_args();
  trainpp::Seq2SeqTrainer plain(CopyModel{}, plain_args, trainpp::eval_dataset = copy_task(10),
                                trainpp::compute_metrics = [](const trainpp::EvalPrediction&) { return trainpp::Metrics{}; });
  CHECK(metrics.at("eval_loss") == doctest::Approx(plain.evaluate().at("eval_loss")));

  // Overrides for one call: sequences cut at 4 tokens no longer match; the next call is back to 9.
  const auto cut = trainer.evaluate({.max_length = 4, .num_beams = 2});
  CHECK(step.used->back().max_length == 4);
  CHECK(step.used->back().num_beams == 2);
  CHECK(recorder.seen->predictions.size(1) == 4);
  CHECK(cut.at("eval_exact_match") < 1.0);
  CHECK(cut.at("eval_exact_match") > 0.0);  // the one- and two-token sources still fit
  CHECK(trainer.step().generation_config.max_length == 9);
  (void)trainer.evaluate(copy_task(4), {.max_new_tokens = 7}, "other");
  CHECK(step.used->back().max_new_tokens == 7);
  CHECK_FALSE(step.used->back().max_length);  // generation_max_length is set aside by max_new_tokens
  CHECK(step.used->back().num_beams == 1);
  CHECK(trainer.state().log_history.back().contains("other_exact_match"));
}

TEST_CASE("predict with predict_with_generate returns the generated sequences, with beams too") {
  auto args = quiet_args();
  args.predict_with_generate = true;
  args.generation_num_beams = 3;
  args.generation_config = write_file("copy_beams.json",
                                      R"({"decoder_start_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "max_length": 8})").string();
  trainpp::Seq2SeqTrainer trainer(CopyModel{}, args, trainpp::compute_metrics = Recorder{});
  const auto data = copy_task(7);
  for (const auto& gen : {trainpp::GenerationKwargs{}, trainpp::GenerationKwargs{.num_beams = 1}}) {
    const auto out = trainer.predict(data, gen);
    REQUIRE(out.predictions.sizes() == std::vector<std::int64_t>{7, 8});
    for (std::int64_t i = 0; i < 7; ++i) CHECK(torch::equal(out.predictions[i], expected_sequence(i, 8)));
    CHECK(out.metrics.at("test_exact_match") == 1.0);
    CHECK(out.metrics.contains("test_loss"));
  }
}

}  // namespace seq2seq_test

namespace seq2seq_test {

TEST_CASE("evaluations during training generate with the arguments' settings, whatever an earlier call overrode") {
  auto args = quiet_args();
  args.predict_with_generate = true;
  args.generation_max_length = 9;
  args.generation_config = write_file("copy_train.json", R"({"decoder_start_token_id": 1, "eos_token_id": 2, "pad_token_id": 0})").string();
  args.eval_strategy = trainpp::IntervalStrategy::steps;
  args.eval_steps = 1;
  args.max_steps = 2;
  args.learning_rate = 0;
  args.save_strategy = trainpp::SaveStrategy::no;
  args.per_device_train_batch_size = 5;
  RecordingStep step;
  trainpp::Seq2SeqTrainer trainer(CopyModel{}, args, trainpp::train_dataset = copy_task(10),
                                  trainpp::eval_dataset = copy_task(4), trainpp::compute_metrics = Recorder{},
                                  trainpp::step = step);
  (void)trainer.evaluate({.max_length = 3, .num_beams = 2});
  CHECK(step.used->back().max_length == 3);
  step.used->clear();
  trainer.train();
  REQUIRE(step.used->size() == 2);  // one batch of 4 per evaluation, two evaluations
  for (const auto& c : *step.used) {
    CHECK(c.max_length == 9);
    CHECK(c.num_beams == 1);
  }
  int evaluations = 0;
  for (const auto& entry : trainer.state().log_history)
    if (entry.contains("eval_exact_match")) {
      CHECK(entry["eval_exact_match"] == 1.0);
      ++evaluations;
    }
  CHECK(evaluations == 2);
}

TEST_CASE("checkpoints save the Seq2Seq arguments in training_args.json") {
  auto args = quiet_args();
  args.output_dir = (std::filesystem::temp_directory_path() / "trainpp_seq2seq_saved_args").string();
  std::filesystem::remove_all(args.output_dir);
  args.predict_with_generate = true;
  args.generation_max_length = 9;
  args.generation_num_beams = 3;
  args.max_steps = 2;
  args.save_strategy = trainpp::SaveStrategy::steps;
  args.save_steps = 2;
  args.per_device_train_batch_size = 5;
  trainpp::Seq2SeqTrainer trainer(CopyModel{}, args, trainpp::train_dataset = copy_task(10));
  trainer.train();
  const auto saved = nlohmann::json::parse(
      trainpp::read_file(std::filesystem::path(args.output_dir) / "checkpoint-2" / "training_args.json"));
  CHECK(saved.at("predict_with_generate") == true);
  CHECK(saved.at("generation_max_length") == 9);
  CHECK(saved.at("generation_num_beams") == 3);
  CHECK(saved.at("max_steps") == 2);  // and TrainingArguments' own fields
  std::filesystem::remove_all(args.output_dir);
}

}  // namespace seq2seq_test
