#pragma once
// generate(): greedy search, sampling and beam search for encoder-decoder and decoder-only (causal)
// models, as transformers' GenerationMixin does them (transformers 5.x: _sample, _beam_search).

#include <trainpp/generation/config.hpp>
#include <trainpp/generation/kv_cache.hpp>
#include <trainpp/generation/logits_processors.hpp>
#include <trainpp/loss/model_output.hpp>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

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

/// The settings every search resolves once: lengths and the special tokens.
struct SearchTokens {
  std::int64_t prompt_length = 1;  ///< tokens every sequence starts with (the start token; a causal prompt)
  std::int64_t max_length = 0;     ///< the length generation stops at, prompt included
  torch::Tensor eos;               ///< int64 [E], the end tokens (empty: none)
  std::optional<std::int64_t> largest_eos;
  std::optional<std::int64_t> pad;
  torch::Tensor ignored_prefix;    ///< [N]: leading positions the repetition penalty skips (undefined: none)
};

inline SearchTokens search_tokens(const GenerationConfig& config, std::int64_t prompt_length, torch::Device device) {
  SearchTokens t;
  t.prompt_length = prompt_length;
  t.max_length = config.effective_max_length(prompt_length);
  const auto eos = config.eos_token_ids();
  t.eos = torch::tensor(eos, torch::kInt64).to(device);
  if (!eos.empty()) t.largest_eos = *std::max_element(eos.begin(), eos.end());
  t.pad = config.effective_pad_token_id();
  return t;
}

inline void check_inputs(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  if (!input_ids.defined() || input_ids.dim() != 2)
    throw error("generate: input_ids must be a [batch, length] tensor of token ids");
  if (attention_mask.defined() && attention_mask.sizes() != input_ids.sizes())
    throw error("generate: attention_mask has shape [{}], input_ids [{}]; they must match",
                fmt::join(attention_mask.sizes(), ", "), fmt::join(input_ids.sizes(), ", "));
}

/// The last position's logits [N, V] in float32 (as HF takes them), after checking what the model
/// returned (`member` names it in errors) and that the special tokens fit its vocabulary.
inline torch::Tensor last_token_logits(const torch::Tensor& logits, std::int64_t rows, const SearchTokens& t,
                                       std::string_view member) {
  if (!logits.defined() || logits.dim() != 3 || logits.size(0) != rows || logits.size(1) < 1)
    throw error("generate: {} must return logits of shape [{}, tokens, vocabulary], got [{}]", member, rows,
                logits.defined() ? fmt::format("{}", fmt::join(logits.sizes(), ", ")) : std::string("undefined"));
  const auto vocabulary = logits.size(2);
  if (t.largest_eos && *t.largest_eos >= vocabulary)
    throw error("generate: eos_token_id {} is outside the model's vocabulary of {} tokens", *t.largest_eos, vocabulary);
  if (t.pad && *t.pad >= vocabulary)
    throw error("generate: pad_token_id {} is outside the model's vocabulary of {} tokens", *t.pad, vocabulary);
  return logits.select(1, logits.size(1) - 1).to(torch::kFloat32);
}

/// The processors HF applies to every search's scores, in its order: repetition penalty, then
/// minimum length.
inline torch::Tensor process_scores(torch::Tensor scores, const torch::Tensor& sequences, std::int64_t length,
                                    const SearchTokens& t, const GenerationConfig& config) {
  if (config.repetition_penalty != 1.0)
    scores = apply_repetition_penalty(scores, sequences.narrow(1, 0, length), config.repetition_penalty,
                                      t.ignored_prefix);
  return apply_min_length(scores, t.eos, length, config.min_length);
}

