#pragma once
// Llama (HF's LlamaForCausalLM) as a LibTorch module: token embedding, pre-RMSNorm decoder layers with
// rotary position embeddings, grouped-query attention and a SwiGLU MLP, a final RMSNorm and a
// language-modelling head (tied to the embedding or not). named_parameters() are HF's state-dict names
// (model.embed_tokens.weight, model.layers.0.self_attn.q_proj.weight, ..., lm_head.weight), so a
// checkpoint's model.safetensors loads by name with load_model. attention_bias gives q/k/v/o biases as
// HF's Llama does (the Qwen2 checkpoints' q/k/v biases load into it once o_proj's bias is zero).

#include <trainpp/detail/config.hpp>
#include <trainpp/data/batch.hpp>
#include <trainpp/generation/kv_cache.hpp>
#include <trainpp/io/json_fields.hpp>
#include <trainpp/models/activation.hpp>
#include <trainpp/models/config.hpp>
#include <trainpp/models/lm_loss.hpp>
#include <trainpp/models/pretrained.hpp>
#include <trainpp/nn/gradient_checkpointing.hpp>
#include <trainpp/nn/module_call.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace trainpp {

/// How the rotary frequencies are scaled: transformers' `rope_parameters` (formerly `rope_scaling`).
/// rope_type "default" leaves them, "linear" divides every frequency by `factor`, "llama3" (Llama 3.1)
/// divides the low frequencies by `factor`, keeps the high ones and interpolates in between.
struct LlamaRopeScaling {
  std::string rope_type = "default";
  double factor = 1.0;            ///< linear, llama3
  double low_freq_factor = 1.0;   ///< llama3
  double high_freq_factor = 4.0;  ///< llama3
  /// llama3: the context length of pretraining; unset, max_position_embeddings (as HF).
  std::optional<std::int64_t> original_max_position_embeddings;
};

/// LlamaForCausalLM's configuration, with HF's key names and defaults (LlamaConfig in transformers 5).
struct LlamaConfig {
  static constexpr const char* model_type = "llama";

  std::int64_t vocab_size = 32000;
  std::int64_t hidden_size = 4096;
  std::int64_t intermediate_size = 11008;
  std::int64_t num_hidden_layers = 32;
  std::int64_t num_attention_heads = 32;
  std::optional<std::int64_t> num_key_value_heads;  ///< unset: num_attention_heads (no grouping)
  std::optional<std::int64_t> head_dim;             ///< unset: hidden_size / num_attention_heads
  std::string hidden_act = "silu";
  std::int64_t max_position_embeddings = 2048;
  double initializer_range = 0.02;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  LlamaRopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  double attention_dropout = 0.0;
  bool mlp_bias = false;
  std::optional<std::int64_t> pad_token_id;  ///< the embedding row that gets no gradient (padding_idx)

  [[nodiscard]] std::int64_t kv_heads() const { return num_key_value_heads.value_or(num_attention_heads); }
  [[nodiscard]] std::int64_t head_size() const {
    return head_dim.value_or(num_attention_heads > 0 ? hidden_size / num_attention_heads : 0);
  }

