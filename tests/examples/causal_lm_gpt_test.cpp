// The causal_lm example's GPT: GPT-2 small's parameter count, logits and loss equal to transformers'
// GPT2LMHeadModel given the same weights, the KV cache, gradient checkpointing and sampling.

#include "gpt.hpp"

#include <doctest/doctest.h>

#include "skip.hpp"

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

namespace {

GPTConfig tiny_config(double dropout = 0.0) {
  return GPTConfig{.vocab_size = 64, .n_positions = 16, .n_embd = 48, .n_layer = 2, .n_head = 4, .dropout = dropout};
}

std::map<std::string, torch::Tensor> read_tensors(const std::filesystem::path& path) {
  std::map<std::string, torch::Tensor> out;
  for (auto& [name, tensor] : trainpp::load_safetensors(path).tensors) out.emplace(name, tensor);
  return out;
}

/// Copies HF GPT2LMHeadModel weights (names "transformer.*") into `model`. HF's Conv1D keeps its
/// weight as [in, out], the transpose of Linear's [out, in]; every name must be used exactly once.
void load_hf_weights(GPT& model, const std::map<std::string, torch::Tensor>& hf) {
  torch::NoGradGuard no_grad;
  std::size_t used = 0;
  for (auto& item : model->named_parameters()) {
    const std::string hf_name = "transformer." + item.key();
    INFO(hf_name);
    REQUIRE(hf.contains(hf_name));
    torch::Tensor source = hf.at(hf_name);
    const bool conv1d = item.key().ends_with("c_attn.weight") || item.key().ends_with("c_proj.weight") ||
                        item.key().ends_with("c_fc.weight");
    if (conv1d) source = source.t();
    REQUIRE(source.sizes() == item.value().sizes());
    item.value().copy_(source);
    ++used;
  }
  CHECK(used == hf.size());
}

}  // namespace

TEST_CASE("GPT-2 small with a tied head has 124,439,808 parameters, initialised as HF does") {
  torch::manual_seed(0);
  GPT model(GPTConfig{});  // the one allocation of the full model in this file
  std::int64_t total = 0;
  for (const auto& p : model->parameters()) total += p.numel();
  CHECK(total == 124'439'808);
  // HF's GPT2LMHeadModel has 148 parameter tensors: the head is the token embedding, not a copy.
  CHECK(model->parameters().size() == 148);

  const auto params = model->named_parameters();
  auto std_of = [&](const std::string& name) { return params[name].std().item<double>(); };
  CHECK(std_of("wte.weight") == doctest::Approx(0.02).epsilon(0.01));
  CHECK(std_of("wpe.weight") == doctest::Approx(0.02).epsilon(0.01));
  CHECK(std_of("h.0.attn.c_attn.weight") == doctest::Approx(0.02).epsilon(0.01));
  CHECK(std_of("h.5.mlp.c_fc.weight") == doctest::Approx(0.02).epsilon(0.01));
  // The residual projections: 0.02 / sqrt(2 * n_layer).
  CHECK(std_of("h.0.attn.c_proj.weight") == doctest::Approx(0.02 / std::sqrt(24.0)).epsilon(0.01));
  CHECK(std_of("h.11.mlp.c_proj.weight") == doctest::Approx(0.02 / std::sqrt(24.0)).epsilon(0.01));
  CHECK(params["h.3.mlp.c_fc.bias"].abs().max().item<double>() == 0);
  CHECK(params["ln_f.weight"].eq(1).all().item<bool>());
  CHECK(params["h.7.ln_2.bias"].eq(0).all().item<bool>());
}

TEST_CASE("GPT's logits and loss equal transformers' GPT2LMHeadModel given the same weights") {
#ifndef TRAINPP_PYTHON
  TRAINPP_SKIPPED("TRAINPP_PYTHON is not defined, so transformers cannot produce the reference");
#else
  const GPTConfig config = tiny_config();
  const auto dir = std::filesystem::path(TRAINPP_BINARY_DIR) / "causal_lm_hf_reference";
  const std::string command = fmt::format("'{}' '{}/tests/examples/causal_lm_hf_reference.py' '{}' {} {} {} {} {}",
                                          TRAINPP_PYTHON, TRAINPP_SOURCE_DIR, dir.string(), config.vocab_size,
                                          config.n_positions, config.n_embd, config.n_layer, config.n_head);
  const int status = std::system(command.c_str());
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
    TRAINPP_SKIP_TEST("transformers or safetensors is not installed for " TRAINPP_PYTHON);
  }
  REQUIRE(status == 0);

  GPT model(config);
  load_hf_weights(model, read_tensors(dir / "weights.safetensors"));
  model->eval();
  const auto reference = read_tensors(dir / "reference.safetensors");
  torch::NoGradGuard no_grad;
  const auto out = model->forward(trainpp::Batch{{"input_ids", reference.at("input_ids")}, {"labels", reference.at("labels")}});
  const double logits_error = (out.logits - reference.at("logits")).abs().max().item<double>();
  INFO("largest logit difference: " << logits_error);
  CHECK(logits_error < 1e-4);  // float32 through two blocks; logits are O(1)
  CHECK(out.loss.item<double>() == doctest::Approx(reference.at("loss").item<double>()).epsilon(1e-5));
