#pragma once
// BERT (HF's BertForSequenceClassification and BertForMaskedLM) as LibTorch modules: word, position
// and token-type embeddings, post-LayerNorm encoder layers with bidirectional attention over the real
// tokens, and either a pooler with a classifier or a masked-LM head tied to the word embeddings.
// named_parameters() are HF's state-dict names (bert.embeddings.word_embeddings.weight,
// bert.encoder.layer.0.attention.self.query.weight, ..., classifier.weight, cls.predictions.bias),
// so a checkpoint's model.safetensors loads by name with load_model.

#include <trainpp/detail/config.hpp>
#include <trainpp/data/batch.hpp>
#include <trainpp/io/json_fields.hpp>
#include <trainpp/loss/model_output.hpp>
#include <trainpp/models/lm_loss.hpp>
#include <trainpp/models/activation.hpp>
#include <trainpp/nn/gradient_checkpointing.hpp>
#include <trainpp/nn/module_call.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace trainpp {

/// BERT's configuration, with HF's key names and defaults (BertConfig in transformers 5), including
/// the classification head's (num_labels / id2label, problem_type, classifier_dropout).
struct BertConfig {
  static constexpr const char* model_type = "bert";

  std::int64_t vocab_size = 30522;
  std::int64_t hidden_size = 768;
  std::int64_t num_hidden_layers = 12;
  std::int64_t num_attention_heads = 12;
  std::int64_t intermediate_size = 3072;
  std::string hidden_act = "gelu";
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  std::int64_t max_position_embeddings = 512;
  std::int64_t type_vocab_size = 2;
  double initializer_range = 0.02;
  double layer_norm_eps = 1e-12;
  std::optional<std::int64_t> pad_token_id = 0;  ///< the word embedding row that gets no gradient
  std::optional<double> classifier_dropout;      ///< unset: hidden_dropout_prob
  std::int64_t num_labels = 2;
  std::vector<std::string> id2label;  ///< empty, or num_labels names (label i's name at i)
  /// "regression", "single_label_classification", "multi_label_classification", or unset: chosen
  /// per batch as HF does (one label: regression; integer labels: single-label; else multi-label).
  std::optional<std::string> problem_type;