  /// Reads a config.json as transformers 5 does. The sizes that define the architecture (vocab_size,
  /// hidden_size, intermediate_size, num_hidden_layers, num_attention_heads) are required: a file
  /// without one is refused with an error naming it, where HF would silently build its 7B default.
  /// The rotary parameters come from `rope_scaling` (older files) or `rope_parameters`; rope_theta
  /// from inside them, else the top level, else 10000; their type from `rope_type` or `type`.
  /// A `model_type` other than "llama" is refused. The result is validated.
  [[nodiscard]] static LlamaConfig from_json(const nlohmann::json& json, const std::string& source = "config.json") {
    const detail::JsonFields fields(json, source, "the Llama config");
    if (fields.has("model_type") && fields.string("model_type") != model_type)
      throw error("{}: model_type is \"{}\", but this is a \"llama\" model", source, fields.string("model_type"));
    LlamaConfig c;
    c.vocab_size = fields.integer("vocab_size", 1);
    c.hidden_size = fields.integer("hidden_size", 1);
    c.intermediate_size = fields.integer("intermediate_size", 1);
    c.num_hidden_layers = fields.integer("num_hidden_layers", 1);
    c.num_attention_heads = fields.integer("num_attention_heads", 1);
    if (!fields.is_null("num_key_value_heads")) c.num_key_value_heads = fields.integer("num_key_value_heads", 1);
    if (!fields.is_null("head_dim")) c.head_dim = fields.integer("head_dim", 1);
    if (fields.has("hidden_act")) c.hidden_act = fields.string("hidden_act");
    if (fields.has("max_position_embeddings")) c.max_position_embeddings = fields.integer("max_position_embeddings", 1);
    if (fields.has("initializer_range")) c.initializer_range = fields.number("initializer_range");
    if (fields.has("rms_norm_eps")) c.rms_norm_eps = fields.number("rms_norm_eps");
    if (fields.has("tie_word_embeddings")) c.tie_word_embeddings = fields.boolean("tie_word_embeddings");
    if (fields.has("attention_bias")) c.attention_bias = fields.boolean("attention_bias");
    if (fields.has("attention_dropout")) c.attention_dropout = fields.number("attention_dropout");
    if (fields.has("mlp_bias")) c.mlp_bias = fields.boolean("mlp_bias");
    if (!fields.is_null("pad_token_id")) c.pad_token_id = fields.integer("pad_token_id");
    if (!fields.is_null("rope_theta")) c.rope_theta = fields.number("rope_theta");
    if (fields.has("pretraining_tp") && !fields.is_null("pretraining_tp") && fields.integer("pretraining_tp") > 1)
      throw error("{}: pretraining_tp > 1 is not supported (transformers 5 ignores it as well; set it to 1)", source);

    // rope_scaling wins over rope_parameters, as transformers' convert_rope_params_to_dict reads them.
    const char* rope_key = !fields.is_null("rope_scaling") ? "rope_scaling" : "rope_parameters";
    if (!fields.is_null(rope_key)) {
      const detail::JsonFields rope(fields.at(rope_key), source, rope_key);
      if (!rope.is_null("rope_theta")) c.rope_theta = rope.number("rope_theta");
      if (!rope.is_null("rope_type")) c.rope_scaling.rope_type = rope.string("rope_type");
      else if (!rope.is_null("type")) c.rope_scaling.rope_type = rope.string("type");
      if (!rope.is_null("partial_rotary_factor") && rope.number("partial_rotary_factor") != 1.0)
        throw error("{}: {}.partial_rotary_factor other than 1 is not supported", source, rope_key);
      auto& s = c.rope_scaling;
      if (s.rope_type == "linear") {
        s.factor = rope.number("factor");
      } else if (s.rope_type == "llama3") {
        s.factor = rope.number("factor");
        s.low_freq_factor = rope.number("low_freq_factor");
        s.high_freq_factor = rope.number("high_freq_factor");
        if (!rope.is_null("original_max_position_embeddings"))
          s.original_max_position_embeddings = rope.integer("original_max_position_embeddings", 1);
      } else if (s.rope_type != "default") {
        throw error("{}: {}.rope_type \"{}\" is not supported (supported: default, linear, llama3)", source, rope_key,
                    s.rope_type);
      }
    }
    // HF lets a top-level original_max_position_embeddings take precedence (Phi-3's layout).
    if (c.rope_scaling.rope_type == "llama3" && !fields.is_null("original_max_position_embeddings"))
      c.rope_scaling.original_max_position_embeddings = fields.integer("original_max_position_embeddings", 1);
    c.validate();
    return c;
  }