/// Greedy search and multinomial sampling (HF's _sample). `sequences` [N, max_length] holds the
/// prompts in their first prompt_length columns; `next_logits(sequences, length)` gives the logits
/// [N, V] of the token after sequences[:, :length]. Sequences that ended are filled with pad. Returns
/// [N, L], L the length of the longest sequence.
template <class NextLogits>
torch::Tensor sample_loop(NextLogits&& next_logits, torch::Tensor sequences, const SearchTokens& t,
                          const GenerationConfig& config, const std::optional<at::Generator>& generator) {
  const auto n = sequences.size(0);
  const bool has_eos = t.eos.numel() > 0;
  auto unfinished = torch::ones({n}, sequences.options().dtype(torch::kBool));
  std::int64_t length = t.prompt_length;
  while (length < t.max_length) {
    auto scores = process_scores(next_logits(sequences, length), sequences, length, t, config);
    torch::Tensor next;
    if (config.do_sample) {
      if (config.temperature != 1.0) scores = apply_temperature(scores, config.temperature);
      scores = apply_top_p(apply_top_k(scores, config.top_k), config.top_p);
      next = torch::multinomial(scores.softmax(-1), 1, /*replacement=*/false, generator).squeeze(1);
    } else {
      next = scores.argmax(-1);
    }
    if (has_eos) next = torch::where(unfinished, next, torch::full_like(next, t.pad.value_or(0)));
    sequences.select(1, length).copy_(next);
    ++length;
    if (has_eos) {
      unfinished = unfinished.logical_and(torch::isin(next, t.eos).logical_not());
      // The one host synchronisation per token: stop as soon as every sequence has ended.
      if (!unfinished.any().item<bool>()) break;
    }
  }
  return sequences.narrow(1, 0, length);
}

