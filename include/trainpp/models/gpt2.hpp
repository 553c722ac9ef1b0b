#pragma once
// GPT2LMHeadModel: Hugging Face's GPT-2 with its language-modelling head, as a LibTorch module whose
// parameters carry transformers' state-dict names (transformer.wte.weight,
// transformer.h.0.attn.c_attn.weight, ..., lm_head.weight tied to the token embedding), so that
// from_pretrained / save_pretrained (models/pretrained.hpp) read and write transformers' directories.
// The projections are HF's Conv1D: a weight laid out [in, out], the transpose of torch's Linear.

#include <trainpp/data/batch.hpp>
#include <trainpp/detail/config.hpp>
#include <trainpp/generation/kv_cache.hpp>
#include <trainpp/logging.hpp>
#include <trainpp/loss/model_output.hpp>
#include <trainpp/models/config.hpp>
#include <trainpp/models/lm_loss.hpp>
#include <trainpp/models/pretrained.hpp>
#include <trainpp/nn/gradient_checkpointing.hpp>
#include <trainpp/nn/module_call.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace trainpp {

/// transformers' GPT2Config: the keys GPT2LMHeadModel reads, their defaults, and the JSON it writes.
struct GPT2Config {
  std::int64_t vocab_size = 50257;
  std::int64_t n_positions = 1024;
  std::int64_t n_embd = 768;
  std::int64_t n_layer = 12;
  std::int64_t n_head = 12;
  std::optional<std::int64_t> n_inner;         ///< the MLP's width; unset: 4 * n_embd
  std::string activation_function = "gelu_new";  ///< gelu_new (tanh approximation), gelu, relu, silu, ...
  double resid_pdrop = 0.1;
  double embd_pdrop = 0.1;
  double attn_pdrop = 0.1;
  double layer_norm_epsilon = 1e-5;
  double initializer_range = 0.02;
  bool scale_attn_weights = true;
  bool scale_attn_by_inverse_layer_idx = false;
  bool tie_word_embeddings = true;
  std::optional<std::int64_t> bos_token_id = 50256;
  std::optional<std::int64_t> eos_token_id = 50256;
  std::optional<std::int64_t> pad_token_id;

  /// The typed view of a config.json; absent keys take transformers' defaults. Errors name the file.
  [[nodiscard]] static GPT2Config from(const PretrainedConfig& c) {
    GPT2Config d;
    GPT2Config out{
        .vocab_size = c.get("vocab_size", d.vocab_size),
        .n_positions = c.get("n_positions", d.n_positions),
        .n_embd = c.get("n_embd", d.n_embd),
        .n_layer = c.get("n_layer", d.n_layer),
        .n_head = c.get("n_head", d.n_head),
        .n_inner = c.get_optional<std::int64_t>("n_inner"),
        .activation_function = c.get("activation_function", d.activation_function),
        .resid_pdrop = c.get("resid_pdrop", d.resid_pdrop),
        .embd_pdrop = c.get("embd_pdrop", d.embd_pdrop),
        .attn_pdrop = c.get("attn_pdrop", d.attn_pdrop),
        .layer_norm_epsilon = c.get("layer_norm_epsilon", d.layer_norm_epsilon),
        .initializer_range = c.get("initializer_range", d.initializer_range),
        .scale_attn_weights = c.get("scale_attn_weights", d.scale_attn_weights),
        .scale_attn_by_inverse_layer_idx = c.get("scale_attn_by_inverse_layer_idx", d.scale_attn_by_inverse_layer_idx),
        .tie_word_embeddings = c.get("tie_word_embeddings", d.tie_word_embeddings),
        .bos_token_id = c.get_optional<std::int64_t>("bos_token_id"),
        .eos_token_id = c.get_optional<std::int64_t>("eos_token_id"),
        .pad_token_id = c.get_optional<std::int64_t>("pad_token_id"),
    };
    if (c.get("add_cross_attention", false))
      throw error("{}: \"add_cross_attention\": true is not supported by trainpp's GPT2LMHeadModel", c.source());
    out.validate(c.source());
    return out;
  }

