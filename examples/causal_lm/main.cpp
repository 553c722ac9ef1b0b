// Causal language modelling, as HF's run_clm: a small GPT-2 trained from scratch on bytes of text
// that every Debian machine has (the license texts of base-files), evaluated by its perplexity
// (exp of eval_loss) on documents it never trained on, then asked to continue a prompt.
//
//   causal_lm --output_dir out/causal_lm
//   causal_lm --output_dir out --n_layer 6 --n_embd 256 --block_size 256 --num_train_epochs 10
//   causal_lm --output_dir out --train_files my_corpus/ --validation_files held_out.txt
//   causal_lm --output_dir out --model_name_or_path tiny_llama/   # fine-tune a transformers model
//
// With --model_name_or_path, a Hugging Face model directory (config.json's model_type "gpt2" or
// "llama", a vocabulary of at least the 256 byte tokens) is fine-tuned instead of the built-in GPT,
// and output_dir becomes a directory transformers' AutoModelForCausalLM.from_pretrained loads.
//
// A model this small is faster on one thread than on two cores shared with other work: when the
// machine is busy, run it with OMP_NUM_THREADS=1.

#include "gpt.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

/// This example's own flags, parsed beside TrainingArguments (HF's run_clm has most of them).
struct ExampleArgs {
  // Files, or directories meaning the regular files in them. A validation file is never trained on,
  // even where a train directory holds it. The two held-out licenses share little text with the
  // rest (7% of their 24-byte substrings occur in the training files), unlike the versions of the
  // GPL, LGPL and GFDL, which are near-copies of each other (75-88%) and would leak.
  std::vector<std::string> train_files{"/usr/share/common-licenses"};
  std::vector<std::string> validation_files{"/usr/share/common-licenses/Apache-2.0",
                                            "/usr/share/common-licenses/MPL-2.0"};
  std::int64_t block_size = 128;
  std::int64_t n_layer = 4, n_head = 4, n_embd = 128;
  double dropout = 0.1;
  std::optional<std::int64_t> max_train_samples, max_eval_samples;
  std::int64_t num_samples = 3, sample_length = 200, top_k = 40;
  double temperature = 0.8;
  std::string prompt = "This License";
  std::optional<std::string> model_name_or_path;

  /// Throws trainpp::Error (exit code 2) naming the first flag out of range.
  void validate() const {
    if (block_size <= 0) throw trainpp::error("--block_size must be positive, got {}", block_size);
    for (auto [limit, name] : {std::pair{max_train_samples, "max_train_samples"}, {max_eval_samples, "max_eval_samples"}})
      if (limit && *limit <= 0) throw trainpp::error("--{} must be positive, got {}", name, *limit);
    for (auto [value, name] : {std::pair{num_samples, "num_samples"}, {sample_length, "sample_length"}, {top_k, "top_k"}})
      if (value < 0) throw trainpp::error("--{} must be >= 0, got {}", name, value);
    if (!(temperature >= 0)) throw trainpp::error("--temperature must be >= 0, got {}", temperature);
    if (prompt.empty()) throw trainpp::error("--prompt must not be empty");
  }
};
template <class V>
void visit_fields(ExampleArgs& a, V&& v) {
  v(trainpp::FieldInfo{"train_files", "Text files (or directories of them) to train on.", "data"}, a.train_files);
  v(trainpp::FieldInfo{"validation_files", "Text files (or directories) to evaluate on; excluded from training.", "data"}, a.validation_files);
  v(trainpp::FieldInfo{"model_name_or_path", "A transformers model directory (gpt2 or llama) to fine-tune instead of "
                                             "the built-in GPT.", "model"}, a.model_name_or_path);
  v(trainpp::FieldInfo{"block_size", "Bytes per training example, and the model's context length.", "data"}, a.block_size);
  v(trainpp::FieldInfo{"max_train_samples", "Train on the first N blocks only.", "data"}, a.max_train_samples);
  v(trainpp::FieldInfo{"max_eval_samples", "Evaluate on the first N blocks only.", "data"}, a.max_eval_samples);
  v(trainpp::FieldInfo{"n_layer", "Transformer blocks.", "model"}, a.n_layer);
  v(trainpp::FieldInfo{"n_head", "Attention heads per block.", "model"}, a.n_head);
  v(trainpp::FieldInfo{"n_embd", "Width of the residual stream.", "model"}, a.n_embd);
  v(trainpp::FieldInfo{"dropout", "Dropout on embeddings, attention and residual branches.", "model"}, a.dropout);
  v(trainpp::FieldInfo{"num_samples", "Continuations of the prompt printed at the end.", "sampling"}, a.num_samples);
  v(trainpp::FieldInfo{"sample_length", "Bytes per continuation.", "sampling"}, a.sample_length);
  v(trainpp::FieldInfo{"temperature", "Sampling temperature (0: greedy).", "sampling"}, a.temperature);
  v(trainpp::FieldInfo{"top_k", "Sample among the k most likely bytes (0: all).", "sampling"}, a.top_k);
  v(trainpp::FieldInfo{"prompt", "Text the samples continue.", "sampling"}, a.prompt);
}

