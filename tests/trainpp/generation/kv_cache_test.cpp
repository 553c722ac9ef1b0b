// KVCache::reorder on small CPU tensors: rows follow the index beam search gives (moved, repeated,
// dropped), in every cached tensor of every layer, and tensors a model left undefined stay so.

#include <trainpp/generation/kv_cache.hpp>

#include <doctest/doctest.h>

#include <vector>

namespace kv_cache_test {

/// [batch, heads, time, head_dim] = [3, 1, 2, 1], row r filled with `base + r`.
torch::Tensor rows(double base) {
  return (torch::arange(3, torch::kFloat32).view({3, 1, 1, 1}) + base).expand({3, 1, 2, 1}).contiguous();
}

std::vector<float> row_values(const torch::Tensor& t) {
  const auto first = t.select(1, 0).select(1, 0).select(1, 0).contiguous();
  return {first.data_ptr<float>(), first.data_ptr<float>() + first.numel()};
}

TEST_CASE("kv_cache: reorder moves the rows of every cached tensor of every layer") {
  trainpp::KVCache cache;
  cache.layers.push_back({rows(0), rows(10), rows(20), rows(30)});
  cache.layers.push_back({rows(40), rows(50), rows(60), rows(70)});
  cache.reorder(torch::tensor({2, 0, 0}));  // beam 2 moves first, beam 0 is kept twice, beam 1 is dropped
  CHECK(row_values(cache.layers[0].self_k) == std::vector<float>{2, 0, 0});
  CHECK(row_values(cache.layers[0].self_v) == std::vector<float>{12, 10, 10});
  CHECK(row_values(cache.layers[0].cross_k) == std::vector<float>{22, 20, 20});
  CHECK(row_values(cache.layers[0].cross_v) == std::vector<float>{32, 30, 30});
  CHECK(row_values(cache.layers[1].self_k) == std::vector<float>{42, 40, 40});
  CHECK(row_values(cache.layers[1].cross_v) == std::vector<float>{72, 70, 70});
  // Only dimension 0 changes.
  CHECK(cache.layers[1].self_v.sizes() == torch::IntArrayRef{3, 1, 2, 1});
  // Reordering twice composes: new row i is old row idx1[idx2[i]].
  cache.reorder(torch::tensor({1, 0, 1}));
  CHECK(row_values(cache.layers[0].self_k) == std::vector<float>{0, 2, 0});
}

TEST_CASE("kv_cache: reorder leaves undefined tensors undefined and can change the batch size") {
  trainpp::KVCache cache;
  cache.layers.push_back({rows(0), rows(10), torch::Tensor(), torch::Tensor()});  // a decoder-only model's layer
  cache.reorder(torch::tensor({1, 1, 1, 1}));  // four rows out of three
  CHECK_FALSE(cache.layers[0].cross_k.defined());
  CHECK_FALSE(cache.layers[0].cross_v.defined());
  CHECK(cache.layers[0].self_k.size(0) == 4);
  CHECK(row_values(cache.layers[0].self_v) == std::vector<float>{11, 11, 11, 11});
  trainpp::KVCache empty;
  empty.reorder(torch::tensor({0}));  // before the first step: nothing to reorder
  CHECK(empty.layers.empty());
}

TEST_CASE("kv_cache: reorder rejects an index outside the batch") {
  trainpp::KVCache cache;
  cache.layers.push_back({rows(0), rows(10), torch::Tensor(), torch::Tensor()});
  CHECK_THROWS(cache.reorder(torch::tensor({0, 3})));
}

}  // namespace kv_cache_test
