#pragma once
// A small encoder-decoder transformer (pre-LayerNorm, scaled-dot-product attention) for the seq2seq
// example: trainpp::Seq2SeqTrainer trains it through forward(), trainpp::generate decodes with it
// through encode() and decode_step() with a KV cache.

#include <trainpp/trainpp.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace seq2seq_example {

struct TransformerOptions {
  std::int64_t vocab = 0;
  std::int64_t dim = 64;
  std::int64_t heads = 4;
  std::int64_t encoder_layers = 2;
  std::int64_t decoder_layers = 2;
  std::int64_t ff = 256;
  std::int64_t max_positions = 64;
  std::int64_t pad_token_id = 0, decoder_start_token_id = 1, eos_token_id = 2;
};

/// [B, T, D] -> [B, heads, T, D / heads] and back.
inline torch::Tensor split_heads(const torch::Tensor& x, std::int64_t heads) {
  return x.view({x.size(0), x.size(1), heads, x.size(2) / heads}).transpose(1, 2);
}
inline torch::Tensor merge_heads(const torch::Tensor& x) {
  return x.transpose(1, 2).reshape({x.size(0), x.size(2), -1});
}
/// Attention over keys where `mask` is true (SDPA's boolean mask: true takes part).
inline torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& mask) {
  return torch::scaled_dot_product_attention(q, k, v, mask);
}

struct EncoderLayerImpl : torch::nn::Module {
  std::int64_t heads;
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Linear qkv{nullptr}, out{nullptr}, ff1{nullptr}, ff2{nullptr};
  explicit EncoderLayerImpl(const TransformerOptions& o) : heads(o.heads) {
    norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim})));
    norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim})));
    qkv = register_module("qkv", torch::nn::Linear(o.dim, 3 * o.dim));
    out = register_module("out", torch::nn::Linear(o.dim, o.dim));
    ff1 = register_module("ff1", torch::nn::Linear(o.dim, o.ff));
    ff2 = register_module("ff2", torch::nn::Linear(o.ff, o.dim));
  }
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& key_mask) {
    auto parts = qkv(norm1(x)).chunk(3, -1);
    x = x + out(merge_heads(attention(split_heads(parts[0], heads), split_heads(parts[1], heads),
                                      split_heads(parts[2], heads), key_mask)));
    return x + ff2(torch::gelu(ff1(norm2(x))));
  }
};
TORCH_MODULE(EncoderLayer);

struct DecoderLayerImpl : torch::nn::Module {
  std::int64_t heads;
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
  torch::nn::Linear qkv{nullptr}, self_out{nullptr}, cross_q{nullptr}, cross_kv{nullptr}, cross_out{nullptr};
  torch::nn::Linear ff1{nullptr}, ff2{nullptr};
  explicit DecoderLayerImpl(const TransformerOptions& o) : heads(o.heads) {
    norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim})));
    norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim})));
    norm3 = register_module("norm3", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim})));
    qkv = register_module("qkv", torch::nn::Linear(o.dim, 3 * o.dim));
    self_out = register_module("self_out", torch::nn::Linear(o.dim, o.dim));
    cross_q = register_module("cross_q", torch::nn::Linear(o.dim, o.dim));
    cross_kv = register_module("cross_kv", torch::nn::Linear(o.dim, 2 * o.dim));
    cross_out = register_module("cross_out", torch::nn::Linear(o.dim, o.dim));
    ff1 = register_module("ff1", torch::nn::Linear(o.dim, o.ff));
    ff2 = register_module("ff2", torch::nn::Linear(o.ff, o.dim));
  }
  /// The new tokens x [B, T, D] after the ones in `cache`; appends their keys and values to it, and
  /// computes the encoder's keys and values once.
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& encoder_states, const torch::Tensor& causal_mask,
                        const torch::Tensor& source_mask, trainpp::LayerCache& cache) {
    auto parts = qkv(norm1(x)).chunk(3, -1);
    auto k = split_heads(parts[1], heads), v = split_heads(parts[2], heads);
    if (cache.self_k.defined()) k = torch::cat({cache.self_k, k}, 2), v = torch::cat({cache.self_v, v}, 2);
    cache.self_k = k, cache.self_v = v;
    x = x + self_out(merge_heads(attention(split_heads(parts[0], heads), k, v, causal_mask)));
    if (!cache.cross_k.defined()) {
      auto kv = cross_kv(encoder_states).chunk(2, -1);
      cache.cross_k = split_heads(kv[0], heads), cache.cross_v = split_heads(kv[1], heads);
    }
    x = x + cross_out(merge_heads(attention(split_heads(cross_q(norm2(x)), heads), cache.cross_k, cache.cross_v, source_mask)));
    return x + ff2(torch::gelu(ff1(norm3(x))));
  }
};
TORCH_MODULE(DecoderLayer);

