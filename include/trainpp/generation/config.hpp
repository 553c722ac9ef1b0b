#pragma once
// GenerationConfig: the settings of trainpp::generate, with the names, defaults and JSON keys of
// Hugging Face's GenerationConfig (generation_config.json), for greedy search, beam search and sampling.

#include <trainpp/detail/config.hpp>
#include <trainpp/io/json.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace trainpp {

/// When beam search stops (HF's `early_stopping`, a bool or "never").
enum class EarlyStoppingMode {
  heuristic,  ///< HF's False (the default): stop when the best running beam, scored at the current
              ///< length, can no longer beat the worst kept hypothesis
  enabled,    ///< HF's True: stop as soon as num_beams hypotheses are finished
  never,      ///< HF's "never": stop only when no running beam can beat a kept hypothesis (canonical beam search)
};

/// How sequences are generated: HF's GenerationConfig, for greedy search, beam search and sampling.
///
/// Lengths count the prompt, as HF's do: the decoder start token of an encoder-decoder model
/// (`max_length` 5 gives at most 4 generated tokens), the whole (padded) prompt of a decoder-only one.
/// Unset `max_length` means HF's default of 20 *new* tokens (transformers adds the prompt length when
/// max_length was never set); `max_new_tokens` takes precedence over `max_length` when both are set.
struct GenerationConfig {
  std::optional<std::int64_t> max_length;      ///< unset: 20 new tokens (HF's default)
  std::optional<std::int64_t> max_new_tokens;  ///< wins over max_length
  std::int64_t min_length = 0;                 ///< eos is forbidden while the sequence is shorter (start token counted)
  std::int64_t num_beams = 1;                  ///< 1: greedy search
  double length_penalty = 1.0;                 ///< a finished hypothesis scores sum_logprobs / length^length_penalty
  EarlyStoppingMode early_stopping = EarlyStoppingMode::heuristic;
  bool use_cache = true;                       ///< false: every step re-decodes the whole prefix with a fresh cache
  std::int64_t num_return_sequences = 1;       ///< sequences per prompt: the best beams, or independent samples
  bool do_sample = false;                      ///< draw each token from the processed distribution (num_beams 1)
  double temperature = 1.0;                    ///< sampling: the logits are divided by it
  std::int64_t top_k = 50;                     ///< sampling: only the k likeliest tokens (0: all), HF's default 50
  double top_p = 1.0;                          ///< sampling: the smallest set of tokens holding this probability
  double repetition_penalty = 1.0;             ///< tokens already in the sequence: logits / penalty (x penalty if < 0)
  std::optional<std::int64_t> bos_token_id;
  std::optional<std::int64_t> eos_token_id;    ///< the end token (HF's first when it lists several)
  std::vector<std::int64_t> extra_eos_token_ids;  ///< further end tokens (the rest of HF's eos_token_id list)
  std::optional<std::int64_t> pad_token_id;            ///< unset: eos_token_id (as HF)
  std::optional<std::int64_t> decoder_start_token_id;  ///< unset: bos_token_id (as HF)

  /// HF's default max_length, in new tokens.
  static constexpr std::int64_t default_max_new_tokens = 20;

  /// The length generation stops at, counting `prompt_length` decoder tokens (1: the start token):
  /// max_new_tokens + prompt_length, else max_length, else 20 + prompt_length (HF's
  /// _prepare_generated_length).
  [[nodiscard]] std::int64_t effective_max_length(std::int64_t prompt_length = 1) const {
    if (max_new_tokens) return *max_new_tokens + prompt_length;
    if (max_length) return *max_length;
    return default_max_new_tokens + prompt_length;
  }

  /// Every token that ends a sequence: eos_token_id, then extra_eos_token_ids.
  [[nodiscard]] std::vector<std::int64_t> eos_token_ids() const {
    std::vector<std::int64_t> ids;
    if (eos_token_id) ids.push_back(*eos_token_id);
    ids.insert(ids.end(), extra_eos_token_ids.begin(), extra_eos_token_ids.end());
    return ids;
  }

  /// The token that fills finished sequences: pad_token_id, else eos_token_id (HF's
  /// _prepare_special_tokens); nullopt when neither is set.
  [[nodiscard]] std::optional<std::int64_t> effective_pad_token_id() const {
    return pad_token_id ? pad_token_id : eos_token_id;
  }