/// The named files, directories expanded to their regular files (sorted), each file once however
/// it is reached (GPL is a link to GPL-3), less those in `excluded`.
std::vector<std::filesystem::path> list_files(const std::vector<std::string>& names, std::string_view flag,
                                              const std::set<std::filesystem::path>& excluded = {}) {
  namespace fs = std::filesystem;
  std::set<fs::path> seen = excluded;
  std::vector<fs::path> files;
  for (const auto& name : names) {
    if (!fs::exists(name)) throw trainpp::error("--{}: {} does not exist", flag, name);
    std::vector<fs::path> found;
    if (fs::is_directory(name)) {
      for (const auto& entry : fs::directory_iterator(name))
        if (entry.is_regular_file()) found.push_back(entry.path());
      std::ranges::sort(found);
    } else {
      found.push_back(name);
    }
    for (const auto& file : found)
      if (seen.insert(fs::canonical(file)).second) files.push_back(file);
  }
  if (files.empty())
    throw trainpp::error("--{}: no files to read in {}{}", flag, fmt::join(names, ", "),
                         excluded.empty() ? "" : " once the validation files are left out");
  return files;
}

/// The byte-level tokenizer: each byte is a token, so 256 symbols and nothing to download.
torch::Tensor encode(std::string_view text) {
  return torch::from_blob(const_cast<char*>(text.data()), {static_cast<std::int64_t>(text.size())}, torch::kUInt8)
      .to(torch::kLong);
}
std::string decode(const torch::Tensor& tokens) {
  const auto bytes = tokens.to(torch::kCPU, torch::kUInt8).contiguous();
  return {reinterpret_cast<const char*>(bytes.data_ptr<std::uint8_t>()), static_cast<std::size_t>(bytes.numel())};
}

/// The files' bytes concatenated and cut into [N, block_size] blocks, the remainder dropped (run_clm's
/// group_texts); labels are the inputs, which the model shifts.
trainpp::TensorDataset make_blocks(const std::vector<std::filesystem::path>& files, std::int64_t block_size,
                                   std::optional<std::int64_t> max_samples, std::string_view flag) {
  std::string text;
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw trainpp::error("--{}: cannot read {}", flag, file.string());
    text.append(std::istreambuf_iterator<char>(in), {});
  }
  const auto n_blocks = static_cast<std::int64_t>(text.size()) / block_size;
  if (n_blocks == 0)
    throw trainpp::error("--{}: {} bytes of text, fewer than one block of --block_size {}", flag, text.size(), block_size);
  auto blocks = encode(text).narrow(0, 0, n_blocks * block_size).view({n_blocks, block_size});
  if (max_samples) blocks = blocks.slice(0, 0, *max_samples);
  return trainpp::TensorDataset{{"input_ids", blocks}, {"labels", blocks}};
}