/// The encoder-decoder. forward(batch) is the training path (input_ids, attention_mask, labels; the
/// decoder input is the labels shifted right, as HF's models make it); encode / decode_step are what
/// trainpp::generate needs (trainpp::EncoderDecoderModel).
struct Seq2SeqTransformerImpl : torch::nn::Module {
  TransformerOptions options;
  torch::nn::Embedding tokens{nullptr}, source_positions{nullptr}, target_positions{nullptr};
  std::vector<EncoderLayer> encoder;
  std::vector<DecoderLayer> decoder;
  torch::nn::LayerNorm encoder_norm{nullptr}, decoder_norm{nullptr};
  torch::nn::Linear head{nullptr};

  explicit Seq2SeqTransformerImpl(TransformerOptions o) : options(o) {
    tokens = register_module("tokens", torch::nn::Embedding(o.vocab, o.dim));
    source_positions = register_module("source_positions", torch::nn::Embedding(o.max_positions, o.dim));
    target_positions = register_module("target_positions", torch::nn::Embedding(o.max_positions, o.dim));
    for (std::int64_t i = 0; i < o.encoder_layers; ++i)
      encoder.push_back(register_module("encoder" + std::to_string(i), EncoderLayer(o)));
    for (std::int64_t i = 0; i < o.decoder_layers; ++i)
      decoder.push_back(register_module("decoder" + std::to_string(i), DecoderLayer(o)));
    encoder_norm = register_module("encoder_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim})));
    decoder_norm = register_module("decoder_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim})));
    head = register_module("head", torch::nn::Linear(o.dim, o.vocab));
  }

  /// HF's model.generation_config.
  [[nodiscard]] trainpp::GenerationConfig generation_config() const {
    trainpp::GenerationConfig c;
    c.decoder_start_token_id = options.decoder_start_token_id;
    c.eos_token_id = options.eos_token_id;
    c.pad_token_id = options.pad_token_id;
    return c;
  }

  static torch::Tensor source_mask(const torch::Tensor& attention_mask) {  // [B, S] -> [B, 1, 1, S] bool
    return attention_mask.to(torch::kBool).unsqueeze(1).unsqueeze(1);
  }

  torch::Tensor encode(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
    const auto positions = torch::arange(input_ids.size(1), input_ids.options());
    auto x = tokens(input_ids) + source_positions(positions);
    const auto mask = source_mask(attention_mask);
    for (auto& layer : encoder) x = layer(x, mask);
    return encoder_norm(x);
  }

  torch::Tensor decode_step(const torch::Tensor& decoder_input_ids, const torch::Tensor& encoder_states,
                            const torch::Tensor& attention_mask, trainpp::KVCache& cache) {
    if (cache.layers.empty()) cache.layers.resize(decoder.size());
    const auto past = cache.layers[0].self_k.defined() ? cache.layers[0].self_k.size(2) : 0;
    const auto t = decoder_input_ids.size(1);
    const auto positions = torch::arange(past, past + t, decoder_input_ids.options());
    // New token i (at position past + i) sees every key up to its own position.
    const auto causal = torch::arange(past + t, decoder_input_ids.options()).unsqueeze(0).le(positions.unsqueeze(1));
    const auto mask = source_mask(attention_mask);
    auto x = tokens(decoder_input_ids) + target_positions(positions);
    for (std::size_t i = 0; i < decoder.size(); ++i) x = decoder[i](x, encoder_states, causal, mask, cache.layers[i]);
    return head(decoder_norm(x));
  }

  trainpp::ModelOutput forward(const trainpp::Batch& batch) {
    const auto& input_ids = batch.at("input_ids");
    const auto& attention_mask = batch.at("attention_mask");
    const auto& labels = batch.at("labels");
    // The decoder reads the start token and the labels but the last, -100 read as padding.
    auto decoder_input_ids = torch::cat(
        {torch::full({labels.size(0), 1}, options.decoder_start_token_id, labels.options()),
         labels.narrow(1, 0, labels.size(1) - 1)}, 1);
    decoder_input_ids = decoder_input_ids.masked_fill(decoder_input_ids.eq(-100), options.pad_token_id);
    trainpp::KVCache cache;
    const auto logits = decode_step(decoder_input_ids, encode(input_ids, attention_mask), attention_mask, cache);
    const auto loss = torch::nn::functional::cross_entropy(
        logits.reshape({-1, options.vocab}), labels.reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
    return {loss, logits};
  }
};
TORCH_MODULE(Seq2SeqTransformer);

}  // namespace seq2seq_example
