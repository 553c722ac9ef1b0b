#pragma once
// generate(): greedy and beam search for encoder-decoder models, as transformers' GenerationMixin
// does them (transformers 5.x: _sample without sampling, _beam_search).

#include <trainpp/generation/config.hpp>
#include <trainpp/generation/kv_cache.hpp>
#include <trainpp/loss/model_output.hpp>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <optional>

namespace trainpp {

/// A model trainpp::generate can decode with: a torch::nn::ModuleHolder (TORCH_MODULE) or a
/// std::shared_ptr to a module, called through `->`.
///
/// Required:
/// - `torch::Tensor encode(const torch::Tensor& input_ids, const torch::Tensor& attention_mask)`:
///   the encoder states [B, S, D] of source tokens [B, S] (attention_mask 1 on real tokens, 0 on padding);
/// - `torch::Tensor decode_step(const torch::Tensor& decoder_input_ids, const torch::Tensor& encoder_states,
///   const torch::Tensor& attention_mask, trainpp::KVCache& cache)`: the logits [B, T_new, V] of the
///   T_new decoder tokens given that the cache does not hold yet, appending them to the cache. With an
///   empty cache and the whole prefix it computes everything from scratch.
/// Guarantees: generate calls decode_step first with an empty cache and the start token, then with the
/// one token chosen last; beam search reorders the cache (KVCache::reorder) along dimension 0.
template <class M>
concept EncoderDecoderModel = requires(M& model, const torch::Tensor& t, KVCache& cache) {
  { model->encode(t, t) } -> std::convertible_to<torch::Tensor>;
  { model->decode_step(t, t, t, cache) } -> std::convertible_to<torch::Tensor>;
};

namespace detail {

template <class M>
constexpr bool check_encoder_decoder_model() {
  constexpr bool holder = requires(M& m) { m.operator->(); };
  static_assert(holder, "trainpp::generate: the model must be a torch::nn::ModuleHolder (declared with "
                        "TORCH_MODULE) or a std::shared_ptr to a module");
  if constexpr (!holder) {
    return false;
  } else {
    constexpr bool encode = requires(M& m, const torch::Tensor& t) {
      { m->encode(t, t) } -> std::convertible_to<torch::Tensor>;
    };
    static_assert(encode, "trainpp::generate: the model needs a member torch::Tensor encode(const torch::Tensor& "
                          "input_ids, const torch::Tensor& attention_mask)");
    constexpr bool decode = requires(M& m, const torch::Tensor& t, KVCache& c) {
      { m->decode_step(t, t, t, c) } -> std::convertible_to<torch::Tensor>;
    };
    static_assert(decode, "trainpp::generate: the model needs a member torch::Tensor decode_step(const torch::Tensor& "
                          "decoder_input_ids, const torch::Tensor& encoder_states, const torch::Tensor& attention_mask, "
                          "trainpp::KVCache& cache)");
    return encode && decode;
  }
}

/// Puts a module in eval mode for its lifetime and restores the training mode it had.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(torch::nn::Module& module) : module_(module), was_training_(module.is_training()) {
    module_.eval();
  }
  ~EvalModeGuard() {
    if (was_training_) module_.train();
  }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  torch::nn::Module& module_;
  bool was_training_;
};

/// What every search needs, prepared once: the encoder's output and the resolved settings.
struct SearchSetup {
  torch::Tensor encoder_states, attention_mask;
  std::int64_t start = 0, max_length = 0;
  std::optional<std::int64_t> eos, pad;
};

template <class Model>
SearchSetup prepare_search(Model& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                           const GenerationConfig& config) {
  config.validate();
  if (!input_ids.defined() || input_ids.dim() != 2)
    throw error("generate: input_ids must be a [batch, length] tensor of token ids");
  if (attention_mask.defined() && attention_mask.sizes() != input_ids.sizes())
    throw error("generate: attention_mask has shape [{}], input_ids [{}]; they must match",
                fmt::join(attention_mask.sizes(), ", "), fmt::join(input_ids.sizes(), ", "));
  SearchSetup s;
  s.attention_mask = attention_mask.defined() ? attention_mask : torch::ones_like(input_ids);
  s.start = config.effective_decoder_start_token_id();
  s.max_length = config.effective_max_length(1);
  s.eos = config.eos_token_id;
  s.pad = config.effective_pad_token_id();
  s.encoder_states = model->encode(input_ids, s.attention_mask);
  return s;
}