  /// The config.json transformers 5 writes for this config (LlamaConfig.to_dict's keys; the rotary
  /// parameters under rope_parameters), read back equal by from_json.
  [[nodiscard]] nlohmann::json to_json() const {
    nlohmann::json rope = {{"rope_type", rope_scaling.rope_type}, {"rope_theta", rope_theta}};
    if (rope_scaling.rope_type != "default") rope["factor"] = rope_scaling.factor;
    if (rope_scaling.rope_type == "llama3") {
      rope["low_freq_factor"] = rope_scaling.low_freq_factor;
      rope["high_freq_factor"] = rope_scaling.high_freq_factor;
      if (rope_scaling.original_max_position_embeddings)
        rope["original_max_position_embeddings"] = *rope_scaling.original_max_position_embeddings;
    }
    auto optional = [](const std::optional<std::int64_t>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
    return {{"model_type", model_type}, {"vocab_size", vocab_size}, {"hidden_size", hidden_size},
            {"intermediate_size", intermediate_size}, {"num_hidden_layers", num_hidden_layers},
            {"num_attention_heads", num_attention_heads}, {"num_key_value_heads", kv_heads()},
            {"head_dim", head_size()}, {"hidden_act", hidden_act}, {"max_position_embeddings", max_position_embeddings},
            {"initializer_range", initializer_range}, {"rms_norm_eps", rms_norm_eps}, {"rope_parameters", rope},
            {"tie_word_embeddings", tie_word_embeddings}, {"attention_bias", attention_bias},
            {"attention_dropout", attention_dropout}, {"mlp_bias", mlp_bias}, {"pad_token_id", optional(pad_token_id)},
            {"pretraining_tp", 1}, {"use_cache", true}};
  }

  /// Throws trainpp::Error naming the first setting that cannot build a model.
  void validate() const {
    for (auto [value, name] : {std::pair{vocab_size, "vocab_size"}, {hidden_size, "hidden_size"},
                               {intermediate_size, "intermediate_size"}, {num_hidden_layers, "num_hidden_layers"},
                               {num_attention_heads, "num_attention_heads"}, {kv_heads(), "num_key_value_heads"},
                               {head_size(), "head_dim"}, {max_position_embeddings, "max_position_embeddings"}})
      if (value <= 0) throw error("LlamaConfig: {} must be positive, got {}", name, value);
    if (!head_dim && hidden_size % num_attention_heads != 0)
      throw error("LlamaConfig: hidden_size ({}) must be a multiple of num_attention_heads ({})", hidden_size,
                  num_attention_heads);
    if (num_attention_heads % kv_heads() != 0)
      throw error("LlamaConfig: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                  num_attention_heads, kv_heads());
    if (head_size() % 2 != 0) throw error("LlamaConfig: head_dim must be even for rotary embeddings, got {}", head_size());
    if (!(rms_norm_eps > 0)) throw error("LlamaConfig: rms_norm_eps must be positive, got {}", rms_norm_eps);
    if (!(rope_theta > 0)) throw error("LlamaConfig: rope_theta must be positive, got {}", rope_theta);
    if (!(attention_dropout >= 0 && attention_dropout < 1))
      throw error("LlamaConfig: attention_dropout must be in [0, 1), got {}", attention_dropout);
    if (pad_token_id && (*pad_token_id < 0 || *pad_token_id >= vocab_size))
      throw error("LlamaConfig: pad_token_id {} is outside the vocabulary [0, {})", *pad_token_id, vocab_size);
    const auto& s = rope_scaling;
    if (s.rope_type != "default" && s.rope_type != "linear" && s.rope_type != "llama3")
      throw error("LlamaConfig: rope_type \"{}\" is not supported (supported: default, linear, llama3)", s.rope_type);
    if (s.rope_type != "default" && !(s.factor > 0))
      throw error("LlamaConfig: rope factor must be positive, got {}", s.factor);
    if (s.rope_type == "llama3" && !(s.high_freq_factor > s.low_freq_factor && s.low_freq_factor > 0))
      throw error("LlamaConfig: llama3 rope needs 0 < low_freq_factor < high_freq_factor, got {} and {}",
                  s.low_freq_factor, s.high_freq_factor);
    (void)parse_activation(hidden_act, "LlamaConfig");
  }

  /// The rotary inverse frequencies, [head_dim / 2] float32, as transformers' ROPE_INIT_FUNCTIONS
  /// compute them for this rope_type.
  [[nodiscard]] torch::Tensor rope_inv_freq() const {
    const std::int64_t dim = head_size();
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
    auto inv_freq = 1.0 / torch::pow(rope_theta, torch::arange(0, dim, 2, torch::kInt64).to(torch::kFloat32) / dim);
    const auto& s = rope_scaling;
    if (s.rope_type == "linear") return inv_freq / s.factor;
    if (s.rope_type != "llama3") return inv_freq;
    const double old_context = static_cast<double>(s.original_max_position_embeddings.value_or(max_position_embeddings));
    const double low_freq_wavelen = old_context / s.low_freq_factor;
    const double high_freq_wavelen = old_context / s.high_freq_factor;
    const auto wavelen = 2 * std::numbers::pi / inv_freq;
    auto scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq);
    const auto smooth = (old_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    const auto smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
    const auto medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
    return torch::where(medium, smoothed, scaled).to(f32);
  }
};

/// HF's LlamaRMSNorm: x / sqrt(mean(x^2) + eps) computed in float32, scaled by a learned weight.
class LlamaRMSNormImpl : public torch::nn::Module {
 public:
  LlamaRMSNormImpl(std::int64_t size, double eps)
      : eps_(eps), weight(register_parameter("weight", torch::ones({size}))) {}

  torch::Tensor forward(const torch::Tensor& x) {
    const auto x32 = x.to(torch::kFloat32);
    const auto normed = x32 * torch::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps_);
    return weight * normed.to(x.scalar_type());
  }

 private:
  double eps_;

 public:
  torch::Tensor weight;
};
TORCH_MODULE(LlamaRMSNorm);

/// HF's rotate_half: the head dimension's two halves (x1, x2) become (-x2, x1).
[[nodiscard]] inline torch::Tensor llama_rotate_half(const torch::Tensor& x) {
  const auto half = x.size(-1) / 2;
  return torch::cat({-x.slice(-1, half), x.slice(-1, 0, half)}, -1);
}

/// Self-attention with rotary embeddings and grouped keys and values (num_key_value_heads <=
/// num_attention_heads: each key/value head serves num_attention_heads / num_key_value_heads query
/// heads).
class LlamaAttentionImpl : public torch::nn::Module {
 public:
  explicit LlamaAttentionImpl(const LlamaConfig& c)
      : heads_(c.num_attention_heads), kv_heads_(c.kv_heads()), head_dim_(c.head_size()), dropout_(c.attention_dropout),
        q_proj(register_module("q_proj", linear(c.hidden_size, heads_ * head_dim_, c.attention_bias))),
        k_proj(register_module("k_proj", linear(c.hidden_size, kv_heads_ * head_dim_, c.attention_bias))),
        v_proj(register_module("v_proj", linear(c.hidden_size, kv_heads_ * head_dim_, c.attention_bias))),
        o_proj(register_module("o_proj", linear(heads_ * head_dim_, c.hidden_size, c.attention_bias))) {}