  /// The first decoder token: decoder_start_token_id, else bos_token_id; throws when neither is set.
  [[nodiscard]] std::int64_t effective_decoder_start_token_id() const {
    if (decoder_start_token_id) return *decoder_start_token_id;
    if (bos_token_id) return *bos_token_id;
    throw error("generation needs decoder_start_token_id or bos_token_id in the generation config");
  }

  /// Throws trainpp::Error naming the first setting that generation cannot use.
  void validate() const;

  /// A config from the object of a generation_config.json. `source` names it in errors.
  /// Keys of HF's GenerationConfig that trainpp does not implement are accepted at their neutral value
  /// (do_sample false, temperature 1.0, repetition_penalty 1.0, ...) and refused otherwise, since the
  /// result would differ from HF's; HF's metadata (transformers_version, _from_model_config) and keys
  /// it does not know are ignored, as HF keeps them as inert attributes.
  [[nodiscard]] static GenerationConfig from_json(const nlohmann::json& j, std::string_view source = "the generation config");
  /// A config from a generation_config.json file, or from a directory holding one (HF's
  /// GenerationConfig.from_pretrained on a local path). Malformed content: an Error naming file and key.
  [[nodiscard]] static GenerationConfig from_file(const std::filesystem::path& path);
  /// The settings as generation_config.json keys (unset optionals omitted).
  [[nodiscard]] nlohmann::json to_json() const;
};

// ---- implementation ------------------------------------------------------------------------------

inline void GenerationConfig::validate() const {
  if (num_beams < 1) throw error("num_beams must be at least 1 (1 is greedy search), got {}", num_beams);
  if (max_new_tokens && *max_new_tokens <= 0)
    throw error("max_new_tokens must be greater than 0, got {}", *max_new_tokens);
  // HF refuses a max_length that leaves no room after the decoder prompt (the start token).
  if (!max_new_tokens && max_length && *max_length <= 1)
    throw error("max_length is {}, but the decoder start token alone has length 1: raise max_length "
                "or set max_new_tokens", *max_length);
  if (min_length < 0) throw error("min_length must be >= 0, got {}", min_length);
  if (!std::isfinite(length_penalty)) throw error("length_penalty must be a finite number, got {}", length_penalty);
  if (num_return_sequences < 1)
    throw error("num_return_sequences must be at least 1, got {}", num_return_sequences);
  // HF's GenerationConfig.validate refuses the same combinations.
  if (num_return_sequences > 1 && num_beams == 1 && !do_sample)
    throw error("num_return_sequences {} needs beam search (num_beams > 1) or sampling (do_sample): greedy search "
                "gives one sequence per prompt", num_return_sequences);
  if (num_beams > 1 && num_return_sequences > num_beams)
    throw error("num_return_sequences ({}) must not exceed num_beams ({})", num_return_sequences, num_beams);
  if (do_sample && num_beams > 1)
    throw error("do_sample with num_beams {} (beam sampling) is not supported: set num_beams 1 to sample, or "
                "do_sample false for beam search", num_beams);
  if (!(temperature > 0.0) || !std::isfinite(temperature))
    throw error("temperature must be a positive number, got {}", temperature);
  if (top_k < 0) throw error("top_k must be >= 0 (0: no top-k filtering), got {}", top_k);
  if (!(top_p >= 0.0 && top_p <= 1.0)) throw error("top_p must be in [0, 1], got {}", top_p);
  if (!(repetition_penalty > 0.0) || !std::isfinite(repetition_penalty))
    throw error("repetition_penalty must be a positive number, got {}", repetition_penalty);
  auto non_negative = [](std::string_view name, const std::optional<std::int64_t>& id) {
    if (id && *id < 0) throw error("{} must be a token id (>= 0), got {}", name, *id);
  };
  non_negative("bos_token_id", bos_token_id);
  non_negative("eos_token_id", eos_token_id);
  for (const auto id : extra_eos_token_ids) non_negative("an entry of extra_eos_token_ids", id);
  if (!extra_eos_token_ids.empty() && !eos_token_id)
    throw error("extra_eos_token_ids are set without eos_token_id: the first end token goes in eos_token_id");
  non_negative("pad_token_id", pad_token_id);
  non_negative("decoder_start_token_id", decoder_start_token_id);
}