  /// Reads a config.json as transformers 5 does. vocab_size, hidden_size, num_hidden_layers,
  /// num_attention_heads and intermediate_size are required (an error names a missing one); the rest
  /// take HF's defaults. num_labels is id2label's size when the file has id2label (its keys must be
  /// 0 .. n-1), else the key num_labels, else 2. A `model_type` other than "bert" is refused.
  [[nodiscard]] static BertConfig from_json(const nlohmann::json& json, const std::string& source = "config.json") {
    const detail::JsonFields fields(json, source, "the BERT config");
    if (fields.has("model_type") && fields.string("model_type") != model_type)
      throw error("{}: model_type is \"{}\", but this is a \"bert\" model", source, fields.string("model_type"));
    BertConfig c;
    c.vocab_size = fields.integer("vocab_size", 1);
    c.hidden_size = fields.integer("hidden_size", 1);
    c.num_hidden_layers = fields.integer("num_hidden_layers", 1);
    c.num_attention_heads = fields.integer("num_attention_heads", 1);
    c.intermediate_size = fields.integer("intermediate_size", 1);
    if (fields.has("hidden_act")) c.hidden_act = fields.string("hidden_act");
    if (fields.has("hidden_dropout_prob")) c.hidden_dropout_prob = fields.number("hidden_dropout_prob");
    if (fields.has("attention_probs_dropout_prob")) c.attention_probs_dropout_prob = fields.number("attention_probs_dropout_prob");
    if (fields.has("max_position_embeddings")) c.max_position_embeddings = fields.integer("max_position_embeddings", 1);
    if (fields.has("type_vocab_size")) c.type_vocab_size = fields.integer("type_vocab_size", 1);
    if (fields.has("initializer_range")) c.initializer_range = fields.number("initializer_range");
    if (fields.has("layer_norm_eps")) c.layer_norm_eps = fields.number("layer_norm_eps");
    if (fields.has("pad_token_id"))
      c.pad_token_id = fields.is_null("pad_token_id") ? std::nullopt : std::optional(fields.integer("pad_token_id"));
    if (!fields.is_null("classifier_dropout")) c.classifier_dropout = fields.number("classifier_dropout");
    if (!fields.is_null("problem_type")) c.problem_type = fields.string("problem_type");
    if (fields.has("position_embedding_type") && !fields.is_null("position_embedding_type") &&
        fields.string("position_embedding_type") != "absolute")
      throw error("{}: position_embedding_type \"{}\" is not supported (only \"absolute\")", source,
                  fields.string("position_embedding_type"));
    if (!fields.is_null("id2label")) {
      const auto& labels = fields.at("id2label");
      if (!labels.is_object()) throw fields.fail("id2label", "an object {\"0\": name, ...}", labels);
      c.id2label.assign(labels.size(), std::string());
      std::vector<bool> seen(labels.size(), false);
      for (const auto& [key, name] : labels.items()) {
        std::size_t index = 0, used = 0;
        try {
          index = std::stoul(key, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used != key.size() || index >= labels.size() || seen[index] || !name.is_string())
          throw error("{}: id2label must map the ids 0 .. {} to names, got the entry \"{}\": {}", source,
                      labels.size() - 1, key, name.dump());
        seen[index] = true;
        c.id2label[index] = name.get<std::string>();
      }
      c.num_labels = static_cast<std::int64_t>(labels.size());
      if (!fields.is_null("num_labels") && fields.integer("num_labels") != c.num_labels)
        throw error("{}: num_labels is {} but id2label has {} entries", source, fields.integer("num_labels"), c.num_labels);
    } else if (!fields.is_null("num_labels")) {
      c.num_labels = fields.integer("num_labels", 1);
    }
    c.validate();
    return c;
  }

  /// Throws trainpp::Error naming the first setting that cannot build a model.
  void validate() const {
    for (auto [value, name] : {std::pair{vocab_size, "vocab_size"}, {hidden_size, "hidden_size"},
                               {num_hidden_layers, "num_hidden_layers"}, {num_attention_heads, "num_attention_heads"},
                               {intermediate_size, "intermediate_size"}, {max_position_embeddings, "max_position_embeddings"},
                               {type_vocab_size, "type_vocab_size"}, {num_labels, "num_labels"}})
      if (value <= 0) throw error("BertConfig: {} must be positive, got {}", name, value);
    if (hidden_size % num_attention_heads != 0)
      throw error("BertConfig: hidden_size ({}) must be a multiple of num_attention_heads ({})", hidden_size,
                  num_attention_heads);
    for (auto [p, name] : {std::pair{hidden_dropout_prob, "hidden_dropout_prob"},
                           {attention_probs_dropout_prob, "attention_probs_dropout_prob"},
                           {classifier_dropout.value_or(0.0), "classifier_dropout"}})
      if (!(p >= 0 && p < 1)) throw error("BertConfig: {} must be in [0, 1), got {}", name, p);
    if (!(layer_norm_eps > 0)) throw error("BertConfig: layer_norm_eps must be positive, got {}", layer_norm_eps);
    if (pad_token_id && (*pad_token_id < 0 || *pad_token_id >= vocab_size))
      throw error("BertConfig: pad_token_id {} is outside the vocabulary [0, {})", *pad_token_id, vocab_size);
    if (!id2label.empty() && static_cast<std::int64_t>(id2label.size()) != num_labels)
      throw error("BertConfig: id2label has {} names but num_labels is {}", id2label.size(), num_labels);
    if (problem_type && *problem_type != "regression" && *problem_type != "single_label_classification" &&
        *problem_type != "multi_label_classification")
      throw error("BertConfig: problem_type \"{}\" is not one of regression, single_label_classification, "
                  "multi_label_classification",
                  *problem_type);
    if (problem_type == "single_label_classification" && num_labels == 1)
      throw error("BertConfig: problem_type \"single_label_classification\" needs num_labels > 1 (use 2 for binary "
                  "classification, or \"regression\" for one output)");
    (void)parse_activation(hidden_act, "BertConfig");
  }
};

namespace detail {
inline torch::nn::LayerNorm bert_layer_norm(const BertConfig& c) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps));
}
}  // namespace detail

