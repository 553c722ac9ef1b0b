#pragma once
// A small transformer encoder for sequence classification (the shape of HF's
// BertForSequenceClassification, pre-norm): token and position embeddings, self-attention blocks
// with torch's scaled_dot_product_attention, mean pooling over the real tokens, a linear head.
// Given labels, its first output is the cross-entropy loss.

#include <trainpp/data/batch.hpp>
#include <trainpp/loss/model_output.hpp>
#include <trainpp/nn/gradient_checkpointing.hpp>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace text_classification {

struct EncoderConfig {
  std::int64_t vocab_size = 0;
  std::int64_t num_labels = 2;
  std::int64_t max_position_embeddings = 128;
  std::int64_t hidden_size = 64;
  std::int64_t num_hidden_layers = 2;
  std::int64_t num_attention_heads = 4;
  std::int64_t intermediate_size = 128;
  double dropout = 0.1;
};

/// One pre-norm encoder block: x + attention(norm(x)), then x + mlp(norm(x)).
struct EncoderLayerImpl : torch::nn::Module {
  explicit EncoderLayerImpl(const EncoderConfig& c)
      : heads(c.num_attention_heads),
        dropout_p(c.dropout),
        norm1(register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size})))),
        qkv(register_module("qkv", torch::nn::Linear(c.hidden_size, 3 * c.hidden_size))),
        out(register_module("out", torch::nn::Linear(c.hidden_size, c.hidden_size))),
        norm2(register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size})))),
        up(register_module("up", torch::nn::Linear(c.hidden_size, c.intermediate_size))),
        down(register_module("down", torch::nn::Linear(c.intermediate_size, c.hidden_size))),
        dropout(register_module("dropout", torch::nn::Dropout(c.dropout))) {}

  /// x: [batch, length, hidden]; keep: [batch, 1, 1, length], true where a key is a real token.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& keep) {
    const auto b = x.size(0), t = x.size(1), d = x.size(2);
    auto q_k_v = qkv(norm1(x)).view({b, t, 3, heads, d / heads}).permute({2, 0, 3, 1, 4});
    auto attended = at::scaled_dot_product_attention(q_k_v[0], q_k_v[1], q_k_v[2], keep,
                                                     is_training() ? dropout_p : 0.0);
    auto h = x + dropout(out(attended.transpose(1, 2).reshape({b, t, d})));
    return h + dropout(down(torch::gelu(up(norm2(h)))));
  }

  std::int64_t heads;
  double dropout_p;
  torch::nn::LayerNorm norm1;
  torch::nn::Linear qkv, out;
  torch::nn::LayerNorm norm2;
  torch::nn::Linear up, down;
  torch::nn::Dropout dropout;
};
TORCH_MODULE(EncoderLayer);

struct EncoderClassifierImpl : torch::nn::Module {
  explicit EncoderClassifierImpl(const EncoderConfig& c)
      : config(c),
        tokens(register_module("tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size))),
        positions(register_module("positions", torch::nn::Embedding(c.max_position_embeddings, c.hidden_size))),
        layers(register_module("layers", torch::nn::ModuleList())),
        norm(register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size})))),
        dropout(register_module("dropout", torch::nn::Dropout(c.dropout))),
        classifier(register_module("classifier", torch::nn::Linear(c.hidden_size, c.num_labels))) {
    for (std::int64_t i = 0; i < c.num_hidden_layers; ++i) {
      blocks.emplace_back(c);
      layers->push_back(blocks.back());
    }
  }

  /// HF's gradient_checkpointing_enable: from now on each block is recomputed in backward instead of
  /// keeping its activations (train() calls this for --gradient_checkpointing).
  void gradient_checkpointing_enable() { checkpointing = true; }

  /// input_ids and attention_mask: [batch, length]; labels: [batch] (optional).
  trainpp::ModelOutput forward(const trainpp::Batch& batch) {
    auto ids = batch.at("input_ids");
    auto mask = batch.at("attention_mask");
    // Sequences are padded to max_seq_length, as HF's run_glue does by default; the columns past the
    // longest sequence of this batch are padding everywhere and change nothing, so they are cut off
    // (one host sync per batch, which buys several times less work on short texts).
    const auto longest = std::max<std::int64_t>(mask.sum(1).max().item<std::int64_t>(), 1);
    ids = ids.slice(1, 0, longest);
    mask = mask.slice(1, 0, longest);

    const auto keep = mask.to(torch::kBool).view({mask.size(0), 1, 1, longest});
    auto x = dropout(tokens(ids) + positions(torch::arange(longest, ids.options())));
    for (auto& block : blocks) {
      if (checkpointing && is_training())
        x = trainpp::gradient_checkpoint(
            [block, keep](const torch::Tensor& h) mutable { return block->forward(h, keep); }, x);
      else
        x = block->forward(x, keep);
    }
    // Mean over the real tokens.
    const auto weights = mask.to(x.scalar_type()).unsqueeze(-1);
    const auto pooled = (norm(x) * weights).sum(1) / weights.sum(1).clamp_min(1);
    trainpp::ModelOutput output{.logits = classifier(dropout(pooled))};
    if (batch.contains("labels")) output.loss = torch::nn::functional::cross_entropy(output.logits, batch.at("labels"));
    return output;
  }

  EncoderConfig config;
  torch::nn::Embedding tokens, positions;
  torch::nn::ModuleList layers;
  std::vector<EncoderLayer> blocks;
  torch::nn::LayerNorm norm;
  torch::nn::Dropout dropout;
  torch::nn::Linear classifier;
  bool checkpointing = false;
};
TORCH_MODULE(EncoderClassifier);

}  // namespace text_classification
