#pragma once
// GPT: the GPT-2 architecture (HF's GPT2LMHeadModel) as a LibTorch module — learned position
// embeddings, pre-LayerNorm blocks, one fused q/k/v projection, causal scaled-dot-product attention,
// a 4x MLP with GELU (tanh approximation), a final LayerNorm and an output head tied to the token
// embedding. Parameter names are HF's without the "transformer." prefix (wte.weight,
// h.0.attn.c_attn.weight, ...), so HF weights load by name; HF's Conv1D stores its weights as
// [in, out], the transpose of our Linear's [out, in].

#include <trainpp/trainpp.hpp>
#include <trainpp/nn/gradient_checkpointing.hpp>

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

/// The architecture's sizes, named as HF's GPT2Config. One dropout rate stands for HF's three
/// (embd_pdrop, attn_pdrop, resid_pdrop), which GPT-2 sets equal.
struct GPTConfig {
  int64_t vocab_size = 50257;
  int64_t n_positions = 1024;
  int64_t n_embd = 768;
  int64_t n_layer = 12;
  int64_t n_head = 12;
  double dropout = 0.1;
  double layer_norm_epsilon = 1e-5;

  /// Throws trainpp::Error naming the first size that cannot build a model.
  void validate() const {
    for (auto [value, name] : {std::pair{vocab_size, "vocab_size"}, {n_positions, "n_positions"},
                               {n_embd, "n_embd"}, {n_layer, "n_layer"}, {n_head, "n_head"}})
      if (value <= 0) throw trainpp::error("GPTConfig: {} must be positive, got {}", name, value);
    if (n_embd % n_head != 0)
      throw trainpp::error("GPTConfig: n_embd ({}) must be a multiple of n_head ({})", n_embd, n_head);
    if (!(dropout >= 0 && dropout < 1)) throw trainpp::error("GPTConfig: dropout must be in [0, 1), got {}", dropout);
    if (!(layer_norm_epsilon > 0))
      throw trainpp::error("GPTConfig: layer_norm_epsilon must be positive, got {}", layer_norm_epsilon);
  }
};

/// The keys and values one attention layer has seen so far, [B, n_head, length, head_dim] each;
/// undefined before the first call. Lets generation feed one new token at a time.
struct LayerKVCache {
  torch::Tensor keys, values;
  [[nodiscard]] int64_t length() const { return keys.defined() ? keys.size(2) : 0; }
};
struct KVCache {
  std::vector<LayerKVCache> layers;
  [[nodiscard]] int64_t length() const { return layers.empty() ? 0 : layers.front().length(); }
};

class GPTAttentionImpl : public torch::nn::Module {
 public:
  explicit GPTAttentionImpl(const GPTConfig& config)
      : n_head_(config.n_head), n_embd_(config.n_embd), dropout_(config.dropout),
        c_attn(register_module("c_attn", torch::nn::Linear(config.n_embd, 3 * config.n_embd))),
        c_proj(register_module("c_proj", torch::nn::Linear(config.n_embd, config.n_embd))),
        resid_dropout(register_module("resid_dropout", torch::nn::Dropout(config.dropout))) {}

  /// x: [B, T, n_embd]. With `cache`, the new keys and values are appended to it and the queries
  /// attend to everything cached before them as well.
  torch::Tensor forward(const torch::Tensor& x, LayerKVCache* cache = nullptr) {
    const int64_t batch = x.size(0), length = x.size(1), head_dim = n_embd_ / n_head_;
    auto split_heads = [&](const torch::Tensor& t) { return t.view({batch, length, n_head_, head_dim}).transpose(1, 2); };
    auto qkv = c_attn(x).split(n_embd_, /*dim=*/2);
    torch::Tensor query = split_heads(qkv[0]), key = split_heads(qkv[1]), value = split_heads(qkv[2]);

    int64_t past = 0;
    if (cache) {
      past = cache->length();
      if (past > 0) {
        key = torch::cat({cache->keys, key}, 2);
        value = torch::cat({cache->values, value}, 2);
      }
      cache->keys = key;
      cache->values = value;
    }
    const double dropout_p = is_training() ? dropout_ : 0.0;
    torch::Tensor y;
    if (past == 0) {
      y = at::scaled_dot_product_attention(query, key, value, {}, dropout_p, /*is_causal=*/true);
    } else if (length == 1) {
      // One new token sees every cached position; is_causal would align the mask top-left and hide them.
      y = at::scaled_dot_product_attention(query, key, value, {}, dropout_p, /*is_causal=*/false);
    } else {
      auto mask = torch::ones({length, past + length}, x.options().dtype(torch::kBool)).tril(past);
      y = at::scaled_dot_product_attention(query, key, value, mask, dropout_p, /*is_causal=*/false);
    }
    return resid_dropout(c_proj(y.transpose(1, 2).reshape({batch, length, n_embd_})));
  }