  /// The config.json transformers writes for this config (every GPT2Config key).
  [[nodiscard]] PretrainedConfig to_pretrained() const {
    PretrainedConfig c;
    c.set("model_type", std::string("gpt2"));
    c.set("vocab_size", vocab_size);
    c.set("n_positions", n_positions);
    c.set("n_embd", n_embd);
    c.set("n_layer", n_layer);
    c.set("n_head", n_head);
    c.set("n_inner", n_inner);
    c.set("activation_function", activation_function);
    c.set("resid_pdrop", resid_pdrop);
    c.set("embd_pdrop", embd_pdrop);
    c.set("attn_pdrop", attn_pdrop);
    c.set("layer_norm_epsilon", layer_norm_epsilon);
    c.set("initializer_range", initializer_range);
    c.set("scale_attn_weights", scale_attn_weights);
    c.set("scale_attn_by_inverse_layer_idx", scale_attn_by_inverse_layer_idx);
    c.set("reorder_and_upcast_attn", false);
    c.set("add_cross_attention", false);
    c.set("tie_word_embeddings", tie_word_embeddings);
    c.set("bos_token_id", bos_token_id);
    c.set("eos_token_id", eos_token_id);
    c.set("pad_token_id", pad_token_id);
    c.set("use_cache", true);
    c.set("summary_type", std::string("cls_index"));
    c.set("summary_use_proj", true);
    c.set("summary_activation", std::optional<std::string>());
    c.set("summary_proj_to_labels", true);
    c.set("summary_first_dropout", 0.1);
    return c;
  }

  /// Throws naming the first value that cannot build a model; `source` starts the message.
  void validate(std::string_view source = "GPT2Config") const {
    for (auto [value, name] : {std::pair{vocab_size, "vocab_size"}, {n_positions, "n_positions"}, {n_embd, "n_embd"},
                               {n_layer, "n_layer"}, {n_head, "n_head"}})
      if (value <= 0) throw error("{}: \"{}\" must be positive, got {}", source, name, value);
    if (n_embd % n_head != 0)
      throw error("{}: \"n_embd\" ({}) must be a multiple of \"n_head\" ({})", source, n_embd, n_head);
    if (n_inner && *n_inner <= 0) throw error("{}: \"n_inner\" must be positive, got {}", source, *n_inner);
    for (auto [value, name] : {std::pair{resid_pdrop, "resid_pdrop"}, {embd_pdrop, "embd_pdrop"}, {attn_pdrop, "attn_pdrop"}})
      if (!(value >= 0 && value < 1)) throw error("{}: \"{}\" must be in [0, 1), got {}", source, name, value);
    if (!(layer_norm_epsilon > 0)) throw error("{}: \"layer_norm_epsilon\" must be positive, got {}", source, layer_norm_epsilon);
    (void)activation(activation_function, source);
  }

  /// transformers' ACT2FN for the activations GPT-2 configs name.
  enum class Activation { gelu_tanh, gelu, relu, silu };
  [[nodiscard]] static Activation activation(std::string_view name, std::string_view source) {
    if (name == "gelu_new" || name == "gelu_pytorch_tanh") return Activation::gelu_tanh;
    if (name == "gelu") return Activation::gelu;
    if (name == "relu") return Activation::relu;
    if (name == "silu" || name == "swish") return Activation::silu;
    throw error("{}: \"activation_function\" \"{}\" is not supported (gelu_new, gelu_pytorch_tanh, gelu, relu, silu)",
                source, name);
  }
};

/// transformers' Conv1D: y = x W + b with W laid out [in, out].
class GPT2Conv1DImpl : public torch::nn::Module {
 public:
  GPT2Conv1DImpl(std::int64_t out_features, std::int64_t in_features)
      : weight(register_parameter("weight", torch::empty({in_features, out_features}))),
        bias(register_parameter("bias", torch::zeros({out_features}))) {}

  torch::Tensor forward(const torch::Tensor& x) {
    auto sizes = x.sizes().vec();
    sizes.back() = weight.size(1);
    return torch::addmm(bias, x.reshape({-1, x.size(-1)}), weight).view(sizes);
  }

  torch::Tensor weight, bias;
};
TORCH_MODULE(GPT2Conv1D);