/// Word + position + token-type embeddings, LayerNorm, dropout.
class BertEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit BertEmbeddingsImpl(const BertConfig& c)
      : max_positions_(c.max_position_embeddings),
        word_embeddings(register_module("word_embeddings", torch::nn::Embedding(word_options(c)))),
        position_embeddings(register_module("position_embeddings", torch::nn::Embedding(c.max_position_embeddings, c.hidden_size))),
        token_type_embeddings(register_module("token_type_embeddings", torch::nn::Embedding(c.type_vocab_size, c.hidden_size))),
        LayerNorm(register_module("LayerNorm", detail::bert_layer_norm(c))),
        dropout(register_module("dropout", torch::nn::Dropout(c.hidden_dropout_prob))) {}

  /// input_ids [B, T]; token_type_ids [B, T] or undefined (all type 0).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids) {
    const auto length = input_ids.size(1);
    if (length > max_positions_)
      throw error("BERT: {} positions exceed max_position_embeddings = {}", length, max_positions_);
    torch::Tensor token_types;
    if (token_type_ids.defined()) {
      if (token_type_ids.sizes() != input_ids.sizes())
        throw error("BERT: token_type_ids [{}] do not match input_ids [{}]", fmt::join(token_type_ids.sizes(), ", "),
                    fmt::join(input_ids.sizes(), ", "));
      token_types = token_type_embeddings(token_type_ids);
    } else {
      token_types = token_type_embeddings->weight[0];  // every token of type 0
    }
    // HF's order of the sums (word + type, then position), so that the rounding is the same.
    const auto x = word_embeddings(input_ids) + token_types + position_embeddings(torch::arange(length, input_ids.options()));
    return dropout(LayerNorm(x));
  }

 private:
  static torch::nn::EmbeddingOptions word_options(const BertConfig& c) {
    auto options = torch::nn::EmbeddingOptions(c.vocab_size, c.hidden_size);
    if (c.pad_token_id) options.padding_idx(*c.pad_token_id);
    return options;
  }
  std::int64_t max_positions_;

 public:
  torch::nn::Embedding word_embeddings, position_embeddings, token_type_embeddings;
  torch::nn::LayerNorm LayerNorm;
  torch::nn::Dropout dropout;
};
TORCH_MODULE(BertEmbeddings);

/// Multi-head self-attention over the unmasked keys (HF's BertSelfAttention).
class BertSelfAttentionImpl : public torch::nn::Module {
 public:
  explicit BertSelfAttentionImpl(const BertConfig& c)
      : heads_(c.num_attention_heads), head_dim_(c.hidden_size / c.num_attention_heads), dropout_(c.attention_probs_dropout_prob),
        query(register_module("query", torch::nn::Linear(c.hidden_size, c.hidden_size))),
        key(register_module("key", torch::nn::Linear(c.hidden_size, c.hidden_size))),
        value(register_module("value", torch::nn::Linear(c.hidden_size, c.hidden_size))) {}

  /// x [B, T, hidden]; keep [B, 1, 1, T] bool (true: a real token), or undefined (attend to all).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& keep) {
    const auto batch = x.size(0), length = x.size(1);
    auto heads = [&](const torch::Tensor& t) { return t.view({batch, length, heads_, head_dim_}).transpose(1, 2); };
    const auto attended = at::scaled_dot_product_attention(heads(query(x)), heads(key(x)), heads(value(x)),
                                                           keep.defined() ? std::optional<torch::Tensor>(keep) : std::nullopt,
                                                           is_training() ? dropout_ : 0.0);
    return attended.transpose(1, 2).reshape({batch, length, heads_ * head_dim_});
  }

 private:
  std::int64_t heads_, head_dim_;
  double dropout_;

 public:
  torch::nn::Linear query, key, value;
};
TORCH_MODULE(BertSelfAttention);

/// LayerNorm(dropout(dense(x)) + residual): BertSelfOutput and BertOutput, which differ in dense's input size.
class BertResidualOutputImpl : public torch::nn::Module {
 public:
  BertResidualOutputImpl(const BertConfig& c, std::int64_t in)
      : dense(register_module("dense", torch::nn::Linear(in, c.hidden_size))),
        LayerNorm(register_module("LayerNorm", detail::bert_layer_norm(c))),
        dropout(register_module("dropout", torch::nn::Dropout(c.hidden_dropout_prob))) {}

  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& residual) { return LayerNorm(dropout(dense(x)) + residual); }

  torch::nn::Linear dense;
  torch::nn::LayerNorm LayerNorm;
  torch::nn::Dropout dropout;
};
TORCH_MODULE(BertResidualOutput);