  /// x [B, T, hidden]; cos/sin [B or 1, T, head_dim]; mask [B, 1, T, past + T] bool (true: may
  /// attend), or undefined for plain causal attention without a cache. With `cache`, the new keys and
  /// values are appended to cache->self_k / self_v ([B, kv_heads, length, head_dim], after rotation)
  /// and the queries attend to everything cached before them too.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& cos,
                        const torch::Tensor& sin, LayerCache* cache = nullptr) {
    const auto batch = x.size(0), length = x.size(1);
    auto heads = [&](const torch::Tensor& t, std::int64_t n) { return t.view({batch, length, n, head_dim_}).transpose(1, 2); };
    auto query = heads(q_proj(x), heads_), key = heads(k_proj(x), kv_heads_), value = heads(v_proj(x), kv_heads_);
    const auto c = cos.unsqueeze(1), s = sin.unsqueeze(1);
    query = query * c + llama_rotate_half(query) * s;
    key = key * c + llama_rotate_half(key) * s;
    if (cache) {
      if (cache->self_k.defined()) {
        key = torch::cat({cache->self_k, key}, 2);
        value = torch::cat({cache->self_v, value}, 2);
      }
      cache->self_k = key;
      cache->self_v = value;
    }
    // HF's repeat_kv: each key/value head repeated for the query heads it serves.
    const auto groups = heads_ / kv_heads_;
    if (groups > 1) {
      auto repeat = [&](const torch::Tensor& t) {
        return t.unsqueeze(2).expand({batch, kv_heads_, groups, t.size(2), head_dim_}).reshape({batch, heads_, t.size(2), head_dim_});
      };
      key = repeat(key);
      value = repeat(value);
    }
    const double dropout_p = is_training() ? dropout_ : 0.0;
    torch::Tensor attended;
    if (!mask.defined()) {
      attended = at::scaled_dot_product_attention(query, key, value, {}, dropout_p, /*is_causal=*/true);
    } else {
      // A query row that may attend to nothing (a left-padding position) gets zeros, as torch's sdpa
      // gives HF on the CPU. Whether a backend would give zeros or NaN there, the row attends to every
      // key first and is zeroed after, so it stays finite and cannot spread a NaN to real positions
      // through a later layer's values. Its logits still count once: they predict the first token.
      const auto has_key = mask.any(-1, /*keepdim=*/true);
      attended = at::scaled_dot_product_attention(query, key, value, mask.logical_or(has_key.logical_not()), dropout_p,
                                                  /*is_causal=*/false)
                     .masked_fill(has_key.logical_not(), 0);
    }
    return o_proj(attended.transpose(1, 2).reshape({batch, length, heads_ * head_dim_}));
  }

