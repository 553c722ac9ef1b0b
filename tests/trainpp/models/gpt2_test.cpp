// GPT2LMHeadModel: transformers' state-dict names and layouts, padding masks and positions, the
// shifted loss, gradient checkpointing, the blocks sharding wraps, training in the Trainer, and parity
// with transformers both ways (gpt2_hf_reference.py makes and checks directories with transformers).

#include <trainpp/models/gpt2.hpp>
#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include "skip.hpp"

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

namespace models_gpt2_test {

namespace fs = std::filesystem;

trainpp::GPT2Config tiny(double dropout = 0.0) {
  return {.vocab_size = 64, .n_positions = 16, .n_embd = 32, .n_layer = 2, .n_head = 4,
          .resid_pdrop = dropout, .embd_pdrop = dropout, .attn_pdrop = dropout};
}

std::map<std::string, torch::Tensor> read_tensors(const fs::path& path) {
  std::map<std::string, torch::Tensor> out;
  for (auto& [name, tensor] : trainpp::load_safetensors(path).tensors) out.emplace(name, tensor);
  return out;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

TEST_CASE("GPT2LMHeadModel's parameters have transformers' names and Conv1D's [in, out] layout") {
  trainpp::GPT2LMHeadModel model(tiny());
  const auto params = model->named_parameters();
  CHECK(params["transformer.wte.weight"].sizes() == c10::IntArrayRef{64, 32});
  CHECK(params["transformer.wpe.weight"].sizes() == c10::IntArrayRef{16, 32});
  CHECK(params["transformer.h.0.attn.c_attn.weight"].sizes() == c10::IntArrayRef{32, 96});
  CHECK(params["transformer.h.0.attn.c_attn.bias"].sizes() == c10::IntArrayRef{96});
  CHECK(params["transformer.h.1.mlp.c_fc.weight"].sizes() == c10::IntArrayRef{32, 128});
  CHECK(params["transformer.h.1.mlp.c_proj.weight"].sizes() == c10::IntArrayRef{128, 32});
  CHECK(params["transformer.ln_f.weight"].sizes() == c10::IntArrayRef{32});
  CHECK(params["lm_head.weight"].is_same(params["transformer.wte.weight"]));
  CHECK(model->parameters().size() == 2 + 2 * 12 + 2 + 1);  // the head is listed, sharing wte's tensor
  CHECK(model->buffers().empty());

  auto untied_config = tiny();
  untied_config.tie_word_embeddings = false;
  trainpp::GPT2LMHeadModel untied(untied_config);
  CHECK_FALSE(untied->lm_head->weight.is_same(untied->transformer->wte->weight));
  CHECK(untied->tied_weights().empty());
}

TEST_CASE("GPT2LMHeadModel: padding does not change the real tokens' logits, and the loss skips -100") {
  torch::manual_seed(0);
  trainpp::GPT2LMHeadModel model(tiny());
  model->eval();
  torch::NoGradGuard no_grad;
  const auto ids = torch::randint(0, 64, {1, 5});
  const auto alone = model->logits(ids);

  // Right padding: the first five positions are the unpadded sequence.
  const auto right = torch::cat({ids, torch::zeros({1, 3}, torch::kLong)}, 1);
  const auto right_mask = torch::cat({torch::ones({1, 5}, torch::kLong), torch::zeros({1, 3}, torch::kLong)}, 1);
  CHECK(max_diff(model->logits(right, right_mask).slice(1, 0, 5), alone) < 1e-5);

  // Left padding, with generate()'s positions (0 at the first real token).
  const auto left = torch::cat({torch::zeros({1, 3}, torch::kLong), ids}, 1);
  const auto left_mask = torch::cat({torch::zeros({1, 3}, torch::kLong), torch::ones({1, 5}, torch::kLong)}, 1);
  const auto positions = trainpp::position_ids_from_attention_mask(left_mask);
  CHECK(positions.equal(torch::tensor({{0, 0, 0, 0, 1, 2, 3, 4}})));
  CHECK(max_diff(model->logits(left, left_mask, positions).slice(1, 3), alone) < 1e-5);

  // The loss: labels shifted inside, -100 ignored, mean over the scored tokens.
  auto labels = right.masked_fill(right_mask == 0, -100);
  const auto out = model->forward(trainpp::Batch{{"input_ids", right}, {"attention_mask", right_mask}, {"labels", labels}});
  const auto expected = torch::nn::functional::cross_entropy(alone[0].slice(0, 0, 4), ids[0].slice(0, 1));
  CHECK(out.loss.item<double>() == doctest::Approx(expected.item<double>()).epsilon(1e-5));
  CHECK(out.logits.sizes() == c10::IntArrayRef{1, 8, 64});
}

TEST_CASE("GPT2LMHeadModel with gradient checkpointing gives the same gradients, dropout included") {
  auto gradients = [](bool checkpointing) {
    torch::manual_seed(3);
    trainpp::GPT2LMHeadModel model(tiny(0.1));
    if (checkpointing) model->gradient_checkpointing_enable();
    model->train();
    const auto ids = torch::randint(0, 64, {2, 8});
    const auto mask = torch::tensor({{1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 0, 0, 0}});
    model->forward(trainpp::Batch{{"input_ids", ids}, {"attention_mask", mask}, {"labels", ids}}).loss.backward();
    std::vector<torch::Tensor> out;
    for (const auto& p : model->parameters()) out.push_back(p.grad().clone());
    return out;
  };
  const auto plain = gradients(false), checkpointed = gradients(true);
  REQUIRE(plain.size() == checkpointed.size());
  for (std::size_t i = 0; i < plain.size(); ++i) CHECK(max_diff(plain[i], checkpointed[i]) < 1e-6);
}

TEST_CASE("GPT2LMHeadModel calls its blocks through trainpp::call, so FullShard can wrap GPT2Block") {
  trainpp::GPT2LMHeadModel model(tiny());
  int calls = 0;
  auto& registry = trainpp::detail::module_call_registry();
  for (auto& block : model->transformer->blocks) registry[block.ptr().get()] = trainpp::ModuleCallHooks{.before = [&] { ++calls; }};
  (void)model->logits(torch::randint(0, 64, {1, 4}));
  for (auto& block : model->transformer->blocks) registry.erase(block.ptr().get());
  CHECK(calls == 2);
  CHECK(trainpp::detail::ZeroLayout::short_type(model->transformer->blocks[0]->name()) == "GPT2Block");
}

TEST_CASE("GPT2LMHeadModel trains in the Trainer with the default slots" * doctest::test_suite("integration")) {
  torch::manual_seed(0);
  // A learnable pattern: each row counts up from a random start.
  const auto starts = torch::randint(0, 48, {64, 1});
  const auto ids = starts + torch::arange(16).unsqueeze(0);
  trainpp::TrainingArguments args;
  args.output_dir = (fs::temp_directory_path() / "trainpp_gpt2_trainer_test").string();
  args.disable_tqdm = true;
  args.save_strategy = trainpp::SaveStrategy::no;
  args.learning_rate = 3e-3;
  args.num_train_epochs = 4;
  args.per_device_train_batch_size = 16;
  args.logging_steps = 4;
  args.gradient_checkpointing = true;
  trainpp::ScopedLoggerState quiet;
  trainpp::logger().silence();
  trainpp::Trainer trainer([] { return trainpp::GPT2LMHeadModel(tiny()); }, args,
                           trainpp::train_dataset = trainpp::TensorDataset{{"input_ids", ids}, {"labels", ids}});
  const auto result = trainer.train();
  CHECK(result.global_step == 16);
  CHECK(result.training_loss < std::log(64.0));  // below chance: it learned something
}

TEST_CASE("GPT2LMHeadModel matches transformers: logits with padding, directories loaded and saved both ways" *
          doctest::test_suite("integration")) {
#ifndef TRAINPP_PYTHON
  TRAINPP_SKIPPED("TRAINPP_PYTHON is not defined, so transformers cannot produce the reference");
#else
  const auto work = fs::path(TRAINPP_BINARY_DIR) / "gpt2_hf_reference";
  std::error_code ec;
  fs::remove_all(work, ec);
  fs::create_directories(work);
  auto python = [&](const char* mode) {
    return std::system(fmt::format("'{}' '{}/tests/trainpp/models/gpt2_hf_reference.py' {} '{}'", TRAINPP_PYTHON,
                                   TRAINPP_SOURCE_DIR, mode, work.string()).c_str());
  };
  const int made = python("make");
  if (WIFEXITED(made) && WEXITSTATUS(made) == 77) {
    TRAINPP_SKIP_TEST("transformers is not installed for " TRAINPP_PYTHON);
  }
  REQUIRE(made == 0);
  const auto in = read_tensors(work / "inputs.safetensors");
  const auto reference = read_tensors(work / "reference.safetensors");

  for (const char* dir : {"hf", "hf_sharded"}) {
    INFO(dir);
    trainpp::PretrainedLoadReport report;
    auto model = trainpp::from_pretrained<trainpp::GPT2LMHeadModel>(work / dir, {.strict = true, .report = &report});
    CHECK(report.clean());
    model->eval();
    torch::NoGradGuard no_grad;
    const auto& ids = in.at("input_ids");
    const auto& mask = in.at("attention_mask");
    const double no_mask = max_diff(model->logits(ids), reference.at("logits_no_mask"));
    const double with_mask = max_diff(model->logits(ids, mask), reference.at("logits_mask"));
    const double with_positions = max_diff(model->logits(ids, mask, in.at("position_ids")), reference.at("logits_mask_positions"));
    MESSAGE("largest logit differences to transformers: " << no_mask << ", with padding " << with_mask
                                                           << ", with positions " << with_positions);
    CHECK(no_mask <= 1e-5);
    CHECK(with_mask <= 1e-5);
    CHECK(with_positions <= 1e-5);
    const auto out = model->forward(trainpp::Batch{{"input_ids", ids}, {"attention_mask", mask}, {"labels", in.at("labels")}});
    CHECK(out.loss.item<double>() == doctest::Approx(reference.at("loss").item<double>()).epsilon(1e-6));

    if (std::string(dir) == "hf") {
      trainpp::save_pretrained(model, work / "cpp");
      trainpp::save_pretrained(model, work / "cpp_sharded", "20KB");
      // bf16 from an fp32 directory: the same rounding as transformers'.
      auto bf16 = trainpp::from_pretrained<trainpp::GPT2LMHeadModel>(work / dir, {.dtype = torch::kBFloat16});
      CHECK(torch::equal(bf16->transformer->wte->weight, reference.at("bf16_wte")));
      CHECK(torch::equal(bf16->transformer->blocks[1]->mlp->c_fc->weight, reference.at("bf16_c_fc")));
      CHECK((bf16->lm_head->weight.scalar_type() == torch::kBFloat16));
    }
  }
  CHECK(python("check") == 0);
#endif
}

}  // namespace models_gpt2_test
