#pragma once
// The benchmark's three models (bench/README.md, "Workloads"), with the member names of the Python
// models in bench/models.py, so that the initial weights Python writes load strictly. Each forward
// takes a trainpp::Batch ("x", and "labels" when training) and returns trainpp::ModelOutput: the same
// module serves the hand-written loop and the Trainer.

#include <trainpp/trainpp.hpp>

#include <cstdint>

namespace bench {

namespace F = torch::nn::functional;

/// Logits plus, when the batch carries labels, their cross-entropy.
inline trainpp::ModelOutput with_loss(torch::Tensor logits, const trainpp::Batch& batch) {
  trainpp::ModelOutput out{.logits = std::move(logits)};
  if (batch.contains("labels")) out.loss = F::cross_entropy(out.logits, batch.at("labels"));
  return out;
}

/// `mlp`: 64 -> 256 -> 256 -> 10, ReLU between.
struct MlpImpl : torch::nn::Module {
  torch::nn::Linear fc1{64, 256}, fc2{256, 256}, fc3{256, 10};

  MlpImpl() {
    register_module("fc1", fc1);
    register_module("fc2", fc2);
    register_module("fc3", fc3);
  }

  trainpp::ModelOutput forward(const trainpp::Batch& batch) {
    auto x = torch::relu(fc1(batch.at("x")));
    x = torch::relu(fc2(x));
    return with_loss(fc3(x), batch);
  }
};
TORCH_MODULE(Mlp);

/// `cnn`: the Fashion-MNIST example's network without its dropout.
struct CnnImpl : torch::nn::Module {
  torch::nn::Conv2d conv1{torch::nn::Conv2dOptions(1, 32, 3)};
  torch::nn::BatchNorm2d norm1{32};
  torch::nn::Conv2d conv2{torch::nn::Conv2dOptions(32, 64, 3)};
  torch::nn::BatchNorm2d norm2{64};
  torch::nn::Linear fc1{64 * 5 * 5, 128}, fc2{128, 10};

  CnnImpl() {
    register_module("conv1", conv1);
    register_module("norm1", norm1);
    register_module("conv2", conv2);
    register_module("norm2", norm2);
    register_module("fc1", fc1);
    register_module("fc2", fc2);
  }

  trainpp::ModelOutput forward(const trainpp::Batch& batch) {
    auto x = F::max_pool2d(torch::relu(norm1(conv1(batch.at("x")))), F::MaxPool2dFuncOptions(2));
    x = F::max_pool2d(torch::relu(norm2(conv2(x))), F::MaxPool2dFuncOptions(2));
    x = torch::relu(fc1(x.flatten(1)));
    return with_loss(fc2(x), batch);
  }
};
TORCH_MODULE(Cnn);

/// One pre-LayerNorm encoder layer: attention, then the MLP, each added to the residual stream.
struct EncoderLayerImpl : torch::nn::Module {
  static constexpr std::int64_t width = 128, heads = 4, head_width = width / heads, mlp_width = 512;

  torch::nn::LayerNorm ln1{torch::nn::LayerNormOptions({width})};
  torch::nn::Linear qkv{width, 3 * width}, proj{width, width};
  torch::nn::LayerNorm ln2{torch::nn::LayerNormOptions({width})};
  torch::nn::Linear fc1{width, mlp_width}, fc2{mlp_width, width};

  EncoderLayerImpl() {
    register_module("ln1", ln1);
    register_module("qkv", qkv);
    register_module("proj", proj);
    register_module("ln2", ln2);
    register_module("fc1", fc1);
    register_module("fc2", fc2);
  }

  torch::Tensor forward(torch::Tensor h) {
    const auto batch = h.size(0), seq = h.size(1);
    // [q | k | v] along the last dimension, each [B, S, heads, head_width] -> [B, heads, S, head_width].
    auto parts = qkv(ln1(h)).split(width, /*dim=*/-1);
    auto heads_of = [&](const torch::Tensor& t) { return t.reshape({batch, seq, heads, head_width}).transpose(1, 2); };
    auto attended = at::scaled_dot_product_attention(heads_of(parts[0]), heads_of(parts[1]), heads_of(parts[2]));
    h = h + proj(attended.transpose(1, 2).reshape({batch, seq, width}));
    return h + fc2(torch::gelu(fc1(ln2(h))));  // exact (erf) GELU, torch's default
  }
};
TORCH_MODULE(EncoderLayer);

/// `encoder`: token and position embeddings, two encoder layers, a final LayerNorm, the mean over the
/// sequence, a two-class head.
struct EncoderImpl : torch::nn::Module {
  static constexpr std::int64_t vocab = 1024, seq_len = 64, width = EncoderLayerImpl::width, num_layers = 2;

  torch::nn::Embedding tok_emb{vocab, width};
  torch::Tensor pos_emb;
  torch::nn::ModuleList layers;
  torch::nn::LayerNorm ln_f{torch::nn::LayerNormOptions({width})};
  torch::nn::Linear head{width, 2};

  EncoderImpl() {
    register_module("tok_emb", tok_emb);
    // Loaded from the initial weights; only its name and shape matter here.
    pos_emb = register_parameter("pos_emb", torch::zeros({seq_len, width}));
    for (std::int64_t i = 0; i < num_layers; ++i) layers->push_back(EncoderLayer());
    register_module("layers", layers);  // members become layers.0.ln1.weight, ...
    register_module("ln_f", ln_f);
    register_module("head", head);
  }

  trainpp::ModelOutput forward(const trainpp::Batch& batch) {
    auto h = tok_emb(batch.at("x")) + pos_emb;
    for (const auto& layer : *layers) h = layer->as<EncoderLayer>()->forward(h);
    return with_loss(head(ln_f(h).mean(1)), batch);
  }
};
TORCH_MODULE(Encoder);

}  // namespace bench
