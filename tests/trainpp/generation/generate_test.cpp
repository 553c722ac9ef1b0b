// Generation: greedy and beam search with a real KV cache against re-decoding the whole prefix, end
// tokens and padding, batches of different source lengths, length limits, and beam search against an
// exhaustive search on a small vocabulary. Decoder-only generation (GPT-2, Llama): greedy and beam
// search token for token as transformers' generate on left-padded prompts, the cache against full
// forwards, and reproducible sampling.

#include <trainpp/generation/generate.hpp>
#include <trainpp/io/checkpoint.hpp>
#include <trainpp/io/model_io.hpp>
#include <trainpp/models/gpt2.hpp>
#include <trainpp/models/llama.hpp>
#include <trainpp/models/pretrained.hpp>

#include <doctest/doctest.h>

#include "skip.hpp"
#include "trainpp/generation/causal_reference.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace generate_test {

using trainpp::EarlyStoppingMode;
using trainpp::GenerationConfig;
using trainpp::KVCache;

torch::Tensor split_heads(const torch::Tensor& x, std::int64_t heads) {  // [B, T, D] -> [B, H, T, D/H]
  return x.view({x.size(0), x.size(1), heads, x.size(2) / heads}).transpose(1, 2);
}
torch::Tensor merge_heads(const torch::Tensor& x) {  // [B, H, T, D/H] -> [B, T, D]
  return x.transpose(1, 2).reshape({x.size(0), x.size(2), -1});
}
torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& bias) {
  const auto scores = q.matmul(k.transpose(-2, -1)) / std::sqrt(static_cast<double>(q.size(-1))) + bias;
  return torch::softmax(scores, -1).matmul(v);
}

/// A small encoder-decoder transformer (one encoder layer, two decoder layers) in float64 with a real
/// KV cache: decoder self-attention keys and values grow by the new tokens, cross-attention keys and
/// values are computed once. `eos_ramp` raises the end token's logit with the position, so that
/// sequences end at different lengths.
struct TinyTransformerImpl : torch::nn::Module {
  static constexpr std::int64_t vocab = 11, dim = 16, heads = 2, decoder_layers = 2, positions = 64;
  std::int64_t eos = 2;
  double eos_ramp = 0;
  torch::nn::Embedding src_tokens{nullptr}, tgt_tokens{nullptr}, src_positions{nullptr}, tgt_positions{nullptr};
  torch::nn::Linear enc_qkv{nullptr}, enc_out{nullptr}, enc_ff1{nullptr}, enc_ff2{nullptr}, head{nullptr};
  std::vector<torch::nn::Linear> self_qkv, self_out, cross_q, cross_kv, cross_out, ff1, ff2;
  // What decode_step saw, for the tests of the generation context.
  bool saw_training = false, saw_grad = false;

  explicit TinyTransformerImpl(std::uint64_t seed) {
    torch::manual_seed(seed);
    src_tokens = register_module("src_tokens", torch::nn::Embedding(vocab, dim));
    tgt_tokens = register_module("tgt_tokens", torch::nn::Embedding(vocab, dim));
    src_positions = register_module("src_positions", torch::nn::Embedding(positions, dim));
    tgt_positions = register_module("tgt_positions", torch::nn::Embedding(positions, dim));
    enc_qkv = register_module("enc_qkv", torch::nn::Linear(dim, 3 * dim));
    enc_out = register_module("enc_out", torch::nn::Linear(dim, dim));
    enc_ff1 = register_module("enc_ff1", torch::nn::Linear(dim, 2 * dim));
    enc_ff2 = register_module("enc_ff2", torch::nn::Linear(2 * dim, dim));
    for (std::int64_t i = 0; i < decoder_layers; ++i) {
      const auto n = std::to_string(i);
      self_qkv.push_back(register_module("self_qkv" + n, torch::nn::Linear(dim, 3 * dim)));
      self_out.push_back(register_module("self_out" + n, torch::nn::Linear(dim, dim)));
      cross_q.push_back(register_module("cross_q" + n, torch::nn::Linear(dim, dim)));
      cross_kv.push_back(register_module("cross_kv" + n, torch::nn::Linear(dim, 2 * dim)));
      cross_out.push_back(register_module("cross_out" + n, torch::nn::Linear(dim, dim)));
      ff1.push_back(register_module("ff1" + n, torch::nn::Linear(dim, 2 * dim)));
      ff2.push_back(register_module("ff2" + n, torch::nn::Linear(2 * dim, dim)));
    }
    head = register_module("head", torch::nn::Linear(dim, vocab));
    to(torch::kFloat64);
  }

  static torch::Tensor padding_bias(const torch::Tensor& attention_mask) {  // [B, S] -> [B, 1, 1, S]
    return (1.0 - attention_mask.to(torch::kFloat64)).mul(-1e9).unsqueeze(1).unsqueeze(1);
  }