/// One encoder layer (HF's BertLayer, the class fsdp_transformer_layer_cls_to_wrap names):
/// attention.self, attention.output, intermediate, output.
class BertLayerImpl : public torch::nn::Module {
 public:
  explicit BertLayerImpl(const BertConfig& c)
      : activation_(parse_activation(c.hidden_act, "BertConfig")),
        attention(register_module("attention", std::make_shared<torch::nn::Module>("BertAttention"))),
        self_attention(attention->register_module("self", BertSelfAttention(c))),
        attention_output(attention->register_module("output", BertResidualOutput(c, c.hidden_size))),
        intermediate(register_module("intermediate", std::make_shared<torch::nn::Module>("BertIntermediate"))),
        intermediate_dense(intermediate->register_module("dense", torch::nn::Linear(c.hidden_size, c.intermediate_size))),
        output(register_module("output", BertResidualOutput(c, c.intermediate_size))) {}

  /// Tensors only, so that trainpp::call can checkpoint it and a sharding policy can gather around it.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& keep) {
    const auto h = attention_output(self_attention(x, keep), x);
    return output(apply_activation(activation_, intermediate_dense(h)), h);
  }

 private:
  Activation activation_;

 public:
  std::shared_ptr<torch::nn::Module> attention;  ///< holds "self" and "output", as HF's BertAttention
  BertSelfAttention self_attention;
  BertResidualOutput attention_output;
  std::shared_ptr<torch::nn::Module> intermediate;  ///< holds "dense", as HF's BertIntermediate
  torch::nn::Linear intermediate_dense;
  BertResidualOutput output;
};
TORCH_MODULE(BertLayer);

/// HF's BertModel: embeddings, encoder.layer.*, and (for classification) the pooler, dense + tanh on
/// the first token.
class BertModelImpl : public torch::nn::Module {
 public:
  BertModelImpl(const BertConfig& c, bool add_pooling_layer) {
    embeddings = register_module("embeddings", BertEmbeddings(c));
    encoder = register_module("encoder", std::make_shared<torch::nn::Module>("BertEncoder"));
    layer = encoder->register_module("layer", torch::nn::ModuleList());
    for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) {
      blocks.emplace_back(c);
      layer->push_back(blocks.back());
    }
    if (add_pooling_layer) {
      pooler = register_module("pooler", std::make_shared<torch::nn::Module>("BertPooler"));
      pooler_dense = pooler->register_module("dense", torch::nn::Linear(c.hidden_size, c.hidden_size));
    }
  }

  /// The last layer's hidden states [B, T, hidden]. attention_mask [B, T] (1: a token, 0: padding)
  /// or undefined; token_type_ids [B, T] or undefined.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const torch::Tensor& token_type_ids, bool checkpointing) {
    if (input_ids.dim() != 2 || input_ids.scalar_type() != torch::kLong)
      throw error("BERT: input_ids must be a [batch, length] int64 tensor, got [{}] {}", fmt::join(input_ids.sizes(), ", "),
                  c10::toString(input_ids.scalar_type()));
    torch::Tensor keep;
    if (attention_mask.defined()) {
      if (attention_mask.sizes() != input_ids.sizes())
        throw error("BERT: attention_mask [{}] does not match input_ids [{}]", fmt::join(attention_mask.sizes(), ", "),
                    fmt::join(input_ids.sizes(), ", "));
      keep = attention_mask.to(torch::kBool).view({input_ids.size(0), 1, 1, input_ids.size(1)});
    }
    auto x = embeddings(input_ids, token_type_ids);
    for (auto& block : blocks) {
      if (checkpointing && is_training())
        // The layer is captured by pointer: its recomputation runs in backward, after this returns.
        x = gradient_checkpoint([layer = block](const torch::Tensor& h, const torch::Tensor& k) mutable { return trainpp::call(layer, h, k); },
                                x, keep);
      else
        x = trainpp::call(block, x, keep);
    }
    return x;
  }

  /// tanh(dense(first token's hidden state)).
  torch::Tensor pool(const torch::Tensor& hidden) { return torch::tanh(pooler_dense(hidden.select(1, 0))); }

  BertEmbeddings embeddings{nullptr};
  std::shared_ptr<torch::nn::Module> encoder;  ///< holds "layer", as HF's BertEncoder
  torch::nn::ModuleList layer{nullptr};
  std::vector<BertLayer> blocks;  // layer's elements, typed
  std::shared_ptr<torch::nn::Module> pooler;  ///< holds "dense"; null without a pooling layer
  torch::nn::Linear pooler_dense{nullptr};
};
TORCH_MODULE(BertModel);