/// The logits [N, V] (float32, as HF takes them) of the token after `sequences[:, :length]`. With the
/// cache in use, only the tokens it lacks are decoded: the whole prefix while it is empty (or when the
/// model keeps nothing in it), the last token afterwards. Without it, a fresh cache and the whole
/// prefix every step.
template <class Model>
torch::Tensor next_token_logits(Model& model, const torch::Tensor& sequences, std::int64_t length,
                                const SearchSetup& s, const torch::Tensor& encoder_states,
                                const torch::Tensor& attention_mask, KVCache& cache, bool use_cache) {
  if (!use_cache) cache = KVCache{};
  const bool incremental = use_cache && !cache.layers.empty();
  const auto input = incremental ? sequences.narrow(1, length - 1, 1) : sequences.narrow(1, 0, length);
  torch::Tensor logits = model->decode_step(input, encoder_states, attention_mask, cache);
  if (!logits.defined() || logits.dim() != 3 || logits.size(0) != input.size(0) || logits.size(1) < 1)
    throw error("generate: decode_step must return logits of shape [{}, tokens, vocabulary], got [{}]", input.size(0),
                logits.defined() ? fmt::format("{}", fmt::join(logits.sizes(), ", ")) : std::string("undefined"));
  const auto vocabulary = logits.size(2);
  for (const auto& [name, id] : {std::pair{"eos_token_id", s.eos}, std::pair{"pad_token_id", s.pad}})
    if (id && *id >= vocabulary)
      throw error("generate: {} {} is outside the model's vocabulary of {} tokens", name, *id, vocabulary);
  return logits.select(1, logits.size(1) - 1).to(torch::kFloat32);
}

/// HF's MinLengthLogitsProcessor: no end token while the sequence (start token counted) is shorter
/// than min_length.
inline void apply_min_length(torch::Tensor& scores, const SearchSetup& s, const GenerationConfig& config,
                             std::int64_t length) {
  if (s.eos && length < config.min_length)
    scores.select(1, *s.eos).fill_(-std::numeric_limits<float>::infinity());
}

}  // namespace detail

/// Greedy search (HF's generate with num_beams 1, no sampling): from the decoder start token, the
/// most likely next token each step, until every sequence has produced eos or the maximum length is
/// reached. Sequences that ended are filled with pad_token_id (eos_token_id when unset). Returns
/// [B, L] int64 token ids, start token first, L the length of the longest sequence. Runs without
/// gradients, with the model in eval mode (its mode is restored afterwards).
template <class Model>
torch::Tensor greedy_search(Model& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                            const GenerationConfig& config) {
  if constexpr (!detail::check_encoder_decoder_model<Model>()) {
    return {};
  } else {
    torch::NoGradGuard no_grad;
    detail::EvalModeGuard eval_mode(module_of(model));
    const detail::SearchSetup s = detail::prepare_search(model, input_ids, attention_mask, config);
    const auto n = input_ids.size(0);
    const auto long_options = torch::TensorOptions().dtype(torch::kInt64).device(input_ids.device());
    auto sequences = torch::full({n, s.max_length}, s.pad.value_or(0), long_options);
    sequences.select(1, 0).fill_(s.start);
    auto unfinished = torch::ones({n}, long_options.dtype(torch::kBool));
    KVCache cache;
    std::int64_t length = 1;
    while (length < s.max_length) {
      torch::Tensor scores = detail::next_token_logits(model, sequences, length, s, s.encoder_states, s.attention_mask, cache,
                                              config.use_cache);
      detail::apply_min_length(scores, s, config, length);
      auto next = scores.argmax(-1);
      if (s.eos) next = torch::where(unfinished, next, torch::full_like(next, *s.pad));
      sequences.select(1, length).copy_(next);
      ++length;
      if (s.eos) {
        unfinished = unfinished.logical_and(next.ne(*s.eos));
        // The one host synchronisation per token: stop as soon as every sequence has ended.
        if (!unfinished.any().item<bool>()) break;
      }
    }
    return sequences.narrow(1, 0, length);
  }
}