  torch::Tensor encode(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
    const auto s = input_ids.size(1);
    auto x = src_tokens(input_ids) + src_positions(torch::arange(s, torch::kInt64));
    auto qkv = enc_qkv(x).chunk(3, -1);
    x = x + enc_out(merge_heads(attend(split_heads(qkv[0], heads), split_heads(qkv[1], heads),
                                       split_heads(qkv[2], heads), padding_bias(attention_mask))));
    return x + enc_ff2(torch::relu(enc_ff1(x)));
  }

  torch::Tensor decode_step(const torch::Tensor& decoder_input_ids, const torch::Tensor& encoder_states,
                            const torch::Tensor& attention_mask, KVCache& cache) {
    saw_training = saw_training || is_training();
    saw_grad = saw_grad || torch::GradMode::is_enabled();
    const auto t = decoder_input_ids.size(1);
    if (cache.layers.empty()) cache.layers.resize(decoder_layers);
    const auto past = cache.layers[0].self_k.defined() ? cache.layers[0].self_k.size(2) : 0;
    const auto position = torch::arange(past, past + t, torch::kInt64);
    auto x = tgt_tokens(decoder_input_ids) + tgt_positions(position);
    // Query i (at position past + i) sees keys up to its own position.
    const auto causal = torch::arange(past + t, torch::kInt64).unsqueeze(0).gt(position.unsqueeze(1))
                            .to(torch::kFloat64).mul(-1e9);
    const auto cross_bias = padding_bias(attention_mask);
    for (std::int64_t i = 0; i < decoder_layers; ++i) {
      auto& layer = cache.layers[static_cast<std::size_t>(i)];
      auto qkv = self_qkv[static_cast<std::size_t>(i)](x).chunk(3, -1);
      auto k = split_heads(qkv[1], heads), v = split_heads(qkv[2], heads);
      if (layer.self_k.defined()) k = torch::cat({layer.self_k, k}, 2), v = torch::cat({layer.self_v, v}, 2);
      layer.self_k = k, layer.self_v = v;
      x = x + self_out[static_cast<std::size_t>(i)](merge_heads(attend(split_heads(qkv[0], heads), k, v, causal)));
      if (!layer.cross_k.defined()) {
        auto kv = cross_kv[static_cast<std::size_t>(i)](encoder_states).chunk(2, -1);
        layer.cross_k = split_heads(kv[0], heads), layer.cross_v = split_heads(kv[1], heads);
      }
      x = x + cross_out[static_cast<std::size_t>(i)](merge_heads(attend(split_heads(cross_q[static_cast<std::size_t>(i)](x), heads), layer.cross_k, layer.cross_v, cross_bias)));
      x = x + ff2[static_cast<std::size_t>(i)](torch::relu(ff1[static_cast<std::size_t>(i)](x)));
    }
    auto logits = head(x) * 3.0;
    if (eos_ramp != 0) logits.select(2, eos).add_(position.to(torch::kFloat64).mul(eos_ramp).unsqueeze(0));
    return logits;
  }
};
TORCH_MODULE(TinyTransformer);

/// Source batches: rows of random tokens 3..10, right-padded with 0 to different lengths.
struct Sources {
  torch::Tensor input_ids, attention_mask;
  std::vector<std::int64_t> lengths;
};
Sources make_sources(std::vector<std::int64_t> lengths, std::uint64_t seed) {
  torch::manual_seed(seed);
  std::int64_t longest = 0;
  for (auto l : lengths) longest = std::max(longest, l);
  const auto n = static_cast<std::int64_t>(lengths.size());
  Sources s{torch::zeros({n, longest}, torch::kInt64), torch::zeros({n, longest}, torch::kInt64), lengths};
  for (std::int64_t i = 0; i < n; ++i) {
    const auto l = lengths[static_cast<std::size_t>(i)];
    s.input_ids[i].narrow(0, 0, l).copy_(torch::randint(3, 11, {l}, torch::kInt64));
    s.attention_mask[i].narrow(0, 0, l).fill_(1);
  }
  return s;
}

GenerationConfig base_config() {
  GenerationConfig c;
  c.decoder_start_token_id = 1;
  c.eos_token_id = 2;
  c.pad_token_id = 0;
  c.max_length = 10;
  return c;
}

torch::Tensor without_cache(TinyTransformer& model, const Sources& s, GenerationConfig c) {
  c.use_cache = false;
  return trainpp::generate(model, s.input_ids, s.attention_mask, c);
}