class GPT2AttentionImpl : public torch::nn::Module {
 public:
  GPT2AttentionImpl(const GPT2Config& config, std::int64_t layer_idx)
      : n_head_(config.n_head), n_embd_(config.n_embd), dropout_(config.attn_pdrop),
        c_attn(register_module("c_attn", GPT2Conv1D(3 * config.n_embd, config.n_embd))),
        c_proj(register_module("c_proj", GPT2Conv1D(config.n_embd, config.n_embd))),
        attn_dropout(register_module("attn_dropout", torch::nn::Dropout(config.attn_pdrop))),
        resid_dropout(register_module("resid_dropout", torch::nn::Dropout(config.resid_pdrop))) {
    const auto head_dim = static_cast<double>(config.n_embd / config.n_head);
    if (config.scale_attn_weights) scaling_ = 1.0 / std::sqrt(head_dim);
    if (config.scale_attn_by_inverse_layer_idx) scaling_ /= static_cast<double>(layer_idx + 1);
  }

  /// x [B, T, n_embd]; mask [B, 1, T, past + T] bool (true: attend), or undefined for causal
  /// attention alone. With `cache`, the new keys and values ([B, n_head, T, head_dim]) are appended to
  /// cache->self_k / self_v and the queries attend to the `past` tokens cached before them too.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, LayerCache* cache = nullptr) {
    const std::int64_t batch = x.size(0), length = x.size(1), head_dim = n_embd_ / n_head_;
    auto heads = [&](const torch::Tensor& t) { return t.view({batch, length, n_head_, head_dim}).transpose(1, 2); };
    const auto qkv = c_attn(x).split(n_embd_, /*dim=*/2);
    const double dropout_p = is_training() ? dropout_ : 0.0;
    if (cache) return resid_dropout(c_proj(attend_cached(heads(qkv[0]), heads(qkv[1]), heads(qkv[2]), mask, *cache)
                                               .transpose(1, 2)
                                               .reshape({batch, length, n_embd_})));
    // As transformers' sdpa path: is_causal without a mask, the combined causal-and-padding mask with one.
    const auto y = mask.defined()
                       ? at::scaled_dot_product_attention(heads(qkv[0]), heads(qkv[1]), heads(qkv[2]), mask, dropout_p,
                                                          /*is_causal=*/false, scaling_)
                       : at::scaled_dot_product_attention(heads(qkv[0]), heads(qkv[1]), heads(qkv[2]), {}, dropout_p,
                                                          /*is_causal=*/true, scaling_);
    return resid_dropout(c_proj(y.transpose(1, 2).reshape({batch, length, n_embd_})));
  }

 private:
  /// Attention over the cached keys and values followed by the new ones (the generation path).
  torch::Tensor attend_cached(const torch::Tensor& query, torch::Tensor key, torch::Tensor value,
                              const torch::Tensor& mask, LayerCache& cache) const {
    if (cache.self_k.defined()) {
      key = torch::cat({cache.self_k, key}, 2);
      value = torch::cat({cache.self_v, value}, 2);
    }
    cache.self_k = key;
    cache.self_v = value;
    const double dropout_p = is_training() ? dropout_ : 0.0;
    if (!mask.defined())
      return at::scaled_dot_product_attention(query, key, value, {}, dropout_p, /*is_causal=*/true, scaling_);
    // A query that may attend to nothing (a left-padding position) attends to every key and is zeroed
    // after, so that it stays finite whatever the backend does with an empty row: its key and value,
    // cached for the following steps, cannot carry a NaN into the real tokens.
    const auto has_key = mask.any(-1, /*keepdim=*/true);
    return at::scaled_dot_product_attention(query, key, value, mask.logical_or(has_key.logical_not()), dropout_p,
                                            /*is_causal=*/false, scaling_)
        .masked_fill(has_key.logical_not(), 0);
  }

  std::int64_t n_head_, n_embd_;
  double dropout_;
  double scaling_ = 1.0;

 public:
  GPT2Conv1D c_attn, c_proj;
  torch::nn::Dropout attn_dropout, resid_dropout;
};
TORCH_MODULE(GPT2Attention);