namespace detail {
/// HF's BertPreTrainedModel._init_weights: N(0, initializer_range) for projections and embeddings,
/// zero biases and padding row, LayerNorms at identity.
inline void bert_init_weights(torch::nn::Module& root, const BertConfig& c) {
  torch::NoGradGuard no_grad;
  for (auto& module : root.modules(/*include_self=*/false)) {
    if (auto* l = module->as<torch::nn::Linear>()) {
      l->weight.normal_(0, c.initializer_range);
      if (l->bias.defined()) l->bias.zero_();
    } else if (auto* e = module->as<torch::nn::Embedding>()) {
      e->weight.normal_(0, c.initializer_range);
      if (e->options.padding_idx()) e->weight[*e->options.padding_idx()].zero_();
    } else if (auto* n = module->as<torch::nn::LayerNorm>()) {
      n->weight.fill_(1);
      n->bias.zero_();
    }
  }
}
}  // namespace detail

/// HF's BertForSequenceClassification: the pooled first token, dropout, a linear classifier. Given
/// "labels", the loss is HF's for config.problem_type (see BertConfig::problem_type): mean squared
/// error for regression, cross-entropy for single-label, binary cross-entropy with logits for
/// multi-label.
class BertForSequenceClassificationImpl : public torch::nn::Module {
 public:
  explicit BertForSequenceClassificationImpl(const BertConfig& config) : config_(validated(config)) {
    bert = register_module("bert", BertModel(config_, /*add_pooling_layer=*/true));
    dropout = register_module("dropout", torch::nn::Dropout(config_.classifier_dropout.value_or(config_.hidden_dropout_prob)));
    classifier = register_module("classifier", torch::nn::Linear(config_.hidden_size, config_.num_labels));
    detail::bert_init_weights(*this, config_);
  }

  /// Batch keys: "input_ids" [B, T] int64; optional "attention_mask", "token_type_ids" [B, T], and
  /// "labels": [B] int64 (single-label), [B] or [B, 1] float (regression), [B, num_labels] float
  /// (multi-label). Returns the loss (when labels are given) and the logits [B, num_labels].
  ModelOutput forward(const Batch& batch) {
    auto optional = [&](const char* key) { return batch.contains(key) ? batch.at(key) : torch::Tensor(); };
    const auto hidden = bert->forward(batch.at("input_ids"), optional("attention_mask"), optional("token_type_ids"),
                                      gradient_checkpointing_);
    ModelOutput out{.logits = classifier(dropout(bert->pool(hidden)))};
    if (batch.contains("labels")) out.loss = loss(out.logits, batch.at("labels"));
    return out;
  }

  /// HF's loss for these logits and labels (the problem type chosen as HF chooses it).
  [[nodiscard]] torch::Tensor loss(const torch::Tensor& logits, const torch::Tensor& labels) const {
    namespace F = torch::nn::functional;
    const bool integer_labels = labels.scalar_type() == torch::kLong || labels.scalar_type() == torch::kInt;
    const std::string problem = config_.problem_type ? *config_.problem_type
                                : config_.num_labels == 1 ? "regression"
                                : integer_labels ? "single_label_classification"
                                                 : "multi_label_classification";
    if (problem == "regression") {
      if (config_.num_labels == 1) return F::mse_loss(logits.squeeze(), labels.squeeze().to(logits.scalar_type()));
      return F::mse_loss(logits, labels.to(logits.scalar_type()));
    }
    if (problem == "single_label_classification") {
      if (!integer_labels)
        throw error("BertForSequenceClassification: single-label classification needs int64 labels, got {}",
                    c10::toString(labels.scalar_type()));
      return F::cross_entropy(logits.view({-1, config_.num_labels}), labels.view({-1}));
    }
    if (labels.sizes() != logits.sizes())
      throw error("BertForSequenceClassification: multi-label classification needs labels shaped as the logits [{}], got [{}]",
                  fmt::join(logits.sizes(), ", "), fmt::join(labels.sizes(), ", "));
    return F::binary_cross_entropy_with_logits(logits, labels.to(logits.scalar_type()));
  }

  /// From now on each encoder layer is recomputed in backward (training mode), as HF's
  /// gradient_checkpointing_enable; the Trainer calls it for --gradient_checkpointing.
  void gradient_checkpointing_enable() { gradient_checkpointing_ = true; }
  [[nodiscard]] bool is_gradient_checkpointing() const { return gradient_checkpointing_; }
  [[nodiscard]] const BertConfig& config() const { return config_; }