/// Position of the first eos in each row (the row's length when there is none).
std::vector<std::int64_t> first_eos(const torch::Tensor& sequences, std::int64_t eos) {
  std::vector<std::int64_t> out;
  for (std::int64_t r = 0; r < sequences.size(0); ++r) {
    std::int64_t at = sequences.size(1);
    for (std::int64_t j = 1; j < sequences.size(1); ++j)
      if (sequences[r][j].item<std::int64_t>() == eos) { at = j; break; }
    out.push_back(at);
  }
  return out;
}

TEST_CASE("greedy search with the KV cache equals re-decoding the whole prefix every step") {
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    TinyTransformer model(seed);
    model->eos_ramp = 0.4;
    const auto s = make_sources({5, 3, 7, 4}, seed + 10);
    const auto c = base_config();
    const auto cached = trainpp::generate(model, s.input_ids, s.attention_mask, c);
    const auto reference = without_cache(model, s, c);
    CAPTURE(seed);
    CHECK(cached.dtype() == torch::kInt64);
    CHECK(cached.size(0) == 4);
    CHECK(cached.select(1, 0).eq(1).all().item<bool>());
    REQUIRE(cached.sizes() == reference.sizes());
    CHECK(torch::equal(cached, reference));
  }
}

TEST_CASE("beam search with the KV cache equals re-decoding for every beam count, length penalty and stopping mode" *
          doctest::test_suite("integration")) {
  int compared = 0, reordered_differently = 0;
  for (std::int64_t beams : {2, 3, 4}) {
    for (double length_penalty : {1.0, 0.0, 2.0, -0.5}) {
      for (auto stopping : {EarlyStoppingMode::heuristic, EarlyStoppingMode::enabled, EarlyStoppingMode::never}) {
        TinyTransformer model(static_cast<std::uint64_t>(beams) * 7 + 1);
        model->eos_ramp = 0.3;
        const auto s = make_sources({6, 2, 4}, static_cast<std::uint64_t>(beams));
        auto c = base_config();
        c.num_beams = beams;
        c.length_penalty = length_penalty;
        c.early_stopping = stopping;
        c.max_length = 9;
        const auto cached = trainpp::generate(model, s.input_ids, s.attention_mask, c);
        const auto reference = without_cache(model, s, c);
        CAPTURE(beams);
        CAPTURE(length_penalty);
        CAPTURE(static_cast<int>(stopping));
        REQUIRE(cached.sizes() == reference.sizes());
        CHECK(torch::equal(cached, reference));
        ++compared;
        // Beam search differs from greedy here, so beams did change places and the cache was reordered.
        auto greedy = c;
        greedy.num_beams = 1;
        const auto g = trainpp::generate(model, s.input_ids, s.attention_mask, greedy);
        if (g.sizes() != cached.sizes() || !torch::equal(g, cached)) ++reordered_differently;
      }
    }
  }
  CHECK(compared == 36);
  CHECK(reordered_differently > 0);
}

TEST_CASE("sequences end at eos and are filled with pad_token_id after it") {
  TinyTransformer model(5);
  model->eos_ramp = 0.2;
  const auto s = make_sources({5, 3, 7, 4, 6, 2}, 9);
  for (std::int64_t beams : {1, 3}) {
    auto c = base_config();
    c.num_beams = beams;
    c.max_length = 30;
    const auto out = trainpp::generate(model, s.input_ids, s.attention_mask, c);
    const auto ends = first_eos(out, 2);
    std::int64_t longest = 0;
    for (std::int64_t r = 0; r < out.size(0); ++r) {
      const auto e = ends[static_cast<std::size_t>(r)];
      CAPTURE(r);
      REQUIRE(e < out.size(1));  // the ramp makes every row end
      longest = std::max(longest, e + 1);
      if (e + 1 < out.size(1)) CHECK(out[r].narrow(0, e + 1, out.size(1) - e - 1).eq(0).all().item<bool>());
    }
    CAPTURE(beams);
    // The output is as long as the longest sequence, and the rows ended at different places.
    CHECK(out.size(1) == longest);
    CHECK(longest < 30);
    CHECK(*std::min_element(ends.begin(), ends.end()) < *std::max_element(ends.begin(), ends.end()));
  }
  // Without pad_token_id, finished sequences are filled with eos (HF's fallback).
  auto c = base_config();
  c.pad_token_id.reset();
  c.max_length = 30;
  const auto out = trainpp::generate(model, s.input_ids, s.attention_mask, c);
  const auto ends = first_eos(out, 2);
  for (std::int64_t r = 0; r < out.size(0); ++r) {
    const auto e = ends[static_cast<std::size_t>(r)];
    if (e + 1 < out.size(1)) CHECK(out[r].narrow(0, e, out.size(1) - e).eq(2).all().item<bool>());
  }
}

