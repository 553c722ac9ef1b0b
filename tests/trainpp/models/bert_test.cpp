// BertForSequenceClassification and BertForMaskedLM: the config read as transformers reads
// config.json, logits and every problem type's loss equal to transformers' given the same weights
// (loaded by HF's names), the tied decoder, gradient checkpointing, and training in the Trainer.

#include <trainpp/trainpp.hpp>
#include <trainpp/models/bert.hpp>

#include <doctest/doctest.h>

#include "skip.hpp"
#include "trainpp/models/hf_reference.hpp"

#include <filesystem>
#include <set>
#include <string>

namespace bert_test {

trainpp::BertConfig tiny_config() {
  return trainpp::BertConfig{.vocab_size = 128, .hidden_size = 32, .num_hidden_layers = 2, .num_attention_heads = 4,
                             .intermediate_size = 64, .max_position_embeddings = 64, .num_labels = 3};
}

nlohmann::json tiny_json() {
  return nlohmann::json{{"model_type", "bert"}, {"vocab_size", 128}, {"hidden_size", 32}, {"num_hidden_layers", 2},
                        {"num_attention_heads", 4}, {"intermediate_size", 64}};
}

}  // namespace bert_test

TEST_CASE("BertConfig::from_json reads HF's keys, takes num_labels from id2label, and names what is wrong") {
  using trainpp::BertConfig;
  auto json = bert_test::tiny_json();
  const auto plain = BertConfig::from_json(json);
  CHECK(plain.num_labels == 2);  // HF's default
  CHECK(plain.layer_norm_eps == 1e-12);
  CHECK(plain.pad_token_id == 0);
  CHECK_FALSE(plain.problem_type);

  json["id2label"] = {{"0", "negative"}, {"2", "positive"}, {"1", "neutral"}};
  json["problem_type"] = "single_label_classification";
  json["classifier_dropout"] = 0.2;
  json["pad_token_id"] = nullptr;
  const auto labelled = BertConfig::from_json(json);
  CHECK(labelled.num_labels == 3);
  CHECK(labelled.id2label == std::vector<std::string>{"negative", "neutral", "positive"});
  CHECK(labelled.problem_type == "single_label_classification");
  CHECK(labelled.classifier_dropout == 0.2);
  CHECK_FALSE(labelled.pad_token_id);

  auto without = bert_test::tiny_json();
  without.erase("num_attention_heads");
  CHECK_THROWS_WITH_AS(BertConfig::from_json(without), doctest::Contains("\"num_attention_heads\""), trainpp::Error);
  auto gap = bert_test::tiny_json();
  gap["id2label"] = {{"0", "a"}, {"2", "b"}};
  CHECK_THROWS_WITH_AS(BertConfig::from_json(gap), doctest::Contains("id2label must map the ids 0 .. 1"), trainpp::Error);
  auto problem = bert_test::tiny_json();
  problem["problem_type"] = "ranking";
  CHECK_THROWS_WITH_AS(BertConfig::from_json(problem), doctest::Contains("problem_type \"ranking\""), trainpp::Error);
  auto single = bert_test::tiny_json();
  single["num_labels"] = 1;
  single["problem_type"] = "single_label_classification";
  CHECK_THROWS_WITH_AS(BertConfig::from_json(single), doctest::Contains("needs num_labels > 1"), trainpp::Error);
  auto activation = bert_test::tiny_json();
  activation["hidden_act"] = "mish";
  CHECK_THROWS_WITH_AS(BertConfig::from_json(activation), doctest::Contains("hidden_act \"mish\""), trainpp::Error);
}