 private:
  int64_t n_head_, n_embd_;
  double dropout_;

 public:
  torch::nn::Linear c_attn, c_proj;
  torch::nn::Dropout resid_dropout;
};
TORCH_MODULE(GPTAttention);

class GPTMLPImpl : public torch::nn::Module {
 public:
  explicit GPTMLPImpl(const GPTConfig& config)
      : c_fc(register_module("c_fc", torch::nn::Linear(config.n_embd, 4 * config.n_embd))),
        c_proj(register_module("c_proj", torch::nn::Linear(4 * config.n_embd, config.n_embd))),
        dropout(register_module("dropout", torch::nn::Dropout(config.dropout))) {}

  /// HF's "gelu_new" is GELU with the tanh approximation.
  torch::Tensor forward(const torch::Tensor& x) { return dropout(c_proj(torch::gelu(c_fc(x), "tanh"))); }

  torch::nn::Linear c_fc, c_proj;
  torch::nn::Dropout dropout;
};
TORCH_MODULE(GPTMLP);

class GPTBlockImpl : public torch::nn::Module {
 public:
  explicit GPTBlockImpl(const GPTConfig& config)
      : ln_1(register_module("ln_1", make_layer_norm(config))),
        attn(register_module("attn", GPTAttention(config))),
        ln_2(register_module("ln_2", make_layer_norm(config))),
        mlp(register_module("mlp", GPTMLP(config))) {}

  torch::Tensor forward(torch::Tensor x, LayerKVCache* cache = nullptr) {
    x = x + attn(ln_1(x), cache);
    return x + mlp(ln_2(x));
  }

  static torch::nn::LayerNorm make_layer_norm(const GPTConfig& config) {
    return torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.n_embd}).eps(config.layer_norm_epsilon));
  }

  torch::nn::LayerNorm ln_1;
  GPTAttention attn;
  torch::nn::LayerNorm ln_2;
  GPTMLP mlp;
};
TORCH_MODULE(GPTBlock);

/// The decoder with its language-modelling head. forward follows HF's contract: given "labels" it
/// returns the loss first.
class GPTImpl : public torch::nn::Module {
 public:
  explicit GPTImpl(const GPTConfig& config) : config_(validated(config)) {
    wte = register_module("wte", torch::nn::Embedding(config.vocab_size, config.n_embd));
    wpe = register_module("wpe", torch::nn::Embedding(config.n_positions, config.n_embd));
    drop = register_module("drop", torch::nn::Dropout(config.dropout));
    h = register_module("h", torch::nn::ModuleList());
    for (int64_t i = 0; i < config.n_layer; ++i) {
      blocks_.emplace_back(config);
      h->push_back(blocks_.back());
    }
    ln_f = register_module("ln_f", GPTBlockImpl::make_layer_norm(config));
    init_weights();
  }