TEST_CASE("without an eos token every sequence runs to the maximum length") {
  TinyTransformer model(6);
  model->eos_ramp = 5;
  const auto s = make_sources({4, 2}, 3);
  for (std::int64_t beams : {1, 2}) {
    auto c = base_config();
    c.eos_token_id.reset();
    c.num_beams = beams;
    c.max_length = 7;
    const auto out = trainpp::generate(model, s.input_ids, s.attention_mask, c);
    CHECK(out.size(1) == 7);
  }
}

TEST_CASE("min_length keeps eos out of the first positions") {
  TinyTransformer model(5);
  model->eos_ramp = 2.0;  // eos would win from the second step on
  const auto s = make_sources({5, 3, 4}, 9);
  for (std::int64_t beams : {1, 2}) {
    auto c = base_config();
    c.num_beams = beams;
    c.max_length = 12;
    const auto early = first_eos(trainpp::generate(model, s.input_ids, s.attention_mask, c), 2);
    c.min_length = 6;
    const auto late = first_eos(trainpp::generate(model, s.input_ids, s.attention_mask, c), 2);
    CAPTURE(beams);
    CHECK(*std::min_element(early.begin(), early.end()) < 6);
    CHECK(*std::min_element(late.begin(), late.end()) >= 6);
  }
}

TEST_CASE("each row of a padded batch generates what it generates alone") {
  TinyTransformer model(11);
  model->eos_ramp = 0.3;
  const auto s = make_sources({7, 2, 5}, 4);
  for (std::int64_t beams : {1, 3}) {
    auto c = base_config();
    c.num_beams = beams;
    const auto batched = trainpp::generate(model, s.input_ids, s.attention_mask, c);
    for (std::int64_t r = 0; r < 3; ++r) {
      const auto l = s.lengths[static_cast<std::size_t>(r)];
      const auto alone = trainpp::generate(model, s.input_ids.narrow(0, r, 1).narrow(1, 0, l),
                                           s.attention_mask.narrow(0, r, 1).narrow(1, 0, l), c);
      CAPTURE(beams);
      CAPTURE(r);
      REQUIRE(alone.size(1) <= batched.size(1));
      CHECK(torch::equal(alone[0], batched[r].narrow(0, 0, alone.size(1))));
      if (alone.size(1) < batched.size(1))
        CHECK(batched[r].narrow(0, alone.size(1), batched.size(1) - alone.size(1)).eq(0).all().item<bool>());
    }
  }
  // Padding does change the result when the mask does not hide it.
  const auto unmasked = trainpp::generate(model, s.input_ids, torch::Tensor(), base_config());
  const auto masked = trainpp::generate(model, s.input_ids, s.attention_mask, base_config());
  CHECK_FALSE((unmasked.sizes() == masked.sizes() && torch::equal(unmasked, masked)));
}

TEST_CASE("max_new_tokens takes precedence over max_length, and the default is 20 new tokens") {
  TinyTransformer model(3);
  const auto s = make_sources({3, 4}, 1);
  GenerationConfig c;
  c.decoder_start_token_id = 1;  // no eos: sequences run to the limit
  CHECK(trainpp::generate(model, s.input_ids, s.attention_mask, c).size(1) == 21);
  c.max_length = 7;
  CHECK(trainpp::generate(model, s.input_ids, s.attention_mask, c).size(1) == 7);
  c.max_new_tokens = 4;
  CHECK(trainpp::generate(model, s.input_ids, s.attention_mask, c).size(1) == 5);
  c.num_beams = 2;
  CHECK(trainpp::generate(model, s.input_ids, s.attention_mask, c).size(1) == 5);
  c.max_new_tokens.reset();
  CHECK(trainpp::generate(model, s.input_ids, s.attention_mask, c).size(1) == 7);
  CHECK(c.effective_max_length() == 7);
}

TEST_CASE("beam search with one beam and early stopping equals greedy search") {
  for (std::uint64_t seed : {1u, 4u, 8u}) {
    TinyTransformer model(seed);
    model->eos_ramp = 0.5;
    const auto s = make_sources({5, 3, 6, 2}, seed);
    auto c = base_config();
    c.max_length = 14;
    c.early_stopping = EarlyStoppingMode::enabled;
    const auto greedy = trainpp::greedy_search(model, s.input_ids, s.attention_mask, c);
    const auto beam = trainpp::beam_search(model, s.input_ids, s.attention_mask, c);
    CAPTURE(seed);
    REQUIRE(greedy.sizes() == beam.sizes());
    CHECK(torch::equal(greedy, beam));
  }
}

TEST_CASE("generation runs without gradients in eval mode and restores the training mode") {
  TinyTransformer model(2);
  model->train();
  const auto s = make_sources({3}, 2);
  auto c = base_config();
  for (std::int64_t beams : {1, 2}) {
    c.num_beams = beams;
    (void)trainpp::generate(model, s.input_ids, s.attention_mask, c);
    CHECK_FALSE(model->saw_training);
    CHECK_FALSE(model->saw_grad);
    CHECK(model->is_training());
  }
  model->eval();
  (void)trainpp::generate(model, s.input_ids, s.attention_mask, c);
  CHECK_FALSE(model->is_training());
}