TEST_CASE("BERT's parameters carry HF's names, and the masked-LM decoder is the word embedding") {
  trainpp::BertForSequenceClassification classifier(bert_test::tiny_config());
  const auto names = classifier->named_parameters().keys();
  const std::set<std::string> present(names.begin(), names.end());
  for (const char* name :
       {"bert.embeddings.word_embeddings.weight", "bert.embeddings.position_embeddings.weight",
        "bert.embeddings.token_type_embeddings.weight", "bert.embeddings.LayerNorm.weight",
        "bert.encoder.layer.0.attention.self.query.weight", "bert.encoder.layer.1.attention.output.dense.bias",
        "bert.encoder.layer.0.attention.output.LayerNorm.weight", "bert.encoder.layer.0.intermediate.dense.weight",
        "bert.encoder.layer.0.output.dense.weight", "bert.encoder.layer.0.output.LayerNorm.bias",
        "bert.pooler.dense.weight", "classifier.weight", "classifier.bias"})
    CHECK_MESSAGE(present.contains(name), name);
  CHECK(names.size() == 5 + 2 * 16 + 2 + 2);
  {
    // The encoder layers are FullShard units by HF's class name.
    trainpp::FsdpOptions options;
    options.transformer_layer_cls_to_wrap = {"BertLayer"};
    trainpp::FullShard sharding(options);
    sharding.prepare(*classifier, torch::kCPU);
    const auto units = sharding.describe_units();
    REQUIRE(units.size() == 3);
    CHECK(units[0].starts_with("bert.encoder.layer.0 (BertLayer)"));
    CHECK(units[1].starts_with("bert.encoder.layer.1 (BertLayer)"));
  }

  trainpp::BertForMaskedLM masked(bert_test::tiny_config());
  const auto mlm = masked->named_parameters();
  CHECK(mlm.contains("cls.predictions.bias"));
  CHECK(mlm.contains("cls.predictions.transform.dense.weight"));
  CHECK(mlm.contains("cls.predictions.transform.LayerNorm.weight"));
  CHECK_FALSE(mlm.contains("cls.predictions.decoder.weight"));
  CHECK_FALSE(mlm.contains("bert.pooler.dense.weight"));
  // The tied decoder: a gradient through the logits reaches the word embedding.
  const auto out = masked->forward(trainpp::Batch{{"input_ids", torch::tensor({{5, 6, 7}}, torch::kLong)}});
  out.logits.select(2, 100).sum().backward();
  CHECK(mlm["bert.embeddings.word_embeddings.weight"].grad()[100].abs().sum().item<double>() > 0);
}

TEST_CASE("BERT's logits and losses equal transformers' given its config.json and model.safetensors" *
          doctest::test_suite("integration")) {
  const auto dir = models_test::hf_reference_dir("bert");
  if (!dir) TRAINPP_SKIP_TEST("transformers or safetensors cannot be imported here, or there is no interpreter");
  torch::NoGradGuard no_grad;
  auto inputs = [](const std::map<std::string, torch::Tensor>& reference) {
    trainpp::Batch batch{{"input_ids", reference.at("input_ids")}, {"attention_mask", reference.at("attention_mask")}};
    if (reference.contains("token_type_ids")) batch["token_type_ids"] = reference.at("token_type_ids");
    return batch;
  };
  auto with = [](trainpp::Batch batch, const torch::Tensor& labels) {
    batch["labels"] = labels;
    return batch;
  };

  for (const char* variant : {"bert_classifier", "bert_regression"}) {
    INFO(std::string(variant));
    const auto path = *dir / variant;
    trainpp::BertForSequenceClassification model(trainpp::BertConfig::from_json(trainpp::read_json_file(path / "config.json")));
    trainpp::load_model(*model, path);  // strict: every name must match HF's
    model->eval();
    const auto reference = models_test::read_tensors(path / "reference.safetensors");
    const auto out = model->forward(with(inputs(reference), reference.at("labels")));
    const double logits_error = models_test::max_abs_difference(out.logits, reference.at("logits"));
    INFO("largest logit difference " << logits_error);
    CHECK(logits_error <= 1e-5);
    CHECK(out.loss.item<double>() == doctest::Approx(reference.at("loss").item<double>()).epsilon(1e-6));
    if (reference.contains("multi_labels")) {
      const auto multi = model->forward(with(inputs(reference), reference.at("multi_labels")));
      CHECK(multi.loss.item<double>() == doctest::Approx(reference.at("multi_label_loss").item<double>()).epsilon(1e-6));
    }
  }

  const auto path = *dir / "bert_masked_lm";
  trainpp::BertForMaskedLM model(trainpp::BertConfig::from_json(trainpp::read_json_file(path / "config.json")));
  trainpp::load_model(*model, path);
  model->eval();
  const auto reference = models_test::read_tensors(path / "reference.safetensors");
  const auto out = model->forward(with(inputs(reference), reference.at("labels")));
  const double logits_error = models_test::max_abs_difference(out.logits, reference.at("logits"));
  INFO("masked LM: largest logit difference " << logits_error);
  CHECK(logits_error <= 1e-5);
  CHECK(out.loss.item<double>() == doctest::Approx(reference.at("loss").item<double>()).epsilon(1e-6));
}