/// Beam search as transformers 5.x's _beam_search (without sampling): num_beams running beams per
/// prompt scored by the sum of their tokens' processed log-softmax; each step the best 2·num_beams
/// continuations (more with several end tokens) are taken, those ending (an end token, or the maximum
/// length) among the first num_beams become hypotheses scored sum_logprobs / generated_length^length_penalty
/// (generated tokens, the end token included), and the num_beams best hypotheses are kept.
/// early_stopping decides when the search ends (see EarlyStoppingMode). `prompts` [B, P];
/// `next_logits(sequences [B·beams, max_length], length)` as for sample_loop; `reorder(index)` moves
/// the model's cache rows (row i takes old row index[i]). Returns the num_return_sequences best
/// hypotheses of each prompt, [B·num_return_sequences, L], padded with pad to the longest of them.
// Long on purpose: HF's beam search step by step, so that it can be checked line by line against transformers.
template <class NextLogits, class Reorder>
torch::Tensor beam_loop(NextLogits&& next_logits, Reorder&& reorder, const torch::Tensor& prompts, const SearchTokens& t,
                        const GenerationConfig& config) {
  const std::int64_t batch = prompts.size(0), beams = config.num_beams, max_length = t.max_length;
  const std::int64_t prompt_length = t.prompt_length, returned = config.num_return_sequences;
  const std::int64_t keep = std::max<std::int64_t>(2, 1 + t.eos.numel()) * beams;
  const double length_penalty = config.length_penalty;
  const auto device = prompts.device();
  const auto long_options = torch::TensorOptions().dtype(torch::kInt64).device(device);
  const auto float_options = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  const auto bool_options = torch::TensorOptions().dtype(torch::kBool).device(device);
  constexpr double excluded = -1.0e9;  // HF's score for what must not be chosen

  auto running = torch::full({batch, beams, max_length}, t.pad.value_or(0), long_options);
  running.narrow(2, 0, prompt_length).copy_(prompts.unsqueeze(1).expand({batch, beams, prompt_length}));
  auto hypotheses = running.clone();
  // Only the first beam starts live: the others would repeat its tokens.
  auto running_scores = torch::zeros({batch, beams}, float_options);
  running_scores.narrow(1, 1, beams - 1).fill_(excluded);
  auto hypothesis_scores = torch::full({batch, beams}, excluded, float_options);
  auto hypothesis_lengths = torch::full({batch, beams}, prompt_length, long_options);
  auto finished = torch::zeros({batch, beams}, bool_options);
  auto improvable = torch::ones({batch, 1}, bool_options);
  const auto among_first_beams =
      torch::cat({torch::ones({beams}, bool_options), torch::zeros({keep - beams}, bool_options)}).unsqueeze(0);
  const auto batch_offset = torch::arange(batch, long_options).unsqueeze(1) * beams;
  auto along_beams = [&](const torch::Tensor& x, const torch::Tensor& index) {
    return x.gather(1, x.dim() == 3 ? index.unsqueeze(2).expand({index.size(0), index.size(1), x.size(2)}) : index);
  };

  std::int64_t length = prompt_length;
  while (true) {
    const auto flat = running.reshape({batch * beams, max_length});
    const torch::Tensor log_probs =
        process_scores(torch::log_softmax(next_logits(flat, length), -1), flat, length, t, config);
    const std::int64_t vocabulary = log_probs.size(1);
    if (keep > beams * vocabulary)
      throw error("beam search keeps {} candidates per step, more than num_beams {} x a vocabulary of {} tokens "
                  "offers: lower num_beams", keep, beams, vocabulary);
    const auto totals =
        (log_probs.view({batch, beams, vocabulary}) + running_scores.unsqueeze(2)).view({batch, beams * vocabulary});

    // The best `keep` continuations over all beams: enough that num_beams remain if some end.
    auto [top_scores, top_index] = torch::topk(totals, keep);
    const auto source_beam = top_index.div(vocabulary, "floor");
    const auto token = top_index.remainder(vocabulary);
    auto top_sequences = along_beams(running, source_beam);
    top_sequences.select(2, length).copy_(token);
    const auto ends = length + 1 >= max_length ? torch::ones({batch, keep}, bool_options)
                      : t.eos.numel() > 0      ? torch::isin(token, t.eos)
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
    auto scores = top_scores / std::pow(static_cast<double>(length + 1 - prompt_length), length_penalty);
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
    reorder((running_source + batch_offset).view({-1}));
    ++length;

    // Can a running beam still beat the worst kept hypothesis? The best it can reach is estimated
    // at the current length, or at the maximum length for "never" with a positive length penalty
    // (HF's _check_early_stop_heuristic).
    const double best_length = config.early_stopping == EarlyStoppingMode::never && length_penalty > 0.0
                                   ? static_cast<double>(max_length - prompt_length)
                                   : static_cast<double>(length - prompt_length);
    const auto best_possible = running_scores.narrow(1, 0, 1) / std::pow(best_length, length_penalty);
    const auto worst_kept = torch::where(finished, std::get<0>(hypothesis_scores.min(1, /*keepdim=*/true)),
                                         torch::scalar_tensor(excluded, float_options));
    improvable = improvable.logical_and(best_possible.gt(worst_kept).any(1, /*keepdim=*/true));
    auto go_on = improvable.any().logical_and(ends.all().logical_not());
    if (config.early_stopping == EarlyStoppingMode::enabled) go_on = go_on.logical_and(finished.all().logical_not());
    // The one host synchronisation per token: whether any prompt can still improve.
    if (length >= max_length || !go_on.item<bool>()) break;
  }
  // hypotheses are kept best first.
  const auto output_length = hypothesis_lengths.narrow(1, 0, returned).max().item<std::int64_t>();
  return hypotheses.narrow(1, 0, returned).reshape({batch * returned, max_length}).narrow(1, 0, output_length);
}

// ---- encoder-decoder models ------------------------------------------------------------------------

/// An encoder-decoder model's search: its encoder output, the decoder's next-token logits through
/// the cache, and the cache's reordering.
template <class Model>
struct EncoderDecoderDecoding {
  Model& model;
  torch::Tensor encoder_states, attention_mask;  // one row per decoded sequence
  SearchTokens tokens;
  bool use_cache;
  KVCache cache;