TEST_CASE("generate refuses settings it cannot use") {
  TinyTransformer model(2);
  const auto s = make_sources({3}, 2);
  auto run = [&](GenerationConfig c) { (void)trainpp::generate(model, s.input_ids, s.attention_mask, c); };
  auto c = base_config();
  c.num_beams = 0;
  CHECK_THROWS_WITH_AS(run(c), doctest::Contains("num_beams must be at least 1"), trainpp::Error);
  c = base_config();
  c.decoder_start_token_id.reset();
  CHECK_THROWS_WITH_AS(run(c), doctest::Contains("decoder_start_token_id or bos_token_id"), trainpp::Error);
  c.bos_token_id = 1;  // HF's fallback
  CHECK_NOTHROW(run(c));
  c = base_config();
  c.eos_token_id = 99;
  CHECK_THROWS_WITH_AS(run(c), doctest::Contains("outside the model's vocabulary"), trainpp::Error);
  c = base_config();
  c.max_length = 1;
  CHECK_THROWS_WITH_AS(run(c), doctest::Contains("max_length is 1"), trainpp::Error);
}

// ---- beam search against exhaustive search ------------------------------------------------------

/// Logits from a fixed table indexed by (example, position, last token): small enough to enumerate
/// every sequence. The cache holds the decoded tokens so that beam reordering moves them.
struct TableModelImpl : torch::nn::Module {
  torch::Tensor table;  // [examples, positions, vocabulary, vocabulary], float64
  explicit TableModelImpl(torch::Tensor t) : table(std::move(t)) {}
  torch::Tensor encode(const torch::Tensor& input_ids, const torch::Tensor&) {
    return input_ids.narrow(1, 0, 1).to(torch::kFloat64).unsqueeze(-1);  // [B, 1, 1]: the example
  }
  torch::Tensor decode_step(const torch::Tensor& decoder_input_ids, const torch::Tensor& encoder_states,
                            const torch::Tensor&, KVCache& cache) {
    if (cache.layers.empty()) cache.layers.resize(1);
    auto& layer = cache.layers[0];
    const auto past = layer.self_k.defined() ? layer.self_k.size(1) : 0;
    layer.self_k = layer.self_k.defined() ? torch::cat({layer.self_k, decoder_input_ids}, 1) : decoder_input_ids.clone();
    const auto example = encoder_states.select(2, 0).select(1, 0).to(torch::kInt64);
    std::vector<torch::Tensor> rows;
    for (std::int64_t t = 0; t < decoder_input_ids.size(1); ++t)
      rows.push_back(table.index({example, torch::full_like(example, past + t), decoder_input_ids.select(1, t)}));
    return torch::stack(rows, 1);
  }
};
TORCH_MODULE(TableModel);

struct Best {
  double score = -std::numeric_limits<double>::infinity();
  std::vector<std::int64_t> tokens;
};

/// Every continuation of `tokens` (eos ends one, and so does reaching max_new tokens), scored as beam
/// search scores a finished hypothesis: sum of log-probabilities / generated_length^length_penalty.
void enumerate(const torch::Tensor& table, std::int64_t example, std::vector<std::int64_t>& tokens, std::int64_t last,
               double sum, std::int64_t eos, std::int64_t max_new, double length_penalty, Best& best) {
  const auto position = static_cast<std::int64_t>(tokens.size());
  const auto log_probs = torch::log_softmax(table[example][position][last], -1);
  for (std::int64_t v = 0; v < log_probs.size(0); ++v) {
    const double s = sum + log_probs[v].item<double>();
    tokens.push_back(v);
    const auto n = static_cast<std::int64_t>(tokens.size());
    if (v == eos || n == max_new) {
      const double score = s / std::pow(static_cast<double>(n), length_penalty);
      if (score > best.score) best = Best{score, tokens};
    } else {
      enumerate(table, example, tokens, v, s, eos, max_new, length_penalty, best);
    }
    tokens.pop_back();
  }
}