  /// input_ids [B, T] (int64); "labels" [B, T] optional, -100 where no loss is wanted. As HF's
  /// GPT2LMHeadModel, the labels are the inputs themselves: position t's logits are scored against
  /// labels[t + 1] here, not by the caller. The loss is a float32 mean cross-entropy over the scored
  /// positions, whatever the autocast dtype of the logits.
  /// "attention_mask", if present, is ignored: attention is causal only, which is exact for batches
  /// without padding (every block this example builds is full). Padded batches would need the mask
  /// combined with the causal one and position ids that skip the padding.
  trainpp::ModelOutput forward(const trainpp::Batch& batch) {
    trainpp::ModelOutput out{.logits = logits(batch.at("input_ids"))};
    if (batch.contains("labels")) {
      const torch::Tensor& labels = batch.at("labels");
      if (labels.sizes() != out.logits.sizes().slice(0, 2))
        throw trainpp::error("GPT: labels have shape [{}] but input_ids have [{}]", fmt::join(labels.sizes(), ", "),
                             fmt::join(out.logits.sizes().slice(0, 2), ", "));
      // The labels move left rather than the logits right (as HF's ForCausalLMLoss does): the last
      // position gets -100, and the logits, the largest tensor of the step, are not sliced and copied.
      auto next_labels = torch::constant_pad_nd(labels.slice(1, 1), {0, 1}, -100);
      out.loss = torch::nn::functional::cross_entropy(
          out.logits.to(torch::kFloat32).reshape({-1, config_.vocab_size}), next_labels.reshape({-1}),
          torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
    }
    return out;
  }

  /// [B, T, vocab_size] for input_ids [B, T], T <= n_positions.
  torch::Tensor logits(const torch::Tensor& input_ids) { return logits(input_ids, nullptr); }

  /// As above, continuing the sequences whose keys and values `cache` holds (and extending it).
  torch::Tensor logits(const torch::Tensor& input_ids, KVCache* cache) {
    if (input_ids.dim() != 2 || input_ids.scalar_type() != torch::kLong)
      throw trainpp::error("GPT: input_ids must be a [batch, length] int64 tensor, got [{}] {}",
                           fmt::join(input_ids.sizes(), ", "), c10::toString(input_ids.scalar_type()));
    const int64_t past = cache ? cache->length() : 0, length = input_ids.size(1);
    if (past + length > config_.n_positions)
      throw trainpp::error("GPT: {} positions exceed n_positions = {}", past + length, config_.n_positions);
    if (cache) cache->layers.resize(static_cast<std::size_t>(config_.n_layer));

    auto positions = torch::arange(past, past + length, input_ids.options());
    torch::Tensor x = drop(wte(input_ids) + wpe(positions));
    for (std::size_t i = 0; i < blocks_.size(); ++i) {
      if (gradient_checkpointing_ && is_training() && !cache) {
        // The block is captured by pointer, not reference: its recomputation runs in backward, after this returns.
        x = trainpp::gradient_checkpoint([block = blocks_[i].ptr()](const torch::Tensor& input) { return block->forward(input); }, x);
      } else {
        x = blocks_[i]->forward(x, cache ? &cache->layers[i] : nullptr);
      }
    }
    // The head is the token embedding itself (tied), hence linear with wte's weight.
    return torch::nn::functional::linear(ln_f(x), wte->weight);
  }

  /// From now on each block's activations are dropped after the forward and recomputed in the
  /// backward (training mode only), trading compute for memory as HF's gradient_checkpointing_enable.
  /// Idempotent: the Trainer calls it at every train().
  void gradient_checkpointing_enable() {
    if (!gradient_checkpointing_) trainpp::note("GPT: gradient checkpointing on; each block is recomputed in backward");
    gradient_checkpointing_ = true;
  }
  [[nodiscard]] bool is_gradient_checkpointing() const { return gradient_checkpointing_; }

  [[nodiscard]] const GPTConfig& config() const { return config_; }

  torch::nn::Embedding wte{nullptr}, wpe{nullptr};
  torch::nn::Dropout drop{nullptr};
  torch::nn::ModuleList h{nullptr};
  torch::nn::LayerNorm ln_f{nullptr};

 private:
  static const GPTConfig& validated(const GPTConfig& config) {
    config.validate();
    return config;
  }

  /// HF's GPT2PreTrainedModel._init_weights: N(0, 0.02) for embeddings and projections, zero biases,
  /// LayerNorm at identity, and the two projections that write into the residual stream (c_proj)
  /// scaled down by sqrt(2 * n_layer), so the stream's variance does not grow with depth.
  void init_weights() {
    torch::NoGradGuard no_grad;
    constexpr double init_std = 0.02;
    wte->weight.normal_(0, init_std);
    wpe->weight.normal_(0, init_std);
    const double residual_std = init_std / std::sqrt(2.0 * static_cast<double>(config_.n_layer));
    for (auto& block : blocks_) {
      for (auto* linear : {&block->attn->c_attn, &block->attn->c_proj, &block->mlp->c_fc, &block->mlp->c_proj}) {
        (*linear)->weight.normal_(0, init_std);
        (*linear)->bias.zero_();
      }
      block->attn->c_proj->weight.normal_(0, residual_std);
      block->mlp->c_proj->weight.normal_(0, residual_std);
      for (auto* norm : {&block->ln_1, &block->ln_2}) {
        (*norm)->weight.fill_(1);
        (*norm)->bias.zero_();
      }
    }
    ln_f->weight.fill_(1);
    ln_f->bias.zero_();
  }

  GPTConfig config_;
  std::vector<GPTBlock> blocks_;  // h's elements, typed
  bool gradient_checkpointing_ = false;
};
TORCH_MODULE(GPT);

/// How `sample` continues a prompt.
struct SamplingOptions {
  int64_t max_new_tokens = 200;
  double temperature = 1.0;  ///< 0: always the most likely token
  int64_t top_k = 0;         ///< draw among the k most likely tokens only (0: all)
  uint64_t seed = 0;         ///< the same seed, model and prompt give the same text
};

/// Continues each row of `prompt` ([B, T] int64, T >= 1) by `max_new_tokens` tokens drawn from the
/// model, and returns those new tokens, [B, max_new_tokens] on the CPU. Runs in eval mode (no
/// dropout) without gradients, and feeds one token per step through a KV cache; when the context
/// fills n_positions, it restarts from the last half of it (positions are absolute, so the cache
/// cannot slide). Draws with a generator of its own, leaving the global random state untouched.
inline torch::Tensor sample(GPT& model, torch::Tensor prompt, const SamplingOptions& options) {
  if (prompt.dim() != 2 || prompt.size(1) == 0 || prompt.scalar_type() != torch::kLong)
    throw trainpp::error("sample: the prompt must be a non-empty [batch, length] int64 tensor, got [{}] {}",
                         fmt::join(prompt.sizes(), ", "), c10::toString(prompt.scalar_type()));
  if (options.max_new_tokens < 0) throw trainpp::error("sample: max_new_tokens must be >= 0, got {}", options.max_new_tokens);
  if (!(options.temperature >= 0)) throw trainpp::error("sample: temperature must be >= 0, got {}", options.temperature);
  if (options.top_k < 0) throw trainpp::error("sample: top_k must be >= 0, got {}", options.top_k);

  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  const auto device = model->wte->weight.device();
  const int64_t n_positions = model->config().n_positions;
  torch::Tensor context = prompt.to(torch::kCPU);
  if (context.size(1) > n_positions) context = context.slice(1, context.size(1) - n_positions);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(options.seed);

  KVCache cache;
  torch::Tensor next_input = context;  // the tokens not yet in the cache
  std::vector<torch::Tensor> new_tokens;
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    if (cache.length() + next_input.size(1) > n_positions) {
      cache = KVCache{};
      next_input = context.slice(1, context.size(1) - std::max<int64_t>(1, n_positions / 2));
    }
    auto logits = model->logits(next_input.to(device), &cache).select(1, -1).to(torch::kCPU, torch::kFloat32);
    torch::Tensor token;
    if (options.temperature == 0) {
      token = logits.argmax(-1, /*keepdim=*/true);
    } else {
      logits = logits / options.temperature;
      if (options.top_k > 0 && options.top_k < logits.size(-1)) {
        auto kth_largest = std::get<0>(logits.topk(options.top_k, -1)).select(-1, -1).unsqueeze(-1);
        logits = logits.masked_fill(logits < kth_largest, -std::numeric_limits<double>::infinity());
      }
      token = torch::multinomial(logits.softmax(-1), 1, /*replacement=*/false, generator);
    }
    new_tokens.push_back(token);
    context = torch::cat({context, token}, 1);
    next_input = token;
  }
  if (was_training) model->train();
  if (new_tokens.empty()) return torch::empty({prompt.size(0), 0}, torch::kLong);
  return torch::cat(new_tokens, 1);
}