  /// With the cache in use, only the tokens it lacks are decoded: the whole prefix while it is empty
  /// (or when the model keeps nothing in it), the last token afterwards. Without it, a fresh cache
  /// and the whole prefix every step.
  torch::Tensor next_logits(const torch::Tensor& sequences, std::int64_t length) {
    if (!use_cache) cache = KVCache{};
    const bool incremental = use_cache && !cache.layers.empty();
    const auto input = incremental ? sequences.narrow(1, length - 1, 1) : sequences.narrow(1, 0, length);
    return last_token_logits(model->decode_step(input, encoder_states, attention_mask, cache), input.size(0), tokens,
                             "decode_step");
  }
  void reorder(const torch::Tensor& index) {
    if (use_cache && !cache.layers.empty()) cache.reorder(index);
  }
};

template <class Model>
EncoderDecoderDecoding<Model> prepare_encoder_decoder(Model& model, const torch::Tensor& input_ids,
                                                      const torch::Tensor& attention_mask, const GenerationConfig& config,
                                                      std::int64_t rows_per_prompt) {
  config.validate();
  check_inputs(input_ids, attention_mask);
  const auto mask = attention_mask.defined() ? attention_mask : torch::ones_like(input_ids);
  (void)config.effective_decoder_start_token_id();  // throws early when there is none
  auto states = model->encode(input_ids, mask);
  return EncoderDecoderDecoding<Model>{model, states.repeat_interleave(rows_per_prompt, 0),
                                       mask.repeat_interleave(rows_per_prompt, 0),
                                       search_tokens(config, 1, input_ids.device()), config.use_cache, KVCache{}};
}

// ---- decoder-only models ---------------------------------------------------------------------------

/// A decoder-only model's search: logits through the model's KV cache, positions and attention mask
/// as transformers' generate gives them to a left-padded batch.
template <class Model>
struct CausalDecoding {
  Model& model;
  torch::Tensor attention_mask;  // [N, max_length]: the prompt's, then 1 for every generated token (as HF)
  SearchTokens tokens;
  bool use_cache;
  KVCache cache;

  /// With the cache in use, the whole prompt at the first step, the last token afterwards; without
  /// it, the model's plain forward over the whole prefix every step.
  torch::Tensor next_logits(const torch::Tensor& sequences, std::int64_t length) {
    const bool incremental = use_cache && !cache.layers.empty() && cache.layers.front().self_k.defined();
    const auto mask = attention_mask.narrow(1, 0, length);
    // HF's positions: cumsum(mask) - 1, so that a left-padded row's first token sits at 0.
    const auto positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1);
    const std::int64_t from = incremental ? length - 1 : 0;
    const auto input = sequences.narrow(1, from, length - from);
    return last_token_logits(model->logits(input, mask, positions.narrow(1, from, length - from),
                                           use_cache ? &cache : static_cast<KVCache*>(nullptr)),
                             input.size(0), tokens, "logits");
  }
  void reorder(const torch::Tensor& index) {
    if (use_cache) cache.reorder(index);
  }
};

template <class Model>
CausalDecoding<Model> prepare_causal(Model& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                     const GenerationConfig& config, std::int64_t rows_per_prompt) {
  config.validate();
  check_inputs(input_ids, attention_mask);
  if (input_ids.size(1) < 1) throw error("generate: a decoder-only model needs a prompt of at least one token");
  const auto prompt_length = input_ids.size(1);
  auto tokens = search_tokens(config, prompt_length, input_ids.device());
  if (tokens.max_length <= prompt_length)
    throw error("generate: max_length {} leaves no room after the prompt of {} tokens: raise max_length or set "
                "max_new_tokens", tokens.max_length, prompt_length);
  const auto prompt_mask =
      (attention_mask.defined() ? attention_mask : torch::ones_like(input_ids)).to(torch::kInt64).repeat_interleave(rows_per_prompt, 0);
  // HF's repetition penalty skips the left padding: the positions before each row's first token.
  tokens.ignored_prefix = prompt_mask.ne(0).to(torch::kInt32).argmax(1);
  const auto mask = torch::cat(
      {prompt_mask, torch::ones({prompt_mask.size(0), tokens.max_length - prompt_length}, prompt_mask.options())}, 1);
  return CausalDecoding<Model>{model, mask, std::move(tokens), config.use_cache, KVCache{}};
}

}  // namespace detail