 private:
  static torch::nn::Linear linear(std::int64_t in, std::int64_t out, bool bias) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
  }
  std::int64_t heads_, kv_heads_, head_dim_;
  double dropout_;

 public:
  torch::nn::Linear q_proj, k_proj, v_proj, o_proj;
};
TORCH_MODULE(LlamaAttention);

/// SwiGLU: down_proj(act(gate_proj(x)) * up_proj(x)).
class LlamaMLPImpl : public torch::nn::Module {
 public:
  explicit LlamaMLPImpl(const LlamaConfig& c)
      : activation_(parse_activation(c.hidden_act, "LlamaConfig")),
        gate_proj(register_module("gate_proj", linear(c.hidden_size, c.intermediate_size, c.mlp_bias))),
        up_proj(register_module("up_proj", linear(c.hidden_size, c.intermediate_size, c.mlp_bias))),
        down_proj(register_module("down_proj", linear(c.intermediate_size, c.hidden_size, c.mlp_bias))) {}

  torch::Tensor forward(const torch::Tensor& x) { return down_proj(apply_activation(activation_, gate_proj(x)) * up_proj(x)); }

 private:
  static torch::nn::Linear linear(std::int64_t in, std::int64_t out, bool bias) {
    return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
  }
  Activation activation_;

 public:
  torch::nn::Linear gate_proj, up_proj, down_proj;
};
TORCH_MODULE(LlamaMLP);

/// One decoder layer: x + attention(norm(x)), then x + mlp(norm(x)). Its class name is HF's
/// (LlamaDecoderLayer), the name fsdp_transformer_layer_cls_to_wrap gives it.
class LlamaDecoderLayerImpl : public torch::nn::Module {
 public:
  explicit LlamaDecoderLayerImpl(const LlamaConfig& c)
      : self_attn(register_module("self_attn", LlamaAttention(c))),
        mlp(register_module("mlp", LlamaMLP(c))),
        input_layernorm(register_module("input_layernorm", LlamaRMSNorm(c.hidden_size, c.rms_norm_eps))),
        post_attention_layernorm(register_module("post_attention_layernorm", LlamaRMSNorm(c.hidden_size, c.rms_norm_eps))) {}

  /// Tensors only (trainpp::call can checkpoint it and a sharding policy can gather around it).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& cos, const torch::Tensor& sin) {
    return forward(x, mask, cos, sin, nullptr);
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& cos, const torch::Tensor& sin,
                        LayerCache* cache) {
    const auto h = x + self_attn->forward(input_layernorm(x), mask, cos, sin, cache);
    return h + mlp(post_attention_layernorm(h));
  }

  LlamaAttention self_attn;
  LlamaMLP mlp;
  LlamaRMSNorm input_layernorm, post_attention_layernorm;
};
TORCH_MODULE(LlamaDecoderLayer);