TEST_CASE("beam search with enough beams finds the best sequence that exhaustive search finds") {
  constexpr std::int64_t examples = 4, vocabulary = 4, eos = 3, max_new = 4;
  torch::manual_seed(123);
  TableModel model(torch::randn({examples, max_new + 1, vocabulary, vocabulary}, torch::kFloat64) * 2.0);
  const auto input_ids = torch::arange(examples, torch::kInt64).unsqueeze(1);
  int differs_from_greedy = 0;
  for (double length_penalty : {1.0, 0.0, 2.0, -0.5}) {
    GenerationConfig c;
    c.decoder_start_token_id = 0;
    c.eos_token_id = eos;
    c.pad_token_id = 0;
    c.max_new_tokens = max_new;
    c.length_penalty = length_penalty;
    c.early_stopping = EarlyStoppingMode::never;
    c.num_beams = 27;  // every live prefix (3^3 of them before the last step) stays a beam
    const auto out = trainpp::generate(model, input_ids, torch::Tensor(), c);
    auto greedy = c;
    greedy.num_beams = 1;
    const auto g = trainpp::generate(model, input_ids, torch::Tensor(), greedy);
    std::int64_t longest = 0;
    for (std::int64_t e = 0; e < examples; ++e) {
      Best best;
      std::vector<std::int64_t> tokens;
      enumerate(model->table, e, tokens, 0, 0.0, eos, max_new, length_penalty, best);
      longest = std::max<std::int64_t>(longest, static_cast<std::int64_t>(best.tokens.size()) + 1);
      std::vector<std::int64_t> expected{0};
      expected.insert(expected.end(), best.tokens.begin(), best.tokens.end());
      CAPTURE(length_penalty);
      CAPTURE(e);
      REQUIRE(out.size(1) >= static_cast<std::int64_t>(expected.size()));
      expected.resize(static_cast<std::size_t>(out.size(1)), 0);
      CHECK(torch::equal(out[e], torch::tensor(expected, torch::kInt64)));
      const auto greedy_row = g[e].narrow(0, 0, std::min(g.size(1), out.size(1)));
      if (!torch::equal(greedy_row, out[e].narrow(0, 0, greedy_row.size(0)))) ++differs_from_greedy;
    }
    CHECK(out.size(1) == longest);
  }
  CHECK(differs_from_greedy > 0);  // the table is not one where greedy is already optimal
}

}  // namespace generate_test

namespace generate_test {

TEST_CASE("greedy and beam search give the sequences transformers' generate gives on the same logits") {
  // Recorded by tools/reference/gen_generation_reference.py: transformers.generate on a model whose
  // logits come from this table.
  const auto reference = trainpp::read_json_file(std::string(TRAINPP_TEST_DATA_DIR) + "/generation/reference.json");
  std::vector<std::int64_t> shape;
  for (const auto* level = &reference["table"]; level->is_array(); level = &level->front())
    shape.push_back(static_cast<std::int64_t>(level->size()));
  std::vector<double> flat;
  for (const auto& a : reference["table"])
    for (const auto& b : a)
      for (const auto& c : b)
        for (const auto& v : c) flat.push_back(v.get<double>());
  TableModel model(torch::tensor(flat, torch::kFloat64).view(shape));
  const auto input_ids = torch::arange(shape[0], torch::kInt64).unsqueeze(1);
  int cases = 0;
  for (const auto& item : reference["cases"]) {
    auto config = GenerationConfig::from_json(item["settings"], "the reference case");
    config.decoder_start_token_id = reference["decoder_start_token_id"].get<std::int64_t>();
    config.eos_token_id = reference["eos_token_id"].get<std::int64_t>();
    config.pad_token_id = reference["pad_token_id"].get<std::int64_t>();
    std::vector<std::int64_t> rows;
    for (const auto& row : item["sequences"])
      for (const auto& v : row) rows.push_back(v.get<std::int64_t>());
    const auto want = torch::tensor(rows, torch::kInt64).view({shape[0], -1});
    for (bool use_cache : {true, false}) {
      config.use_cache = use_cache;
      const auto got = trainpp::generate(model, input_ids, torch::Tensor(), config);
      CAPTURE(item["settings"].dump());
      CAPTURE(use_cache);
      REQUIRE(got.sizes() == want.sizes());
      CHECK(torch::equal(got, want));
    }
    ++cases;
  }
  CHECK(cases == 42);
}

}  // namespace generate_test

// ---- decoder-only models ---------------------------------------------------------------------------