class GPT2MLPImpl : public torch::nn::Module {
 public:
  explicit GPT2MLPImpl(const GPT2Config& config)
      : activation_(GPT2Config::activation(config.activation_function, "GPT2Config")),
        c_fc(register_module("c_fc", GPT2Conv1D(config.n_inner.value_or(4 * config.n_embd), config.n_embd))),
        c_proj(register_module("c_proj", GPT2Conv1D(config.n_embd, config.n_inner.value_or(4 * config.n_embd)))),
        dropout(register_module("dropout", torch::nn::Dropout(config.resid_pdrop))) {}

  torch::Tensor forward(const torch::Tensor& x) {
    auto h = c_fc(x);
    switch (activation_) {
      case GPT2Config::Activation::gelu_tanh: h = torch::gelu(h, "tanh"); break;
      case GPT2Config::Activation::gelu: h = torch::gelu(h); break;
      case GPT2Config::Activation::relu: h = torch::relu(h); break;
      case GPT2Config::Activation::silu: h = torch::silu(h); break;
    }
    return dropout(c_proj(h));
  }

 private:
  GPT2Config::Activation activation_;

 public:
  GPT2Conv1D c_fc, c_proj;
  torch::nn::Dropout dropout;
};
TORCH_MODULE(GPT2MLP);

/// One transformer layer: the unit sharding wraps (fsdp_transformer_layer_cls_to_wrap "GPT2Block",
/// transformers' _no_split_modules) and gradient checkpointing recomputes.
class GPT2BlockImpl : public torch::nn::Module {
 public:
  GPT2BlockImpl(const GPT2Config& config, std::int64_t layer_idx)
      : ln_1(register_module("ln_1", layer_norm(config))),
        attn(register_module("attn", GPT2Attention(config, layer_idx))),
        ln_2(register_module("ln_2", layer_norm(config))),
        mlp(register_module("mlp", GPT2MLP(config))) {}

  /// Tensors only (trainpp::call can checkpoint it and a sharding policy can gather around it).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask) { return forward(x, mask, nullptr); }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, LayerCache* cache) {
    auto h = x + attn->forward(ln_1(x), mask, cache);
    return h + mlp(ln_2(h));
  }

  static torch::nn::LayerNorm layer_norm(const GPT2Config& config) {
    return torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.n_embd}).eps(config.layer_norm_epsilon));
  }

  torch::nn::LayerNorm ln_1;
  GPT2Attention attn;
  torch::nn::LayerNorm ln_2;
  GPT2MLP mlp;
};
TORCH_MODULE(GPT2Block);

/// transformers' GPT2Model: the decoder without a head ("transformer" inside GPT2LMHeadModel).
class GPT2ModelImpl : public torch::nn::Module {
 public:
  explicit GPT2ModelImpl(const GPT2Config& config)
      : wte(register_module("wte", torch::nn::Embedding(config.vocab_size, config.n_embd))),
        wpe(register_module("wpe", torch::nn::Embedding(config.n_positions, config.n_embd))),
        drop(register_module("drop", torch::nn::Dropout(config.embd_pdrop))),
        h(register_module("h", torch::nn::ModuleList())),
        n_positions_(config.n_positions) {
    for (std::int64_t i = 0; i < config.n_layer; ++i) {
      blocks.emplace_back(config, i);
      h->push_back(blocks.back());
    }
    ln_f = register_module("ln_f", GPT2BlockImpl::layer_norm(config));
  }

  /// The last hidden states [B, T, n_embd]. attention_mask [B, T] (1: a token, 0: padding) may be
  /// undefined; position_ids [B or 1, T] default to 0..T-1 (as transformers' forward: padding does not
  /// move them; pass position_ids_from_attention_mask(mask) for generation's left-padding positions).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                        const torch::Tensor& position_ids = {}, const torch::Tensor& token_type_ids = {}) {
    if (input_ids.dim() != 2 || input_ids.scalar_type() != torch::kLong)
      throw error("GPT2Model: input_ids must be a [batch, length] int64 tensor, got [{}] {}",
                  fmt::join(input_ids.sizes(), ", "), c10::toString(input_ids.scalar_type()));
    const std::int64_t batch = input_ids.size(0), length = input_ids.size(1);
    if (length > n_positions_) throw error("GPT2Model: {} positions exceed n_positions = {}", length, n_positions_);
    const auto positions =
        position_ids.defined() ? position_ids : torch::arange(length, input_ids.options()).unsqueeze(0);
    auto x = wte(input_ids) + wpe(positions);
    if (token_type_ids.defined()) x = x + wte(token_type_ids);
    x = drop(x);