/// The decoder without its head (HF's LlamaModel, "model." in LlamaForCausalLM's names).
class LlamaModelImpl : public torch::nn::Module {
 public:
  explicit LlamaModelImpl(const LlamaConfig& c) : inv_freq_(c.rope_inv_freq()) {
    auto embedding = torch::nn::EmbeddingOptions(c.vocab_size, c.hidden_size);
    if (c.pad_token_id) embedding.padding_idx(*c.pad_token_id);
    embed_tokens = register_module("embed_tokens", torch::nn::Embedding(embedding));
    layers = register_module("layers", torch::nn::ModuleList());
    for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) {
      blocks.emplace_back(c);
      layers->push_back(blocks.back());
    }
    norm = register_module("norm", LlamaRMSNorm(c.hidden_size, c.rms_norm_eps));
  }

  /// The final hidden states [B, T, hidden] (after the last norm). See LlamaForCausalLM::logits for
  /// the arguments.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                        const torch::Tensor& position_ids, KVCache* cache, bool checkpointing) {
    const auto batch = input_ids.size(0), length = input_ids.size(1);
    const std::int64_t past = cache && !cache->layers.empty() && cache->layers.front().self_k.defined()
                                  ? cache->layers.front().self_k.size(2)
                                  : 0;
    if (cache) cache->layers.resize(blocks.size());
    auto x = embed_tokens(input_ids);

    // HF's forward counts positions from the cache's length unless position_ids are given.
    const auto positions = position_ids.defined() ? position_ids.view({-1, length})
                                                  : torch::arange(past, past + length, input_ids.options()).unsqueeze(0);
    auto [cos, sin] = rotary(positions, x.scalar_type());

    torch::Tensor mask;  // undefined: causal attention without padding, sdpa's is_causal path
    if (attention_mask.defined() || past > 0) {
      const auto opts = input_ids.options().dtype(torch::kBool);
      mask = torch::ones({length, past + length}, opts).tril(past).view({1, 1, length, past + length});
      if (attention_mask.defined()) {
        if (attention_mask.dim() != 2 || attention_mask.size(0) != batch || attention_mask.size(1) != past + length)
          throw error("Llama: attention_mask must be [batch, past + length] = [{}, {}], got [{}]", batch, past + length,
                      fmt::join(attention_mask.sizes(), ", "));
        mask = mask.logical_and(attention_mask.to(torch::kBool).view({batch, 1, 1, past + length}));
      }
    }

    for (std::size_t i = 0; i < blocks.size(); ++i) {
      if (cache) {
        x = blocks[i]->forward(x, mask, cos, sin, &cache->layers[i]);
      } else if (checkpointing && is_training()) {
        // The layer is captured by pointer: its recomputation runs in backward, after this returns.
        x = gradient_checkpoint(
            [layer = blocks[i]](const torch::Tensor& h, const torch::Tensor& m, const torch::Tensor& c,
                                const torch::Tensor& s) mutable { return trainpp::call(layer, h, m, c, s); },
            x, mask, cos, sin);
      } else {
        x = trainpp::call(blocks[i], x, mask, cos, sin);
      }
    }
    return norm(x);
  }

  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  std::vector<LlamaDecoderLayer> blocks;  // layers' elements, typed
  LlamaRMSNorm norm{nullptr};

 private:
  /// cos and sin of the rotary angles, [B or 1, T, head_dim], in float32 and then `dtype` (HF's
  /// LlamaRotaryEmbedding). The frequencies are no buffer (HF's are not persistent either): they
  /// follow the input's device here, copied once per device.
  std::pair<torch::Tensor, torch::Tensor> rotary(const torch::Tensor& positions, c10::ScalarType dtype) {
    if (inv_freq_.device() != positions.device()) inv_freq_ = inv_freq_.to(positions.device());
    const auto angles = positions.to(torch::kFloat32).unsqueeze(-1) * inv_freq_;
    const auto emb = torch::cat({angles, angles}, -1);
    return {emb.cos().to(dtype), emb.sin().to(dtype)};
  }
  torch::Tensor inv_freq_;
};
TORCH_MODULE(LlamaModel);

/// HF's LlamaForCausalLM: forward follows the Trainer's model contract.
class LlamaForCausalLMImpl : public torch::nn::Module {
 public:
  // What models/pretrained.hpp needs to read and write this model's directories.
  static constexpr std::string_view model_type = "llama";
  /// Position t's logits score the label at t + 1 (the Trainer's label smoothing shifts the labels).
  static constexpr bool is_causal_lm = true;
  static constexpr std::string_view architecture = "LlamaForCausalLM";
  static constexpr std::array<std::string_view, 5> required_config_keys{"vocab_size", "hidden_size", "intermediate_size",
                                                                        "num_hidden_layers", "num_attention_heads"};
  static constexpr bool can_generate = true;

  /// From a config.json's contents (from_pretrained): its keys, the ones Llama does not read included,
  /// are what save_pretrained writes back.
  explicit LlamaForCausalLMImpl(PretrainedConfig config)
      : LlamaForCausalLMImpl(LlamaConfig::from_json(config.json(), config.source())) {
    pretrained_ = std::move(config);
  }