namespace generate_test {
namespace causal_generate_test {

static_assert(trainpp::CausalLanguageModel<trainpp::GPT2LMHeadModel>);
static_assert(trainpp::CausalLanguageModel<trainpp::LlamaForCausalLM>);
static_assert(!trainpp::EncoderDecoderModel<trainpp::GPT2LMHeadModel>);

trainpp::GPT2LMHeadModel tiny_gpt2(std::uint64_t seed) {
  torch::manual_seed(seed);
  return trainpp::GPT2LMHeadModel(trainpp::GPT2Config{.vocab_size = 40, .n_positions = 32, .n_embd = 16, .n_layer = 2,
                                                      .n_head = 2, .resid_pdrop = 0, .embd_pdrop = 0, .attn_pdrop = 0});
}

trainpp::LlamaForCausalLM tiny_llama(std::uint64_t seed) {
  torch::manual_seed(seed);
  trainpp::LlamaConfig config;
  config.vocab_size = 40;
  config.hidden_size = 16;
  config.intermediate_size = 32;
  config.num_hidden_layers = 2;
  config.num_attention_heads = 4;
  config.num_key_value_heads = 2;
  return trainpp::LlamaForCausalLM(config);
}

double max_difference(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

/// Two prompts, the second two tokens shorter and left-padded with token 1.
struct Prompts {
  torch::Tensor input_ids = torch::tensor({{5, 9, 3, 17, 8, 30}, {1, 1, 22, 4, 13, 6}});
  torch::Tensor attention_mask = torch::tensor({{1, 1, 1, 1, 1, 1}, {0, 0, 1, 1, 1, 1}});
};

/// The logits of the whole sequences in one forward without a cache, and through the cache: the
/// prompt first, then one token at a time, as generate feeds them. Compared on the real tokens.
template <class Model>
void check_cache_against_full_forward(Model& model) {
  model->eval();
  torch::NoGradGuard no_grad;
  const Prompts p;
  const auto continuation = torch::tensor({{11, 2, 29}, {7, 7, 35}});
  const auto ids = torch::cat({p.input_ids, continuation}, 1);
  const auto mask = torch::cat({p.attention_mask, torch::ones({2, 3}, torch::kLong)}, 1);
  const auto positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1);
  const auto full = model->logits(ids, mask, positions);

  trainpp::KVCache cache;
  std::vector<torch::Tensor> pieces{model->logits(p.input_ids, p.attention_mask, positions.narrow(1, 0, 6), &cache)};
  for (std::int64_t t = 6; t < 9; ++t)
    pieces.push_back(model->logits(ids.narrow(1, t, 1), mask.narrow(1, 0, t + 1), positions.narrow(1, t, 1), &cache));
  const auto cached = torch::cat(pieces, 1);
  const auto real = mask.to(torch::kBool);
  const double difference = max_difference(cached.index({real}), full.index({real}));
  INFO("largest logit difference " << difference);
  CHECK(difference <= 1e-5);
  CHECK(cache.layers.size() == 2);
  CHECK(cache.layers[0].self_k.size(0) == 2);
  CHECK(cache.layers[0].self_k.size(2) == 9);

  // Beam search moves the cache's rows: continuing from the swapped rows gives the swapped logits.
  auto swapped = cache;
  swapped.reorder(torch::tensor({1, 0}));
  const auto next = torch::tensor({{3}, {3}});
  const auto next_mask = torch::cat({mask, torch::ones({2, 1}, torch::kLong)}, 1);
  const auto next_positions = positions.narrow(1, 8, 1) + 1;
  const auto straight = model->logits(next, next_mask, next_positions, &cache);
  const auto crossed = model->logits(next, next_mask.flip(0), next_positions.flip(0), &swapped);
  CHECK(max_difference(crossed.flip(0), straight) <= 1e-5);
}

TEST_CASE("GPT-2 and Llama: logits through the KV cache equal a full forward on left-padded prompts") {
  SUBCASE("GPT-2") {
    auto model = tiny_gpt2(1);
    check_cache_against_full_forward(model);
  }
  SUBCASE("Llama") {
    auto model = tiny_llama(1);
    check_cache_against_full_forward(model);
  }
}

template <class Model>
void check_against_transformers(Model& model, const nlohmann::json& reference) {
  using generation_reference::matrix;
  const auto input_ids = matrix(reference["input_ids"], torch::kInt64);
  const auto attention_mask = matrix(reference["attention_mask"], torch::kInt64);
  model->eval();
  {
    // The prompt's last logits through the cache (generate's first step) against HF's full forward.
    torch::NoGradGuard no_grad;
    trainpp::KVCache cache;
    const auto positions = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 1);
    const auto logits = model->logits(input_ids, attention_mask, positions, &cache).select(1, input_ids.size(1) - 1);
    CHECK(max_difference(logits, matrix(reference["last_logits"], torch::kFloat32)) <= 1e-5);
  }
  int cases = 0;
  for (const auto& item : reference["cases"]) {
    auto config = trainpp::GenerationConfig::from_json(item["settings"], "the reference case");
    const auto want = matrix(item["sequences"], torch::kInt64);
    for (const bool use_cache : {true, false}) {
      config.use_cache = use_cache;
      const auto got = trainpp::generate(model, input_ids, attention_mask, config);
      CAPTURE(item["settings"].dump());
      CAPTURE(use_cache);
      REQUIRE(got.sizes() == want.sizes());
      CHECK(torch::equal(got, want));
    }
    ++cases;
  }
  CHECK(cases == 8);
}

TEST_CASE("GPT-2 and Llama: greedy and beam search give transformers' generate's tokens on left-padded prompts" *
          doctest::test_suite("integration")) {
  const auto dir = generation_reference::causal_reference_dir();
  if (!dir) TRAINPP_SKIP_TEST("transformers cannot be imported here, or there is no interpreter");
  const auto reference = trainpp::read_json_file(*dir / "reference.json");
  SUBCASE("GPT-2") {
    auto model = trainpp::from_pretrained<trainpp::GPT2LMHeadModel>(*dir / "gpt2");
    check_against_transformers(model, reference["gpt2"]);
  }
  SUBCASE("Llama") {
    trainpp::LlamaForCausalLM model(trainpp::LlamaConfig::from_json(trainpp::read_json_file(*dir / "llama/config.json")));
    trainpp::load_model(*model, *dir / "llama");
    check_against_transformers(model, reference["llama"]);
  }
}

TEST_CASE("sampling is reproducible from a seed or a generator, and top_k 1 is greedy search") {
  auto model = tiny_gpt2(2);
  const Prompts p;
  GenerationConfig config;
  config.max_new_tokens = 12;
  config.pad_token_id = 0;
  config.do_sample = true;
  config.top_k = 0;  // the whole (nearly uniform, freshly initialised) distribution: draws differ by seed
  auto sample = [&](std::uint64_t seed) {
    torch::manual_seed(seed);
    return trainpp::generate(model, p.input_ids, p.attention_mask, config);
  };
  const auto first = sample(5);
  CHECK(first.sizes() == torch::IntArrayRef{2, 18});
  CHECK(torch::equal(first.narrow(1, 0, 6), p.input_ids));
  CHECK(torch::equal(sample(5), first));
  CHECK_FALSE(torch::equal(sample(6), first));

  // A generator of its own: the global seed does not matter then.
  auto generator = at::make_generator<at::CPUGeneratorImpl>(42);
  torch::manual_seed(1);
  const auto drawn = trainpp::generate(model, p.input_ids, p.attention_mask, config, generator);
  generator.set_current_seed(42);
  torch::manual_seed(2);
  CHECK(torch::equal(trainpp::generate(model, p.input_ids, p.attention_mask, config, generator), drawn));

  // Several samples per prompt, adjacent, each a draw of its own.
  config.num_return_sequences = 3;
  torch::manual_seed(5);
  const auto several = trainpp::generate(model, p.input_ids, p.attention_mask, config);
  CHECK(several.sizes() == torch::IntArrayRef{6, 18});
  CHECK(torch::equal(several.narrow(0, 3, 3).narrow(1, 0, 6), p.input_ids.select(0, 1).expand({3, 6})));
  CHECK_FALSE(torch::equal(several[0], several[1]));

  config.num_return_sequences = 1;
  config.top_k = 1;
  config.temperature = 0.5;
  config.repetition_penalty = 1.3;
  auto greedy = config;
  greedy.do_sample = false;
  torch::manual_seed(7);
  CHECK(torch::equal(trainpp::generate(model, p.input_ids, p.attention_mask, config),
                     trainpp::generate(model, p.input_ids, p.attention_mask, greedy)));
}

TEST_CASE("decoder-only generate: beams with and without the cache agree, and bad settings are refused") {
  auto model = tiny_llama(3);
  const Prompts p;
  GenerationConfig config;
  config.max_new_tokens = 6;
  config.pad_token_id = 0;
  config.num_beams = 3;
  config.num_return_sequences = 2;
  const auto cached = trainpp::generate(model, p.input_ids, p.attention_mask, config);
  CHECK(cached.size(0) == 4);
  config.use_cache = false;
  CHECK(torch::equal(trainpp::generate(model, p.input_ids, p.attention_mask, config), cached));

  auto refused = [&](GenerationConfig c, const char* message) {
    CAPTURE(message);
    CHECK_THROWS_WITH_AS((void)trainpp::generate(model, p.input_ids, p.attention_mask, c), doctest::Contains(message),
                         trainpp::Error);
  };
  auto c = config;
  c.num_return_sequences = 4;
  refused(c, "must not exceed num_beams");
  c = config;
  c.do_sample = true;
  refused(c, "beam sampling");
  c = GenerationConfig{};
  c.num_return_sequences = 2;
  refused(c, "needs beam search (num_beams > 1) or sampling");
  c = GenerationConfig{};
  c.max_length = 6;
  refused(c, "leaves no room after the prompt of 6 tokens");
  c = GenerationConfig{};
  c.do_sample = true;
  c.top_p = 1.5;
  refused(c, "top_p must be in [0, 1]");
  c.top_p = 0.9;
  c.temperature = 0;
  refused(c, "temperature must be a positive number");
  c = GenerationConfig{};
  c.eos_token_id = 3;
  c.extra_eos_token_ids = {40};
  refused(c, "eos_token_id 40 is outside the model's vocabulary of 40 tokens");
}

}  // namespace causal_generate_test

}  // namespace generate_test