    torch::Tensor mask;  // undefined: causal attention alone (is_causal), as transformers with no mask
    if (attention_mask.defined()) {
      if (attention_mask.sizes() != input_ids.sizes())
        throw error("GPT2Model: attention_mask has shape [{}] but input_ids have [{}]",
                    fmt::join(attention_mask.sizes(), ", "), fmt::join(input_ids.sizes(), ", "));
      const auto causal = torch::ones({length, length}, input_ids.options().dtype(torch::kBool)).tril();
      mask = causal.view({1, 1, length, length}).logical_and(attention_mask.to(torch::kBool).view({batch, 1, 1, length}));
    }
    for (auto& block : blocks) {
      if (gradient_checkpointing && is_training() && torch::GradMode::is_enabled()) {
        // Captured by pointer: the recomputation runs in backward, after this returns.
        x = gradient_checkpoint(
            [block = block.ptr()](const torch::Tensor& input, const torch::Tensor& m) { return call(block, input, m); },
            x, mask);
      } else {
        x = call(block, x, mask);
      }
    }
    return ln_f(x);
  }

  /// The last hidden states [B, T, n_embd] of input_ids [B, T] continuing the sequences whose keys and
  /// values `cache` holds (none when it is empty), appending theirs (generation's path).
  /// attention_mask [B, past + T] covers the cached tokens too (undefined: no padding); position_ids
  /// [B or 1, T] default to past .. past + T - 1.
  torch::Tensor forward_cached(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                               const torch::Tensor& position_ids, KVCache& cache) {
    if (input_ids.dim() != 2 || input_ids.scalar_type() != torch::kLong)
      throw error("GPT2Model: input_ids must be a [batch, length] int64 tensor, got [{}] {}",
                  fmt::join(input_ids.sizes(), ", "), c10::toString(input_ids.scalar_type()));
    const std::int64_t batch = input_ids.size(0), length = input_ids.size(1);
    const std::int64_t past = cache.layers.empty() || !cache.layers.front().self_k.defined()
                                  ? 0
                                  : cache.layers.front().self_k.size(2);
    if (past + length > n_positions_)
      throw error("GPT2Model: {} cached and {} new positions exceed n_positions = {}", past, length, n_positions_);
    if (position_ids.defined() && position_ids.size(-1) != length)
      throw error("GPT2Model: position_ids [{}] do not match input_ids [{}]", fmt::join(position_ids.sizes(), ", "),
                  fmt::join(input_ids.sizes(), ", "));
    cache.layers.resize(blocks.size());
    const auto positions = position_ids.defined()
                               ? position_ids.view({-1, length})
                               : torch::arange(past, past + length, input_ids.options()).unsqueeze(0);
    auto x = drop(wte(input_ids) + wpe(positions));

    torch::Tensor mask;  // undefined: causal attention without padding or a past (is_causal)
    if (attention_mask.defined() || past > 0) {
      mask = torch::ones({length, past + length}, input_ids.options().dtype(torch::kBool))
                 .tril(past)
                 .view({1, 1, length, past + length});
      if (attention_mask.defined()) {
        if (attention_mask.dim() != 2 || attention_mask.size(0) != batch || attention_mask.size(1) != past + length)
          throw error("GPT2Model: attention_mask must be [batch, past + length] = [{}, {}], got [{}]", batch,
                      past + length, fmt::join(attention_mask.sizes(), ", "));
        mask = mask.logical_and(attention_mask.to(torch::kBool).view({batch, 1, 1, past + length}));
      }
    }
    for (std::size_t i = 0; i < blocks.size(); ++i) x = blocks[i]->forward(x, mask, &cache.layers[i]);
    return ln_f(x);
  }

  torch::nn::Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::Dropout drop{nullptr};
  torch::nn::ModuleList h{nullptr};
  torch::nn::LayerNorm ln_f{nullptr};
  std::vector<GPT2Block> blocks;  ///< h's elements, typed
  bool gradient_checkpointing = false;

 private:
  std::int64_t n_positions_;
};
TORCH_MODULE(GPT2Model);