/// A decoder-only model trainpp::generate can continue prompts with: a torch::nn::ModuleHolder
/// (TORCH_MODULE) or a std::shared_ptr to a module, called through `->`, with
/// `torch::Tensor logits(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
/// const torch::Tensor& position_ids, trainpp::KVCache* cache)`: the logits [B, T_new, V] of the T_new
/// tokens given that the cache does not hold yet, appending their keys and values to it; attention_mask
/// [B, past + T_new] covers the cached tokens too, position_ids are [B, T_new]. GPT2LMHeadModel and
/// LlamaForCausalLM are such models.
/// Guarantees: generate calls logits first with an empty cache and the whole prompt, then with the one
/// token chosen last; beam search reorders the cache (KVCache::reorder) along dimension 0.
template <class M>
concept CausalLanguageModel = requires(M& model, const torch::Tensor& t, KVCache* cache) {
  { model->logits(t, t, t, cache) } -> std::convertible_to<torch::Tensor>;
};

namespace detail {

template <class M>
constexpr bool check_causal_language_model() {
  constexpr bool holder = requires(M& m) { m.operator->(); };
  static_assert(holder, "trainpp::generate: the model must be a torch::nn::ModuleHolder (declared with "
                        "TORCH_MODULE) or a std::shared_ptr to a module");
  if constexpr (!holder) {
    return false;
  } else {
    static_assert(CausalLanguageModel<M>,
                  "trainpp::generate: a decoder-only model needs a member torch::Tensor logits(const torch::Tensor& "
                  "input_ids, const torch::Tensor& attention_mask, const torch::Tensor& position_ids, "
                  "trainpp::KVCache* cache) (an encoder-decoder model needs encode and decode_step instead)");
    return CausalLanguageModel<M>;
  }
}

/// Whether generate treats the model as an encoder-decoder one: it has an encode member.
template <class M>
constexpr bool has_encoder() {
  return requires(M& m, const torch::Tensor& t) { m->encode(t, t); };
}

}  // namespace detail

/// Greedy search, or sampling when config.do_sample (HF's generate with num_beams 1): the most likely
/// next token each step, or one drawn from the processed distribution, until every sequence has
/// produced an end token or the maximum length is reached. Encoder-decoder models start from the
/// decoder start token, decoder-only ones continue their prompt. Sequences that ended are filled with
/// pad_token_id (eos_token_id when unset). Returns [B·n, L] int64 token ids (n: num_return_sequences
/// samples per prompt, one after the other), prompt first, L the length of the longest sequence.
/// Sampling draws from `generator`, or from LibTorch's default generator (torch::manual_seed) when
/// none is given. Runs without gradients, with the model in eval mode (restored afterwards).
template <class Model>
torch::Tensor greedy_search(Model& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                            const GenerationConfig& config, const std::optional<at::Generator>& generator = std::nullopt) {
  if constexpr (detail::has_encoder<Model>()) {
    if constexpr (!detail::check_encoder_decoder_model<Model>()) {
      return {};
    } else {
      torch::NoGradGuard no_grad;
      detail::EvalModeGuard eval_mode(module_of(model));
      const auto rows = config.do_sample ? config.num_return_sequences : 1;
      auto decoding = detail::prepare_encoder_decoder(model, input_ids, attention_mask, config, rows);
      auto sequences = torch::full({input_ids.size(0) * rows, decoding.tokens.max_length},
                                   decoding.tokens.pad.value_or(0), input_ids.options().dtype(torch::kInt64));
      sequences.select(1, 0).fill_(config.effective_decoder_start_token_id());
      return detail::sample_loop([&](const torch::Tensor& s, std::int64_t n) { return decoding.next_logits(s, n); },
                                 sequences, decoding.tokens, config, generator);
    }
  } else if constexpr (!detail::check_causal_language_model<Model>()) {
    return {};
  } else {
    torch::NoGradGuard no_grad;
    detail::EvalModeGuard eval_mode(module_of(model));
    const auto rows = config.do_sample ? config.num_return_sequences : 1;
    auto decoding = detail::prepare_causal(model, input_ids, attention_mask, config, rows);
    auto sequences = torch::full({input_ids.size(0) * rows, decoding.tokens.max_length}, decoding.tokens.pad.value_or(0),
                                 input_ids.options().dtype(torch::kInt64));
    sequences.narrow(1, 0, input_ids.size(1)).copy_(input_ids.repeat_interleave(rows, 0));
    return detail::sample_loop([&](const torch::Tensor& s, std::int64_t n) { return decoding.next_logits(s, n); },
                               sequences, decoding.tokens, config, generator);
  }
}

