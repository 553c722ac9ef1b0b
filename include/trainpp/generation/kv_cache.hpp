#pragma once
// KVCache: the keys and values an encoder-decoder model keeps between decoding steps.

#include <trainpp/detail/config.hpp>

#include <vector>

namespace trainpp {

/// One decoder layer's cached attention inputs. The layout is the model's choice (typically
/// [batch, heads, time, head_dim]); generation only relies on dimension 0 being the batch.
struct LayerCache {
  torch::Tensor self_k, self_v;    ///< self-attention keys and values of the tokens decoded so far
  torch::Tensor cross_k, cross_v;  ///< cross-attention keys and values of the encoder states
};

/// The cache trainpp::generate hands to the model's decode_step. It is empty before the first step;
/// the model fills `layers` and appends to them. Beam search reorders it when beams change places.
struct KVCache {
  std::vector<LayerCache> layers;

  /// Keeps, for each new row i, the old row batch_index[i]: index_select(0, batch_index) on every
  /// defined tensor (what beam search does after choosing the beams of the next step).
  void reorder(const torch::Tensor& batch_index) {
    for (auto& layer : layers)
      for (torch::Tensor* t : {&layer.self_k, &layer.self_v, &layer.cross_k, &layer.cross_v})
        if (t->defined()) *t = t->index_select(0, batch_index.to(t->device()));
  }
};

}  // namespace trainpp