namespace detail {

/// Whether a key of HF's GenerationConfig that trainpp does not implement holds a value with no
/// effect on the sequences. nullopt: not such a key.
[[nodiscard]] inline std::optional<bool> unimplemented_generation_key_is_neutral(std::string_view key,
                                                                                  const nlohmann::json& v) {
  if (v.is_null()) return std::optional<bool>(true);
  auto number_is = [&](double neutral) { return v.is_number() && v.get<double>() == neutral; };
  auto empty = [&] { return (v.is_array() || v.is_object()) && v.empty(); };
  if (key == "min_p") return number_is(0.0);
  if (key == "top_h") return std::optional<bool>(false);  // any value but null (above) filters the tokens
  if (key == "typical_p") return number_is(1.0);
  if (key == "epsilon_cutoff" || key == "eta_cutoff") return number_is(0.0);
  // Output and runtime settings that do not change the sequences.
  for (std::string_view k : {"output_attentions", "output_hidden_states", "output_scores", "output_logits",
                             "return_dict_in_generate", "cache_implementation", "cache_config", "max_cache_len",
                             "compile_config", "disable_compile", "is_assistant", "num_assistant_tokens",
                             "num_assistant_tokens_schedule", "assistant_confidence_threshold",
                             "prompt_lookup_num_tokens", "max_matching_ngram_size", "assistant_early_exit",
                             "assistant_lookbehind", "target_lookbehind", "low_memory"})
    if (key == k) return std::optional<bool>(true);
  if (key == "token_healing" || key == "renormalize_logits" || key == "remove_invalid_values" ||
      key == "use_mtp")
    return v.is_boolean() && !v.get<bool>();
  if (key == "encoder_repetition_penalty" || key == "guidance_scale")
    return number_is(1.0);
  if (key == "no_repeat_ngram_size" || key == "encoder_no_repeat_ngram_size" || key == "min_new_tokens" ||
      key == "diversity_penalty" || key == "penalty_alpha")
    return number_is(0.0);
  if (key == "num_beam_groups") return number_is(1.0);
  for (std::string_view k : {"bad_words_ids", "suppress_tokens", "begin_suppress_tokens", "sequence_bias",
                             "force_words_ids", "constraints", "stop_strings", "forced_bos_token_id",
                             "forced_eos_token_id", "exponential_decay_length_penalty", "max_time",
                             "watermarking_config", "forced_decoder_ids", "dola_layers"})
    if (key == k) return std::optional<bool>(empty());
  return std::nullopt;
}

}  // namespace detail