  BertModel bert{nullptr};
  torch::nn::Dropout dropout{nullptr};
  torch::nn::Linear classifier{nullptr};

 private:
  static const BertConfig& validated(const BertConfig& config) {
    config.validate();
    return config;
  }
  BertConfig config_;
  bool gradient_checkpointing_ = false;
};
TORCH_MODULE(BertForSequenceClassification);

/// HF's BertForMaskedLM: the encoder (no pooler) and cls.predictions — dense, activation, LayerNorm,
/// then a decoder whose weight is the word embedding (tied, as HF's) plus cls.predictions.bias.
class BertForMaskedLMImpl : public torch::nn::Module {
 public:
  explicit BertForMaskedLMImpl(const BertConfig& config)
      : config_(validated(config)), activation_(parse_activation(config_.hidden_act, "BertConfig")) {
    bert = register_module("bert", BertModel(config_, /*add_pooling_layer=*/false));
    cls = register_module("cls", std::make_shared<torch::nn::Module>("BertOnlyMLMHead"));
    predictions = cls->register_module("predictions", std::make_shared<torch::nn::Module>("BertLMPredictionHead"));
    transform = predictions->register_module("transform", std::make_shared<torch::nn::Module>("BertPredictionHeadTransform"));
    transform_dense = transform->register_module("dense", torch::nn::Linear(config_.hidden_size, config_.hidden_size));
    transform_norm = transform->register_module("LayerNorm", detail::bert_layer_norm(config_));
    bias = predictions->register_parameter("bias", torch::zeros({config_.vocab_size}));
    detail::bert_init_weights(*this, config_);
  }

  /// Batch keys: "input_ids" [B, T] int64; optional "attention_mask", "token_type_ids" [B, T], and
  /// "labels" [B, T] (-100: not scored). Returns the mean cross-entropy over the scored tokens (when
  /// labels are given) and the logits [B, T, vocab_size].
  MaskedLMOutput forward(const Batch& batch) {
    auto optional = [&](const char* key) { return batch.contains(key) ? batch.at(key) : torch::Tensor(); };
    const auto hidden = bert->forward(batch.at("input_ids"), optional("attention_mask"), optional("token_type_ids"),
                                      gradient_checkpointing_);
    MaskedLMOutput out{.logits = logits(hidden)};
    if (batch.contains("labels")) {
      const auto& labels = batch.at("labels");
      if (labels.sizes() != out.logits.sizes().slice(0, 2))
        throw error("BertForMaskedLM: labels have shape [{}] but input_ids have [{}]", fmt::join(labels.sizes(), ", "),
                    fmt::join(out.logits.sizes().slice(0, 2), ", "));
      auto [loss_sum, num_tokens] = masked_lm_token_loss(out.logits, labels);
      out.loss = loss_sum / num_tokens;
      out.loss_sum = std::move(loss_sum);
      out.num_tokens = std::move(num_tokens);
    }
    return out;
  }

  /// The label tokens forward's loss sums over: labels that are not -100 (the Trainer's token-level
  /// normalisation, concepts/token_loss.hpp).
  [[nodiscard]] torch::Tensor num_items_in_batch(const Batch& batch) const {
    return masked_lm_num_items(batch, "BertForMaskedLM");
  }

  /// The prediction head on the encoder's hidden states: [B, T, vocab_size].
  torch::Tensor logits(const torch::Tensor& hidden) {
    const auto h = transform_norm(apply_activation(activation_, transform_dense(hidden)));
    return torch::nn::functional::linear(h, bert->embeddings->word_embeddings->weight, bias);
  }

  void gradient_checkpointing_enable() { gradient_checkpointing_ = true; }
  [[nodiscard]] bool is_gradient_checkpointing() const { return gradient_checkpointing_; }
  [[nodiscard]] const BertConfig& config() const { return config_; }

  BertModel bert{nullptr};
  std::shared_ptr<torch::nn::Module> cls, predictions, transform;  ///< HF's module path cls.predictions.transform
  torch::nn::Linear transform_dense{nullptr};
  torch::nn::LayerNorm transform_norm{nullptr};
  torch::Tensor bias;  ///< cls.predictions.bias: the decoder's bias

 private:
  static const BertConfig& validated(const BertConfig& config) {
    config.validate();
    return config;
  }
  BertConfig config_;
  Activation activation_;
  bool gradient_checkpointing_ = false;
};
TORCH_MODULE(BertForMaskedLM);

}  // namespace trainpp