/// The output head: a bias-free projection to the vocabulary whose weight is the token embedding's
/// when tied (one tensor under two names, as in transformers).
class GPT2LMHeadImpl : public torch::nn::Module {
 public:
  explicit GPT2LMHeadImpl(torch::Tensor tied_or_new) : weight(register_parameter("weight", std::move(tied_or_new))) {}
  torch::Tensor forward(const torch::Tensor& x) { return torch::nn::functional::linear(x, weight); }
  torch::Tensor weight;
};
TORCH_MODULE(GPT2LMHead);

/// Positions for a padded batch as transformers' generate computes them: cumsum(mask) - 1, and 0 on
/// padding, so that a left-padded row's first token sits at position 0.
[[nodiscard]] inline torch::Tensor position_ids_from_attention_mask(const torch::Tensor& attention_mask) {
  auto mask = attention_mask.to(torch::kLong);
  return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0);
}

/// transformers' GPT2LMHeadModel. forward follows trainpp's model contract (loss/model_output.hpp):
/// it takes the batch's "input_ids", and "attention_mask", "position_ids", "token_type_ids" and
/// "labels" when present, and returns {loss, logits}, the loss defined when labels were given.
class GPT2LMHeadModelImpl : public torch::nn::Module {
 public:
  // What models/pretrained.hpp needs to read and write this model's directories.
  static constexpr std::string_view model_type = "gpt2";
  /// Position t's logits score the label at t + 1 (the Trainer's label smoothing shifts the labels).
  static constexpr bool is_causal_lm = true;
  static constexpr std::string_view architecture = "GPT2LMHeadModel";
  /// The sizes: a config.json without them describes no particular GPT-2.
  static constexpr std::array<std::string_view, 5> required_config_keys{"vocab_size", "n_positions", "n_embd", "n_layer",
                                                                        "n_head"};
  static constexpr bool can_generate = true;
  /// Old checkpoints carry the causal mask as a buffer "attn.bias" (transformers' list).
  static constexpr std::array<std::string_view, 2> keys_to_ignore_on_load_unexpected{"attn.bias", "crossattention.bias"};

  explicit GPT2LMHeadModelImpl(const GPT2Config& config) : GPT2LMHeadModelImpl(config.to_pretrained(), config) {}
  /// From a config.json's contents: its unknown keys are kept for save_pretrained.
  explicit GPT2LMHeadModelImpl(PretrainedConfig config) : GPT2LMHeadModelImpl(std::move(config), std::nullopt) {}

  CausalLMOutput forward(const Batch& batch) {
    auto optional = [&](std::string_view key) { return batch.contains(key) ? batch.at(key) : torch::Tensor(); };
    CausalLMOutput out{.logits = logits(batch.at("input_ids"), optional("attention_mask"), optional("position_ids"),
                                        optional("token_type_ids"))};
    if (batch.contains("labels")) {
      check_labels(out.logits, batch.at("labels"));
      auto [loss_sum, num_tokens] = causal_lm_token_loss(out.logits, batch.at("labels"));
      out.loss = loss_sum / num_tokens;
      out.loss_sum = std::move(loss_sum);
      out.num_tokens = std::move(num_tokens);
    }
    return out;
  }

  /// The label tokens forward's loss sums over: labels[:, 1:] that are not -100 (the Trainer's
  /// token-level normalisation, concepts/token_loss.hpp).
  [[nodiscard]] torch::Tensor num_items_in_batch(const Batch& batch) const {
    return causal_lm_num_items(batch, "GPT2LMHeadModel");
  }

  /// [B, T, vocab_size] (see GPT2Model::forward for the arguments).
  torch::Tensor logits(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                       const torch::Tensor& position_ids = {}, const torch::Tensor& token_type_ids = {}) {
    return lm_head(transformer(input_ids, attention_mask, position_ids, token_type_ids));
  }

  /// [B, T, vocab_size] for input_ids [B, T] continuing the sequences `cache` holds, whose keys and
  /// values it appends (see GPT2Model::forward_cached); trainpp::generate decodes through it.
  torch::Tensor logits(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                       const torch::Tensor& position_ids, KVCache* cache) {
    if (!cache) return logits(input_ids, attention_mask, position_ids, torch::Tensor());
    return lm_head(transformer->forward_cached(input_ids, attention_mask, position_ids, *cache));
  }