inline GenerationConfig GenerationConfig::from_json(const nlohmann::json& j, std::string_view source) {
  if (!j.is_object()) throw error("{} must hold a JSON object, got {}", source, j.type_name());
  GenerationConfig c;
  auto bad = [&](std::string_view key, std::string_view expected, const nlohmann::json& v) {
    return error("{}: key \"{}\": expected {}, got {}", source, key, expected, v.dump());
  };
  auto integer = [&](std::string_view key, const nlohmann::json& v) -> std::int64_t {
    if (!v.is_number_integer()) throw bad(key, "an integer", v);
    if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
      throw bad(key, "an integer that fits in 64 bits", v);
    return v.get<std::int64_t>();
  };
  auto optional_integer = [&](std::string_view key, const nlohmann::json& v) -> std::optional<std::int64_t> {
    if (v.is_null()) return std::nullopt;
    return integer(key, v);
  };
  for (const auto& [key, v] : j.items()) {
    if (key == "max_length") c.max_length = optional_integer(key, v);
    else if (key == "max_new_tokens") c.max_new_tokens = optional_integer(key, v);
    else if (key == "min_length") c.min_length = v.is_null() ? 0 : integer(key, v);
    else if (key == "num_beams") c.num_beams = v.is_null() ? 1 : integer(key, v);
    else if (key == "num_return_sequences") c.num_return_sequences = v.is_null() ? 1 : integer(key, v);
    else if (key == "length_penalty") {
      if (v.is_null()) continue;
      if (!v.is_number()) throw bad(key, "a number", v);
      c.length_penalty = v.get<double>();
    } else if (key == "early_stopping") {
      if (v.is_null()) continue;
      if (v.is_boolean()) c.early_stopping = v.get<bool>() ? EarlyStoppingMode::enabled : EarlyStoppingMode::heuristic;
      else if (v.is_string() && v.get<std::string>() == "never") c.early_stopping = EarlyStoppingMode::never;
      else throw bad(key, "true, false or \"never\"", v);
    } else if (key == "use_cache") {
      if (v.is_null()) continue;
      if (!v.is_boolean()) throw bad(key, "a boolean", v);
      c.use_cache = v.get<bool>();
    } else if (key == "do_sample") {
      if (v.is_null()) continue;
      if (!v.is_boolean()) throw bad(key, "a boolean", v);
      c.do_sample = v.get<bool>();
    } else if (key == "temperature" || key == "top_p" || key == "repetition_penalty") {
      if (v.is_null()) continue;  // HF's None: the default
      if (!v.is_number()) throw bad(key, "a number", v);
      (key == "temperature" ? c.temperature : key == "top_p" ? c.top_p : c.repetition_penalty) = v.get<double>();
    } else if (key == "top_k") {
      if (!v.is_null()) c.top_k = integer(key, v);
    } else if (key == "eos_token_id") {
      // HF allows a list of end tokens: the first is eos_token_id (the padding fallback), the rest end too.
      c.extra_eos_token_ids.clear();
      if (v.is_array()) {
        if (v.empty()) throw bad(key, "a token id or a non-empty list of them", v);
        c.eos_token_id = integer(key, v.front());
        for (std::size_t i = 1; i < v.size(); ++i) c.extra_eos_token_ids.push_back(integer(key, v[i]));
      } else {
        c.eos_token_id = optional_integer(key, v);
      }
    } else if (key == "bos_token_id") c.bos_token_id = optional_integer(key, v);
    else if (key == "pad_token_id") c.pad_token_id = optional_integer(key, v);
    else if (key == "decoder_start_token_id") c.decoder_start_token_id = optional_integer(key, v);
    else if (auto neutral = detail::unimplemented_generation_key_is_neutral(key, v)) {
      if (!*neutral)
        throw error("{}: key \"{}\" is {}, which trainpp generation does not implement (greedy search, beam "
                    "search and sampling with temperature, top_k, top_p and repetition_penalty); remove the key or "
                    "set it to its default", source, key, v.dump());
    }
    // Anything else (transformers_version, _from_model_config, a custom entry) is ignored, as HF keeps it inert.
  }
  try {
    c.validate();
  } catch (const Error& e) {
    throw error("{}: {}", source, e.what());
  }
  return c;
}

inline GenerationConfig GenerationConfig::from_file(const std::filesystem::path& path) {
  std::filesystem::path file = path;
  if (std::filesystem::is_directory(path)) file = path / "generation_config.json";
  if (!std::filesystem::is_regular_file(file))
    throw error("generation config file {} does not exist (give a generation_config.json or the directory "
                "holding one)", file.string());
  return from_json(read_json_file(file), file.string());
}

inline nlohmann::json GenerationConfig::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  auto put = [&](const char* key, const std::optional<std::int64_t>& v) {
    if (v) j[key] = *v;
  };
  put("max_length", max_length);
  put("max_new_tokens", max_new_tokens);
  j["min_length"] = min_length;
  j["num_beams"] = num_beams;
  j["length_penalty"] = length_penalty;
  if (early_stopping == EarlyStoppingMode::never) j["early_stopping"] = "never";
  else j["early_stopping"] = early_stopping == EarlyStoppingMode::enabled;
  j["use_cache"] = use_cache;
  j["num_return_sequences"] = num_return_sequences;
  j["do_sample"] = do_sample;
  j["temperature"] = temperature;
  j["top_k"] = top_k;
  j["top_p"] = top_p;
  j["repetition_penalty"] = repetition_penalty;
  put("bos_token_id", bos_token_id);
  if (extra_eos_token_ids.empty()) put("eos_token_id", eos_token_id);
  else j["eos_token_id"] = eos_token_ids();
  put("pad_token_id", pad_token_id);
  put("decoder_start_token_id", decoder_start_token_id);
  return j;
}

}  // namespace trainpp