/// Beam search as transformers 5.x's _beam_search (without sampling): num_beams running beams per
/// example scored by the sum of their tokens' log-softmax; each step the best 2·num_beams
/// continuations (more with an end token) are taken, those ending (eos, or the maximum length) among
/// the first num_beams become hypotheses scored sum_logprobs / generated_length^length_penalty
/// (generated tokens, eos included), and the num_beams best hypotheses are kept. early_stopping decides
/// when the search ends (see EarlyStoppingMode). Returns the best hypothesis of each example, [B, L] int64,
/// padded with pad_token_id (eos_token_id when unset) to the longest of them. One difference from HF:
/// transformers fills with eos when pad_token_id is 0 (`pad or eos` in Python); trainpp fills with the
/// pad token. No gradients, eval mode (restored afterwards).
// Long on purpose: HF's beam search step by step, so that it can be checked line by line against transformers.
template <class Model>
torch::Tensor beam_search(Model& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                          const GenerationConfig& config) {
  if constexpr (!detail::check_encoder_decoder_model<Model>()) {
    return {};
  } else {
    torch::NoGradGuard no_grad;
    detail::EvalModeGuard eval_mode(module_of(model));
    const detail::SearchSetup s = detail::prepare_search(model, input_ids, attention_mask, config);
    const std::int64_t batch = input_ids.size(0), beams = config.num_beams, max_length = s.max_length;
    const std::int64_t keep = std::max<std::int64_t>(2, 1 + (s.eos ? 1 : 0)) * beams;
    const double length_penalty = config.length_penalty;
    const auto device = input_ids.device();
    const auto long_options = torch::TensorOptions().dtype(torch::kInt64).device(device);
    const auto float_options = torch::TensorOptions().dtype(torch::kFloat32).device(device);
    const auto bool_options = torch::TensorOptions().dtype(torch::kBool).device(device);
    constexpr double excluded = -1.0e9;  // HF's score for what must not be chosen

    // Every beam sees its example's encoder output.
    const auto encoder_states = s.encoder_states.repeat_interleave(beams, 0);
    const auto mask = s.attention_mask.repeat_interleave(beams, 0);

    auto running = torch::full({batch, beams, max_length}, s.pad.value_or(0), long_options);
    running.select(2, 0).fill_(s.start);
    auto hypotheses = running.clone();
    // Only the first beam starts live: the others would repeat its tokens.
    auto running_scores = torch::zeros({batch, beams}, float_options);
    running_scores.narrow(1, 1, beams - 1).fill_(excluded);
    auto hypothesis_scores = torch::full({batch, beams}, excluded, float_options);
    auto hypothesis_lengths = torch::ones({batch, beams}, long_options);
    auto finished = torch::zeros({batch, beams}, bool_options);
    auto improvable = torch::ones({batch, 1}, bool_options);
    const auto among_first_beams =
        torch::cat({torch::ones({beams}, bool_options), torch::zeros({keep - beams}, bool_options)}).unsqueeze(0);
    const auto batch_offset = torch::arange(batch, long_options).unsqueeze(1) * beams;
    auto along_beams = [&](const torch::Tensor& t, const torch::Tensor& index) {
      return t.gather(1, t.dim() == 3 ? index.unsqueeze(2).expand({index.size(0), index.size(1), t.size(2)}) : index);
    };

    KVCache cache;
    std::int64_t length = 1;
    while (true) {
      torch::Tensor log_probs = torch::log_softmax(
          detail::next_token_logits(model, running.reshape({batch * beams, max_length}), length, s, encoder_states,
                                    mask, cache, config.use_cache),
          -1);
      detail::apply_min_length(log_probs, s, config, length);
      const std::int64_t vocabulary = log_probs.size(1);
      if (keep > beams * vocabulary)
        throw error("beam search keeps {} candidates per step, more than num_beams {} x a vocabulary of {} tokens "
                    "offers: lower num_beams", keep, beams, vocabulary);
      const auto totals = (log_probs.view({batch, beams, vocabulary}) + running_scores.unsqueeze(2))
                              .view({batch, beams * vocabulary});

      // The best `keep` continuations over all beams: enough that num_beams remain if some end.
      auto [top_scores, top_index] = torch::topk(totals, keep);
      const auto source_beam = top_index.div(vocabulary, "floor");
      const auto token = top_index.remainder(vocabulary);
      auto top_sequences = along_beams(running, source_beam);
      top_sequences.select(2, length).copy_(token);
      const auto ends = length + 1 >= max_length ? torch::ones({batch, keep}, bool_options)
                        : s.eos                  ? token.eq(*s.eos)
                                                 : torch::zeros({batch, keep}, bool_options);

      // The running beams of the next step: the best continuations that did not end.
      const auto live_scores = top_scores + ends.to(torch::kFloat32) * excluded;
      const auto next_live = std::get<1>(torch::topk(live_scores, beams));
      running = along_beams(top_sequences, next_live);
      running_scores = along_beams(live_scores, next_live);
      const auto running_source = along_beams(source_beam, next_live);

      // New hypotheses: continuations among the first num_beams that ended, length-penalised, kept
      // when better than the worst kept one.
      const auto just_finished = ends.logical_and(among_first_beams);
      auto scores = top_scores / std::pow(static_cast<double>(length), length_penalty);
      if (config.early_stopping == EarlyStoppingMode::enabled)
        scores = scores + finished.all(1, /*keepdim=*/true).to(torch::kFloat32) * excluded;
      scores = scores + improvable.logical_not().to(torch::kFloat32) * excluded;
      scores = scores + just_finished.logical_not().to(torch::kFloat32) * excluded;
      const auto merged_scores = torch::cat({hypothesis_scores, scores}, 1);
      const auto best = std::get<1>(torch::topk(merged_scores, beams));
      hypotheses = along_beams(torch::cat({hypotheses, top_sequences}, 1), best);
      hypothesis_scores = along_beams(merged_scores, best);
      finished = along_beams(torch::cat({finished, just_finished}, 1), best);
      hypothesis_lengths =
          along_beams(torch::cat({hypothesis_lengths, torch::full({batch, keep}, length + 1, long_options)}, 1), best);

      // The cache follows the beams that go on.
      if (config.use_cache && !cache.layers.empty()) cache.reorder((running_source + batch_offset).view({-1}));
      ++length;

      // Can a running beam still beat the worst kept hypothesis? The best it can reach is estimated
      // at the current length, or at the maximum length for "never" with a positive length penalty
      // (HF's _check_early_stop_heuristic).
      const double best_length = config.early_stopping == EarlyStoppingMode::never && length_penalty > 0.0
                                     ? static_cast<double>(max_length - 1)
                                     : static_cast<double>(length - 1);
      const auto best_possible = running_scores.narrow(1, 0, 1) / std::pow(best_length, length_penalty);
      const auto worst_kept = torch::where(finished, std::get<0>(hypothesis_scores.min(1, /*keepdim=*/true)),
                                           torch::scalar_tensor(excluded, float_options));
      improvable = improvable.logical_and(best_possible.gt(worst_kept).any(1, /*keepdim=*/true));
      auto go_on = improvable.any().logical_and(ends.all().logical_not());
      if (config.early_stopping == EarlyStoppingMode::enabled) go_on = go_on.logical_and(finished.all().logical_not());
      // The one host synchronisation per token: whether any example can still improve.
      if (length >= max_length || !go_on.item<bool>()) break;
    }
    const auto output_length = hypothesis_lengths.select(1, 0).max().item<std::int64_t>();
    return hypotheses.select(1, 0).narrow(1, 0, output_length);
  }
}

/// Generates target sequences for source tokens input_ids [B, S] (attention_mask [B, S], 1 on real
/// tokens; undefined: all ones) as transformers' model.generate(input_ids, attention_mask,
/// generation_config) does for an encoder-decoder model: greedy search when num_beams is 1, beam
/// search otherwise. Returns [B, L] int64 token ids starting with the decoder start token; sequences
/// that ended early are filled with pad_token_id (eos_token_id when unset); L is at most
/// config.effective_max_length() (max_new_tokens + 1, else max_length, else 21).
template <class Model>
torch::Tensor generate(Model& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                       const GenerationConfig& config) {
  if constexpr (!detail::check_encoder_decoder_model<Model>()) return {};
  else if (config.num_beams == 1) return greedy_search(model, input_ids, attention_mask, config);
  else return beam_search(model, input_ids, attention_mask, config);
}

}  // namespace trainpp