int main(int argc, char** argv) {
  return trainpp::run_main([&] {
    // This example's defaults: a few minutes on two CPU cores to an eval perplexity near 7 (a model
    // blind to context cannot go below 23 on this text).
    trainpp::TrainingArguments defaults;
    defaults.output_dir = "out/causal_lm";
    defaults.num_train_epochs = 6;
    defaults.per_device_train_batch_size = 16;
    defaults.per_device_eval_batch_size = 32;
    defaults.learning_rate = 3e-3;
    defaults.warmup_steps = 0.05;
    defaults.weight_decay = 0.1;
    defaults.logging_steps = 50;
    defaults.eval_strategy = trainpp::IntervalStrategy::epoch;
    defaults.save_strategy = trainpp::SaveStrategy::no;
    auto [ex, args] = trainpp::parse_args(argc, argv, ExampleArgs{}, defaults);
    if (args.should_log()) trainpp::logger().set_level(trainpp::LogLevel::info);
    ex.validate();

    const auto validation_files = list_files(ex.validation_files, "validation_files");
    std::set<std::filesystem::path> held_out;
    for (const auto& file : validation_files) held_out.insert(std::filesystem::canonical(file));
    auto train = make_blocks(list_files(ex.train_files, "train_files", held_out), ex.block_size, ex.max_train_samples, "train_files");
    auto eval = make_blocks(validation_files, ex.block_size, ex.max_eval_samples, "validation_files");

    const auto n_train = static_cast<double>(train.size()), n_eval = static_cast<double>(eval.size());
    trainpp::note("{} training blocks and {} evaluation blocks of {} bytes", train.size(), eval.size(), ex.block_size);
    // run_clm's tail: train, save, evaluate (perplexity), save the metrics and the state.
    auto train_and_evaluate = [&](auto& model) {
      trainpp::Trainer trainer(model, args, trainpp::train_dataset = std::move(train), trainpp::eval_dataset = std::move(eval));
      auto result = trainer.train();
      result.metrics["train_samples"] = n_train;
      trainer.log_metrics("train", result.metrics);
      trainer.save_metrics("train", result.metrics);
      trainer.save_model();

      auto metrics = trainer.evaluate();
      metrics["eval_samples"] = n_eval;
      metrics["perplexity"] = std::exp(metrics.at("eval_loss"));  // inf on overflow, as run_clm
      trainer.log_metrics("eval", metrics);
      trainer.save_metrics("eval", metrics);
      trainer.save_state();
    };

    if (ex.model_name_or_path) {
      const std::filesystem::path dir = *ex.model_name_or_path;
      const auto config = trainpp::PretrainedConfig::read(dir / trainpp::config_name);
      const auto model_type = config.get<std::string>("model_type");
      auto check_sizes = [&](std::int64_t vocab_size, std::int64_t positions, std::string_view positions_key) {
        if (vocab_size < 256)
          throw trainpp::error("--model_name_or_path {}: vocab_size {} is smaller than the 256 byte tokens this example "
                               "feeds it", dir.string(), vocab_size);
        if (ex.block_size > positions)
          throw trainpp::error("--block_size {} is longer than the model's {} ({})", ex.block_size, positions_key, positions);
      };
      if (model_type == "gpt2") {
        auto model = trainpp::from_pretrained<trainpp::GPT2LMHeadModel>(dir);
        check_sizes(model->config().vocab_size, model->config().n_positions, "n_positions");
        train_and_evaluate(model);
      } else if (model_type == "llama") {
        auto model = trainpp::from_pretrained<trainpp::LlamaForCausalLM>(dir);
        check_sizes(model->config().vocab_size, model->config().max_position_embeddings, "max_position_embeddings");
        train_and_evaluate(model);
      } else {
        throw trainpp::error("--model_name_or_path {}: model_type \"{}\" in {} is not supported (gpt2, llama)", dir.string(),
                             model_type, config.source());
      }
      if (ex.num_samples > 0) trainpp::note("--num_samples: samples are drawn from the built-in GPT only");
      return 0;
    }

    trainpp::set_seed(args.seed);  // the same initial weights on every run
    GPT model(GPTConfig{.vocab_size = 256, .n_positions = ex.block_size, .n_embd = ex.n_embd,
                        .n_layer = ex.n_layer, .n_head = ex.n_head, .dropout = ex.dropout});
    train_and_evaluate(model);

    const auto prompt = encode(ex.prompt).unsqueeze(0);
    for (std::int64_t i = 0; i < ex.num_samples; ++i) {
      auto tokens = sample(model, prompt, {.max_new_tokens = ex.sample_length, .temperature = ex.temperature,
                                           .top_k = ex.top_k, .seed = static_cast<std::uint64_t>(args.seed + i)});
      fmt::print("\n***** sample {} *****\n{}{}\n", i + 1, ex.prompt, decode(tokens[0]));
    }
    return 0;
  });
}