  explicit LlamaForCausalLMImpl(const LlamaConfig& config)
      : config_(validated(config)), pretrained_(config_.to_json()) {
    model = register_module("model", LlamaModel(config_));
    if (!config_.tie_word_embeddings)
      lm_head = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(config_.hidden_size, config_.vocab_size).bias(false)));
    init_weights();
  }

  /// Batch keys: "input_ids" [B, T] int64; optional "attention_mask" [B, T] (1: a token, 0: padding),
  /// "position_ids" [B or 1, T] (default 0..T-1, as HF's forward: left-padded batches give their own),
  /// and "labels" [B, T] (-100: not scored; shifted inside, as HF's).
  CausalLMOutput forward(const Batch& batch) {
    auto optional = [&](const char* key) { return batch.contains(key) ? batch.at(key) : torch::Tensor(); };
    CausalLMOutput out;
    out.logits = logits(batch.at("input_ids"), optional("attention_mask"), optional("position_ids"));
    if (batch.contains("labels")) {
      auto [loss_sum, num_tokens] = causal_lm_token_loss(out.logits, batch.at("labels"));
      out.loss = loss_sum / num_tokens;
      out.loss_sum = std::move(loss_sum);
      out.num_tokens = std::move(num_tokens);
    }
    return out;
  }

  /// The label tokens forward's loss sums over: labels[:, 1:] that are not -100 (the Trainer's
  /// token-level normalisation, concepts/token_loss.hpp).
  [[nodiscard]] torch::Tensor num_items_in_batch(const Batch& batch) const { return causal_lm_num_items(batch, "Llama"); }

  /// [B, T, vocab_size] for input_ids [B, T]. attention_mask [B, past + T] (undefined: no padding);
  /// position_ids [B or 1, T] (undefined: past .. past + T - 1). With `cache`, continues the sequences
  /// whose keys and values it holds and appends the new ones (one LayerCache per layer).
  torch::Tensor logits(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                       const torch::Tensor& position_ids = {}, KVCache* cache = nullptr) {
    if (input_ids.dim() != 2 || input_ids.scalar_type() != torch::kLong)
      throw error("Llama: input_ids must be a [batch, length] int64 tensor, got [{}] {}", fmt::join(input_ids.sizes(), ", "),
                  c10::toString(input_ids.scalar_type()));
    if (position_ids.defined() && position_ids.size(-1) != input_ids.size(1))
      throw error("Llama: position_ids [{}] do not match input_ids [{}]", fmt::join(position_ids.sizes(), ", "),
                  fmt::join(input_ids.sizes(), ", "));
    const auto hidden = model->forward(input_ids, attention_mask, position_ids, cache, gradient_checkpointing_);
    return config_.tie_word_embeddings ? torch::nn::functional::linear(hidden, model->embed_tokens->weight) : lm_head(hidden);
  }

  /// From now on each decoder layer is recomputed in backward instead of keeping its activations
  /// (training mode, no cache), as HF's gradient_checkpointing_enable. The Trainer calls it for
  /// --gradient_checkpointing.
  void gradient_checkpointing_enable() { gradient_checkpointing_ = true; }
  [[nodiscard]] bool is_gradient_checkpointing() const { return gradient_checkpointing_; }

  [[nodiscard]] const LlamaConfig& config() const { return config_; }
  [[nodiscard]] const PretrainedConfig& pretrained_config() const { return pretrained_; }
  /// {target, source}: with tie_word_embeddings the head is the embedding (no lm_head is registered).
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> tied_weights() const {
    if (!config_.tie_word_embeddings) return {};
    return {{"lm_head.weight", "model.embed_tokens.weight"}};
  }

  LlamaModel model{nullptr};
  torch::nn::Linear lm_head{nullptr};  ///< null when tie_word_embeddings: the head is model.embed_tokens

 private:
  static const LlamaConfig& validated(const LlamaConfig& config) {
    config.validate();
    return config;
  }

  /// HF's _init_weights: N(0, initializer_range) for projections and embeddings, zero biases, the
  /// padding row zero, norms at one.
  void init_weights() {
    torch::NoGradGuard no_grad;
    for (auto& module : modules(/*include_self=*/false)) {
      if (auto* l = module->as<torch::nn::Linear>()) {
        l->weight.normal_(0, config_.initializer_range);
        if (l->bias.defined()) l->bias.zero_();
      } else if (auto* e = module->as<torch::nn::Embedding>()) {
        e->weight.normal_(0, config_.initializer_range);
        if (config_.pad_token_id) e->weight[*config_.pad_token_id].zero_();
      }
    }
  }

  LlamaConfig config_;
  PretrainedConfig pretrained_;
  bool gradient_checkpointing_ = false;
};
TORCH_MODULE(LlamaForCausalLM);

}  // namespace trainpp
