// LlamaForCausalLM: its config read as transformers reads config.json, logits and loss equal to
// transformers' given the same weights (loaded by HF's names), the KV cache, the unreduced loss,
// gradient checkpointing, and training in the Trainer.

#include <trainpp/trainpp.hpp>
#include <trainpp/models/llama.hpp>

#include <doctest/doctest.h>

#include "skip.hpp"
#include "trainpp/models/hf_reference.hpp"

#include <filesystem>
#include <set>
#include <string>

namespace llama_test {

trainpp::LlamaConfig tiny_config() {
  return trainpp::LlamaConfig{.vocab_size = 128, .hidden_size = 32, .intermediate_size = 64, .num_hidden_layers = 2,
                              .num_attention_heads = 4, .num_key_value_heads = 2, .max_position_embeddings = 64};
}

nlohmann::json tiny_json() {
  return nlohmann::json{{"model_type", "llama"}, {"vocab_size", 128}, {"hidden_size", 32}, {"intermediate_size", 64},
                        {"num_hidden_layers", 2}, {"num_attention_heads", 4}};
}

}  // namespace llama_test

TEST_CASE("LlamaConfig::from_json reads HF's keys, both places of the rope parameters, and names what is missing") {
  using trainpp::LlamaConfig;
  auto json = llama_test::tiny_json();
  const auto plain = LlamaConfig::from_json(json);
  CHECK(plain.kv_heads() == 4);
  CHECK(plain.head_size() == 8);
  CHECK(plain.rope_theta == 10000.0);
  CHECK(plain.rope_scaling.rope_type == "default");
  CHECK(plain.max_position_embeddings == 2048);
  CHECK_FALSE(plain.tie_word_embeddings);

  // transformers 4's layout: rope_theta at the top, the scaling under rope_scaling with "type".
  json["rope_theta"] = 500000.0;
  json["rope_scaling"] = {{"type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                          {"original_max_position_embeddings", 8192}};
  const auto legacy = LlamaConfig::from_json(json);
  CHECK(legacy.rope_theta == 500000.0);
  CHECK(legacy.rope_scaling.rope_type == "llama3");
  CHECK(legacy.rope_scaling.original_max_position_embeddings == 8192);

  // transformers 5's: everything under rope_parameters, whose rope_theta wins.
  json.erase("rope_scaling");
  json["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 2.0}, {"rope_theta", 1000.0}};
  const auto current = LlamaConfig::from_json(json);
  CHECK(current.rope_theta == 1000.0);
  CHECK(current.rope_scaling.rope_type == "linear");
  CHECK(current.rope_scaling.factor == 2.0);
  CHECK(torch::allclose(current.rope_inv_freq(),
                        1.0 / torch::pow(1000.0, torch::arange(0, 8, 2).to(torch::kFloat32) / 8) / 2.0));

  auto without = llama_test::tiny_json();
  without.erase("intermediate_size");
  CHECK_THROWS_WITH_AS(LlamaConfig::from_json(without), doctest::Contains("\"intermediate_size\""), trainpp::Error);
  auto bad_rope = llama_test::tiny_json();
  bad_rope["rope_parameters"] = {{"rope_type", "yarn"}, {"factor", 2.0}};
  CHECK_THROWS_WITH_AS(LlamaConfig::from_json(bad_rope), doctest::Contains("rope_type \"yarn\" is not supported"),
                       trainpp::Error);
  auto llama3_without_factor = llama_test::tiny_json();
  llama3_without_factor["rope_parameters"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}};
  CHECK_THROWS_WITH_AS(LlamaConfig::from_json(llama3_without_factor), doctest::Contains("\"high_freq_factor\""),
                       trainpp::Error);
  auto other_model = llama_test::tiny_json();
  other_model["model_type"] = "gpt2";
  CHECK_THROWS_WITH_AS(LlamaConfig::from_json(other_model), doctest::Contains("model_type is \"gpt2\""), trainpp::Error);
  auto grouping = llama_test::tiny_json();
  grouping["num_key_value_heads"] = 3;
  CHECK_THROWS_WITH_AS(LlamaConfig::from_json(grouping), doctest::Contains("multiple of num_key_value_heads"),
                       trainpp::Error);
}

TEST_CASE("LlamaForCausalLM's parameters carry HF's names, one head when tied") {
  auto config = llama_test::tiny_config();
  trainpp::LlamaForCausalLM untied(config);
  const auto names = untied->named_parameters().keys();
  const std::set<std::string> present(names.begin(), names.end());
  for (const char* name : {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                           "model.layers.1.self_attn.k_proj.weight", "model.layers.1.mlp.gate_proj.weight",
                           "model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight",
                           "model.norm.weight", "lm_head.weight"})
    CHECK_MESSAGE(present.contains(name), name);
  CHECK(names.size() == 1 + 2 * 9 + 1 + 1);
  CHECK(untied->named_parameters()["model.layers.0.self_attn.k_proj.weight"].sizes() == torch::IntArrayRef{16, 32});
  CHECK(untied->named_buffers().is_empty());  // HF's rotary frequencies are no part of the state dict either

  config.tie_word_embeddings = true;
  trainpp::LlamaForCausalLM tied(config);
  CHECK_FALSE(tied->named_parameters().contains("lm_head.weight"));
  // The layer's class name is HF's, the one fsdp_transformer_layer_cls_to_wrap names.
  CHECK(tied->model->blocks[0]->name().ends_with("LlamaDecoderLayerImpl"));
}

TEST_CASE("LlamaForCausalLM's logits and loss equal transformers' given its config.json and model.safetensors" *
          doctest::test_suite("integration")) {
  const auto dir = models_test::hf_reference_dir("llama");
  if (!dir) TRAINPP_SKIP_TEST("transformers or safetensors cannot be imported here, or there is no interpreter");
  for (const char* variant : {"llama_gqa_llama3", "llama_tied_linear", "llama_bias"}) {
    INFO(std::string(variant));
    const auto path = *dir / variant;
    const auto config = trainpp::LlamaConfig::from_json(trainpp::read_json_file(path / "config.json"));
    trainpp::LlamaForCausalLM model(config);
    trainpp::load_model(*model, path);  // strict: every name must match HF's
    model->eval();
    torch::NoGradGuard no_grad;
    const auto reference = models_test::read_tensors(path / "reference.safetensors");

    const auto& mask = reference.at("attention_mask");
    const auto out = model->forward(trainpp::Batch{{"input_ids", reference.at("input_ids")},
                                                   {"attention_mask", mask},
                                                   {"labels", reference.at("labels")}});
    // All logits, padding positions included: the last left-padding position predicts the first token.
    const auto real = torch::ones_like(mask, torch::kBool);
    const double logits_error = models_test::max_abs_difference(out.logits.index({real}), reference.at("logits").index({real}));
    INFO("largest logit difference " << logits_error);
    CHECK(logits_error <= 1e-5);
    CHECK(out.loss.item<double>() == doctest::Approx(reference.at("loss").item<double>()).epsilon(1e-6));
    CHECK(out.num_tokens.item<std::int64_t>() == reference.at("labels").slice(1, 1).ne(-100).sum().item<std::int64_t>());

    // No mask: the causal path of scaled_dot_product_attention.
    const auto unpadded = model->forward(trainpp::Batch{{"input_ids", reference.at("input_ids").slice(0, 0, 1)},
                                                        {"labels", reference.at("input_ids").slice(0, 0, 1)}});
    CHECK(models_test::max_abs_difference(unpadded.logits, reference.at("unpadded_logits")) <= 1e-5);
    CHECK(unpadded.loss.item<double>() == doctest::Approx(reference.at("unpadded_loss").item<double>()).epsilon(1e-6));
  }
}

TEST_CASE("Llama: logits through the KV cache equal a full forward, with and without padding") {
  torch::manual_seed(1);
  trainpp::LlamaForCausalLM model(llama_test::tiny_config());
  model->eval();
  torch::NoGradGuard no_grad;
  const auto ids = torch::randint(0, 128, {2, 9}, torch::kLong);
  auto mask = torch::ones({2, 9}, torch::kLong);
  mask.index_put_({1, torch::indexing::Slice(0, 2)}, 0);  // left padding
  for (const bool padded : {false, true}) {
    INFO("padded " << padded);
    const auto full_mask = padded ? mask : torch::Tensor();
    const auto full = model->logits(ids, full_mask);
    trainpp::KVCache cache;
    std::vector<torch::Tensor> pieces;
    auto upto = [&](int64_t end) { return padded ? mask.slice(1, 0, end) : torch::Tensor(); };
    pieces.push_back(model->logits(ids.slice(1, 0, 4), upto(4), {}, &cache));  // prefill
    for (int64_t t = 4; t < 6; ++t) pieces.push_back(model->logits(ids.slice(1, t, t + 1), upto(t + 1), {}, &cache));
    pieces.push_back(model->logits(ids.slice(1, 6, 9), upto(9), {}, &cache));  // several tokens after a cache
    CHECK(cache.layers.size() == 2);
    CHECK(cache.layers[0].self_k.sizes() == torch::IntArrayRef{2, 2, 9, 8});  // the key/value heads, not repeated
    const auto real = padded ? mask.to(torch::kBool) : torch::ones({2, 9}, torch::kBool);
    CHECK(models_test::max_abs_difference(torch::cat(pieces, 1).index({real}), full.index({real})) <= 1e-5);
  }
}

TEST_CASE("Llama: the summed token loss and the token count give the mean, and -100 is skipped") {
  torch::manual_seed(2);
  trainpp::LlamaForCausalLM model(llama_test::tiny_config());
  const auto ids = torch::randint(0, 128, {2, 6}, torch::kLong);
  auto labels = ids.clone();
  labels.index_put_({0, torch::indexing::Slice(0, 3)}, -100);
  const auto out = model->forward(trainpp::Batch{{"input_ids", ids}, {"labels", labels}});
  CHECK(out.num_tokens.item<std::int64_t>() == 3 + 5);  // position t scores labels[t + 1]
  CHECK(out.loss.item<double>() == doctest::Approx((out.loss_sum / out.num_tokens).item<double>()));
  const auto per_token = torch::nn::functional::cross_entropy(
      out.logits.slice(1, 0, 5).reshape({-1, 128}), labels.slice(1, 1).reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  CHECK(out.loss_sum.item<double>() == doctest::Approx(per_token.sum().item<double>()).epsilon(1e-6));
  CHECK_THROWS_AS(model->forward(trainpp::Batch{{"input_ids", ids}, {"labels", labels.slice(1, 1)}}), trainpp::Error);
}

TEST_CASE("Llama: gradient checkpointing gives the same loss and gradients") {
  torch::manual_seed(3);
  auto config = llama_test::tiny_config();
  config.attention_dropout = 0.1;  // the recomputation must draw the same dropout masks
  trainpp::LlamaForCausalLM model(config);
  model->train();
  const auto ids = torch::randint(0, 128, {2, 8}, torch::kLong);
  auto mask = torch::ones({2, 8}, torch::kLong);
  mask.index_put_({1, torch::indexing::Slice(6)}, 0);
  const trainpp::Batch batch{{"input_ids", ids}, {"attention_mask", mask}, {"labels", ids.masked_fill(mask == 0, -100)}};
  auto run = [&] {
    torch::manual_seed(4);
    model->zero_grad();
    const auto loss = model->forward(batch).loss;
    loss.backward();
    std::vector<torch::Tensor> grads;
    for (const auto& p : model->parameters()) grads.push_back(p.grad().clone());
    return std::pair{loss.item<double>(), grads};
  };
  const auto [plain_loss, plain_grads] = run();
  model->gradient_checkpointing_enable();
  CHECK(model->is_gradient_checkpointing());
  const auto [checkpointed_loss, checkpointed_grads] = run();
  CHECK(checkpointed_loss == plain_loss);
  for (std::size_t i = 0; i < plain_grads.size(); ++i) {
    INFO("parameter " << i);
    CHECK(torch::allclose(checkpointed_grads[i], plain_grads[i], /*rtol=*/1e-5, /*atol=*/1e-7));
  }
}

TEST_CASE("Llama trains in the Trainer: the loss falls over a few steps" * doctest::test_suite("integration")) {
  torch::manual_seed(5);
  // Sequences that repeat a short pattern: learnable in a few steps.
  const auto pattern = torch::randint(0, 128, {16, 4}, torch::kLong);
  const auto ids = pattern.repeat({1, 4});
  trainpp::TrainingArguments args;
  args.output_dir = (std::filesystem::temp_directory_path() / "trainpp_llama_test").string();
  args.disable_tqdm = true;
  args.save_strategy = trainpp::SaveStrategy::no;
  args.per_device_train_batch_size = 8;
  args.max_steps = 10;
  args.learning_rate = 1e-2;
  args.logging_steps = 1;
  args.gradient_checkpointing = true;  // through the Trainer's call of gradient_checkpointing_enable
  trainpp::Trainer trainer(trainpp::LlamaForCausalLM(llama_test::tiny_config()), args,
                           trainpp::train_dataset = trainpp::TensorDataset{{"input_ids", ids}, {"labels", ids}});
  trainer.train();
  std::vector<double> losses;
  for (const auto& entry : trainer.state().log_history)
    if (entry.contains("loss")) losses.push_back(entry["loss"].get<double>());
  REQUIRE(losses.size() == 10);
  INFO("first loss " << losses.front() << ", last " << losses.back());
  CHECK(losses.back() < 0.8 * losses.front());
}

TEST_CASE("Llama's decoder layers are FullShard units by HF's class name, and one process trains as unsharded" *
          doctest::test_suite("integration")) {
  trainpp::FsdpOptions options;
  options.transformer_layer_cls_to_wrap = {"LlamaDecoderLayer"};
  {
    trainpp::LlamaForCausalLM model(llama_test::tiny_config());
    trainpp::FullShard sharding(options);
    sharding.prepare(*model, torch::kCPU);
    CHECK(sharding.describe_units() == std::vector<std::string>{"model.layers.0 (LlamaDecoderLayer): 9280 parameters",
                                                                "model.layers.1 (LlamaDecoderLayer): 9280 parameters",
                                                                "<root> (LlamaForCausalLM): 8224 parameters"});
  }
  const auto ids = torch::randint(0, 128, {16, 8}, at::make_generator<at::CPUGeneratorImpl>(8));
  auto train = [&](auto sharding) {
    torch::manual_seed(9);
    trainpp::TrainingArguments args;
    args.output_dir = (std::filesystem::temp_directory_path() / "trainpp_llama_fsdp_test").string();
    args.disable_tqdm = true;
    args.log_level = trainpp::LogLevel::error;
    args.save_strategy = trainpp::SaveStrategy::no;
    args.per_device_train_batch_size = 8;
    args.max_steps = 4;
    args.learning_rate = 1e-2;
    args.logging_steps = 1;
    trainpp::Trainer trainer(trainpp::LlamaForCausalLM(llama_test::tiny_config()), args,
                             trainpp::sharding = std::move(sharding),
                             trainpp::train_dataset = trainpp::TensorDataset{{"input_ids", ids}, {"labels", ids}});
    trainer.train();
    std::vector<double> losses;
    for (const auto& entry : trainer.state().log_history)
      if (entry.contains("loss")) losses.push_back(entry["loss"].template get<double>());
    return losses;
  };
  const auto unsharded = train(trainpp::SingleDevice{});
  // FullShard gathers each layer inside trainpp::call and refuses a wrapped unit the forward never
  // called that way, so this also shows the layers are called through it.
  const auto sharded = train(trainpp::FullShard(options));
  REQUIRE(sharded.size() == unsharded.size());
  for (std::size_t i = 0; i < sharded.size(); ++i) CHECK(sharded[i] == doctest::Approx(unsharded[i]).epsilon(1e-6));
}