  /// transformers' ForCausalLMLoss: position t is scored against labels[t + 1], -100 ignored, the
  /// mean over the scored tokens, in float32 whatever the logits' dtype. The labels move left rather
  /// than the logits right: the logits, the largest tensor of the step, are not sliced and copied.
  [[nodiscard]] static torch::Tensor causal_lm_loss(const torch::Tensor& logits, const torch::Tensor& labels) {
    check_labels(logits, labels);
    const auto next = torch::constant_pad_nd(labels.slice(1, 1), {0, 1}, -100);
    return torch::nn::functional::cross_entropy(logits.to(torch::kFloat32).reshape({-1, logits.size(-1)}),
                                                next.reshape({-1}),
                                                torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
  }

  static void check_labels(const torch::Tensor& logits, const torch::Tensor& labels) {
    if (labels.sizes() != logits.sizes().slice(0, 2))
      throw error("GPT2LMHeadModel: labels have shape [{}] but input_ids have [{}]", fmt::join(labels.sizes(), ", "),
                  fmt::join(logits.sizes().slice(0, 2), ", "));
  }

  /// Each block's activations are dropped after the forward and recomputed in backward (training mode
  /// only), as transformers' gradient_checkpointing_enable. Idempotent: the Trainer calls it at every train().
  void gradient_checkpointing_enable() { transformer->gradient_checkpointing = true; }
  [[nodiscard]] bool is_gradient_checkpointing() const { return transformer->gradient_checkpointing; }

  [[nodiscard]] const GPT2Config& config() const { return config_; }
  [[nodiscard]] const PretrainedConfig& pretrained_config() const { return pretrained_; }

  /// {target, source}: lm_head.weight is transformer.wte.weight while tie_word_embeddings holds.
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> tied_weights() const {
    if (!config_.tie_word_embeddings) return {};
    return {{"lm_head.weight", "transformer.wte.weight"}};
  }

  GPT2Model transformer{nullptr};
  GPT2LMHead lm_head{nullptr};

 private:
  GPT2LMHeadModelImpl(PretrainedConfig pretrained, std::optional<GPT2Config> typed)
      : config_(typed ? *typed : GPT2Config::from(pretrained)), pretrained_(std::move(pretrained)) {
    config_.validate();
    transformer = register_module("transformer", GPT2Model(config_));
    lm_head = register_module("lm_head", GPT2LMHead(config_.tie_word_embeddings
                                                         ? transformer->wte->weight
                                                         : torch::empty({config_.vocab_size, config_.n_embd})));
    init_weights();
  }

  /// transformers' GPT2PreTrainedModel._init_weights: N(0, initializer_range) for embeddings and
  /// projections, zero biases, LayerNorm at identity, and the two projections that write into the
  /// residual stream (c_proj) scaled down by sqrt(2 * n_layer).
  void init_weights() {
    torch::NoGradGuard no_grad;
    const double std = config_.initializer_range;
    transformer->wte->weight.normal_(0, std);
    transformer->wpe->weight.normal_(0, std);
    if (!config_.tie_word_embeddings) lm_head->weight.normal_(0, std);
    const double residual_std = std / std::sqrt(2.0 * static_cast<double>(config_.n_layer));
    for (auto& block : transformer->blocks) {
      for (auto* conv : {&block->attn->c_attn, &block->attn->c_proj, &block->mlp->c_fc, &block->mlp->c_proj}) {
        (*conv)->weight.normal_(0, std);
        (*conv)->bias.zero_();
      }
      block->attn->c_proj->weight.normal_(0, residual_std);
      block->mlp->c_proj->weight.normal_(0, residual_std);
      for (auto* norm : {&block->ln_1, &block->ln_2}) {
        (*norm)->weight.fill_(1);
        (*norm)->bias.zero_();
      }
    }
    transformer->ln_f->weight.fill_(1);
    transformer->ln_f->bias.zero_();
  }

  GPT2Config config_;
  PretrainedConfig pretrained_;
};
TORCH_MODULE(GPT2LMHeadModel);

}  // namespace trainpp