/// Beam search as transformers 5.x's _beam_search (see detail::beam_loop), for encoder-decoder models
/// (from the decoder start token) and decoder-only ones (continuing the prompt). Returns the
/// num_return_sequences best hypotheses of each prompt, best first, [B·num_return_sequences, L] int64,
/// padded with pad_token_id (eos_token_id when unset) to the longest of them. One difference from HF:
/// transformers fills with eos when pad_token_id is 0 (`pad or eos` in Python); trainpp fills with the
/// pad token. No gradients, eval mode (restored afterwards).
template <class Model>
torch::Tensor beam_search(Model& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                          const GenerationConfig& config) {
  if constexpr (detail::has_encoder<Model>()) {
    if constexpr (!detail::check_encoder_decoder_model<Model>()) {
      return {};
    } else {
      torch::NoGradGuard no_grad;
      detail::EvalModeGuard eval_mode(module_of(model));
      auto decoding = detail::prepare_encoder_decoder(model, input_ids, attention_mask, config, config.num_beams);
      const auto start = torch::full({input_ids.size(0), 1}, config.effective_decoder_start_token_id(),
                                     input_ids.options().dtype(torch::kInt64));
      return detail::beam_loop([&](const torch::Tensor& s, std::int64_t n) { return decoding.next_logits(s, n); },
                               [&](const torch::Tensor& index) { decoding.reorder(index); }, start, decoding.tokens,
                               config);
    }
  } else if constexpr (!detail::check_causal_language_model<Model>()) {
    return {};
  } else {
    torch::NoGradGuard no_grad;
    detail::EvalModeGuard eval_mode(module_of(model));
    auto decoding = detail::prepare_causal(model, input_ids, attention_mask, config, config.num_beams);
    return detail::beam_loop([&](const torch::Tensor& s, std::int64_t n) { return decoding.next_logits(s, n); },
                             [&](const torch::Tensor& index) { decoding.reorder(index); }, input_ids.to(torch::kInt64),
                             decoding.tokens, config);
  }
}

/// Generates as transformers' model.generate(input_ids, attention_mask, generation_config) does: beam
/// search when num_beams > 1, else sampling when do_sample, else greedy search.
///
/// - Encoder-decoder models (EncoderDecoderModel): input_ids [B, S] are the source tokens; returns
///   [B·n, L] target ids starting with the decoder start token.
/// - Decoder-only models (CausalLanguageModel, e.g. GPT2LMHeadModel, LlamaForCausalLM): input_ids
///   [B, P] are the prompts, left-padded when of different lengths (attention_mask 0 on the padding);
///   returns [B·n, L] ids, the prompt (padding included) followed by the generated tokens, as HF.
///
/// attention_mask [B, S] is 1 on real tokens (undefined: all ones). n is num_return_sequences, the rows
/// of one prompt adjacent. Sequences that ended early are filled with pad_token_id (eos_token_id when
/// unset); L is at most config.effective_max_length(prompt length). Sampling is reproducible: it draws
/// from `generator`, else from LibTorch's default generator, seeded by torch::manual_seed.
template <class Model>
torch::Tensor generate(Model& model, const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                       const GenerationConfig& config, const std::optional<at::Generator>& generator = std::nullopt) {
  if (config.num_beams > 1 && !config.do_sample) return beam_search(model, input_ids, attention_mask, config);
  return greedy_search(model, input_ids, attention_mask, config, generator);
}

}  // namespace trainpp