TEST_CASE("BERT: gradient checkpointing gives the same loss and gradients, dropout on") {
  torch::manual_seed(3);
  trainpp::BertForSequenceClassification model(bert_test::tiny_config());
  model->train();
  const auto ids = torch::randint(0, 128, {4, 8}, torch::kLong);
  auto mask = torch::ones({4, 8}, torch::kLong);
  mask.index_put_({1, torch::indexing::Slice(5)}, 0);
  const trainpp::Batch batch{{"input_ids", ids}, {"attention_mask", mask}, {"labels", torch::tensor({0, 1, 2, 1}, torch::kLong)}};
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
  const auto [checkpointed_loss, checkpointed_grads] = run();
  CHECK(checkpointed_loss == plain_loss);
  for (std::size_t i = 0; i < plain_grads.size(); ++i) {
    INFO("parameter " << i);
    CHECK(torch::allclose(checkpointed_grads[i], plain_grads[i], /*rtol=*/1e-5, /*atol=*/1e-7));
  }
}

TEST_CASE("BERT's classification losses follow the problem type and the labels' dtype") {
  torch::manual_seed(6);
  auto config = bert_test::tiny_config();
  trainpp::BertForSequenceClassification model(config);
  const auto logits = torch::randn({4, 3});
  namespace F = torch::nn::functional;
  const auto classes = torch::tensor({0, 2, 1, 1}, torch::kLong);
  CHECK(torch::allclose(model->loss(logits, classes), F::cross_entropy(logits, classes)));
  const auto multi_hot = torch::tensor({{1., 0., 1.}, {0., 0., 1.}, {1., 1., 1.}, {0., 0., 0.}});
  CHECK(torch::allclose(model->loss(logits, multi_hot), F::binary_cross_entropy_with_logits(logits, multi_hot)));
  CHECK_THROWS_AS(model->loss(logits, torch::rand({4})), trainpp::Error);  // float labels of the wrong shape
  config.problem_type = "single_label_classification";
  trainpp::BertForSequenceClassification single(config);
  CHECK_THROWS_WITH_AS(single->loss(logits, multi_hot), doctest::Contains("needs int64 labels"), trainpp::Error);
}

TEST_CASE("BERT classifier and masked LM train in the Trainer: the loss falls" * doctest::test_suite("integration")) {
  torch::manual_seed(7);
  const auto ids = torch::randint(1, 128, {32, 8}, torch::kLong);
  // The label is a function of the first token: learnable in a few steps.
  const auto labels = ids.select(1, 0).remainder(3);
  trainpp::TrainingArguments args;
  args.output_dir = (std::filesystem::temp_directory_path() / "trainpp_bert_test").string();
  args.disable_tqdm = true;
  args.save_strategy = trainpp::SaveStrategy::no;
  args.per_device_train_batch_size = 16;
  args.max_steps = 10;
  args.learning_rate = 1e-2;
  args.logging_steps = 1;
  auto losses_of = [](const auto& trainer) {
    std::vector<double> losses;
    for (const auto& entry : trainer.state().log_history)
      if (entry.contains("loss")) losses.push_back(entry["loss"].template get<double>());
    return losses;
  };
  auto config = bert_test::tiny_config();
  config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0;
  {
    trainpp::Trainer trainer(trainpp::BertForSequenceClassification(config), args,
                             trainpp::train_dataset = trainpp::TensorDataset{{"input_ids", ids}, {"labels", labels}});
    trainer.train();
    const auto losses = losses_of(trainer);
    REQUIRE(losses.size() == 10);
    INFO("classifier: first loss " << losses.front() << ", last " << losses.back());
    CHECK(losses.back() < 0.8 * losses.front());
  }
  {
    // Predict every token (labels = the inputs): the head learns the identity through the tied decoder.
    trainpp::Trainer trainer(trainpp::BertForMaskedLM(config), args,
                             trainpp::train_dataset = trainpp::TensorDataset{{"input_ids", ids}, {"labels", ids}});
    trainer.train();
    const auto losses = losses_of(trainer);
    REQUIRE(losses.size() == 10);
    INFO("masked LM: first loss " << losses.front() << ", last " << losses.back());
    CHECK(losses.back() < 0.8 * losses.front());
  }
}