#endif
}

TEST_CASE("logits through the KV cache equal a full forward") {
  torch::manual_seed(1);
  GPT model(tiny_config());
  model->eval();
  torch::NoGradGuard no_grad;
  const auto ids = torch::randint(0, 64, {2, 12}, torch::kLong);
  const auto full = model->logits(ids);

  KVCache cache;
  std::vector<torch::Tensor> pieces;
  pieces.push_back(model->logits(ids.slice(1, 0, 5), &cache));    // prefill: causal within the prompt
  for (int64_t t = 5; t < 9; ++t) pieces.push_back(model->logits(ids.slice(1, t, t + 1), &cache));  // one token
  pieces.push_back(model->logits(ids.slice(1, 9, 12), &cache));   // several tokens after a cache: explicit mask
  CHECK(cache.length() == 12);
  CHECK(torch::allclose(torch::cat(pieces, 1), full, /*rtol=*/1e-5, /*atol=*/1e-5));
  CHECK_THROWS_AS(model->logits(ids.slice(1, 0, 5), &cache), trainpp::Error);  // 17 > n_positions
}

TEST_CASE("gradient checkpointing gives the same loss, gradients and random state, dropout on") {
  torch::manual_seed(2);
  GPT model(tiny_config(/*dropout=*/0.1));
  model->train();
  const auto ids = torch::randint(0, 64, {3, 16}, torch::kLong);
  const trainpp::Batch batch{{"input_ids", ids}, {"labels", ids}};

  auto run = [&] {
    torch::manual_seed(3);
    model->zero_grad();
    const auto loss = model->forward(batch).loss;
    loss.backward();
    std::vector<torch::Tensor> grads;
    for (const auto& p : model->parameters()) grads.push_back(p.grad().clone());
    return std::tuple{loss.item<double>(), grads, torch::rand({4})};  // the state the next step would see
  };
  const auto [plain_loss, plain_grads, plain_next] = run();
  model->gradient_checkpointing_enable();
  CHECK(model->is_gradient_checkpointing());
  const auto [checkpointed_loss, checkpointed_grads, checkpointed_next] = run();

  CHECK(checkpointed_loss == plain_loss);
  REQUIRE(plain_grads.size() == checkpointed_grads.size());
  for (std::size_t i = 0; i < plain_grads.size(); ++i) {
    INFO("parameter " << i);
    CHECK(torch::allclose(checkpointed_grads[i], plain_grads[i], /*rtol=*/1e-5, /*atol=*/1e-7));
  }
  CHECK(torch::equal(checkpointed_next, plain_next));
}

TEST_CASE("sample: reproducible per seed, greedy at temperature 0, and longer than the context") {
  torch::manual_seed(4);
  GPT model(tiny_config(/*dropout=*/0.1));
  const auto prompt = torch::tensor({1, 2, 3}, torch::kLong).unsqueeze(0);

  const auto a = sample(model, prompt, {.max_new_tokens = 40, .temperature = 1.0, .top_k = 10, .seed = 7});
  const auto b = sample(model, prompt, {.max_new_tokens = 40, .temperature = 1.0, .top_k = 10, .seed = 7});
  const auto c = sample(model, prompt, {.max_new_tokens = 40, .temperature = 1.0, .top_k = 10, .seed = 8});
  CHECK(a.sizes() == torch::IntArrayRef{1, 40});  // 43 tokens in a context of 16: restarted on the way
  CHECK(torch::equal(a, b));
  CHECK_FALSE(torch::equal(a, c));
  CHECK(model->is_training());  // put back as it was

  // Greedy decoding, step by step without a cache, as a reference.
  const auto greedy = sample(model, prompt, {.max_new_tokens = 8, .temperature = 0});
  CHECK(torch::equal(greedy, sample(model, prompt, {.max_new_tokens = 8, .temperature = 1.0, .top_k = 1, .seed = 9})));
  model->eval();
  torch::NoGradGuard no_grad;
  auto context = prompt;
  for (int64_t i = 0; i < 8; ++i)
    context = torch::cat({context, model->logits(context).select(1, -1).argmax(-1, true)}, 1);
  CHECK(torch::equal(greedy, context.slice(1, 3)));
}

TEST_CASE("GPT refuses configurations and inputs it cannot run") {
  CHECK_THROWS_WITH_AS(GPT(GPTConfig{.n_embd = 50, .n_head = 4}), doctest::Contains("multiple of n_head"), trainpp::Error);
  CHECK_THROWS_WITH_AS(GPT(GPTConfig{.n_layer = 0}), doctest::Contains("n_layer must be positive"), trainpp::Error);
  GPT model(tiny_config());
  CHECK_THROWS_WITH_AS(model->logits(torch::zeros({1, 17}, torch::kLong)), doctest::Contains("exceed n_positions"),
                       trainpp::Error);
  CHECK_THROWS_AS(model->logits(torch::zeros({17}, torch::kLong)), trainpp::Error);
  CHECK_THROWS_AS(model->forward(trainpp::Batch{{"input_ids", torch::zeros({2, 4}, torch::kLong)},
                                                {"labels", torch::zeros({2, 3}, torch::kLong)}}),
                  trainpp::Error);
}
