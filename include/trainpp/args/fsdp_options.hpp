#pragma once
// HF's --fsdp and --fsdp_config (or --deepspeed), read into one FsdpOptions that the sharding policies
// take. Part of the arguments (TrainingArguments::fsdp_options), so below them and below sharding/.

#include <trainpp/detail/config.hpp>
#include <trainpp/distributed/launch_environment.hpp>
#include <trainpp/io/atomic_write.hpp>
#include <trainpp/io/json.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

#if TRAINPP_DEFINITIONS
#include <array>
#include <sstream>
#include <utility>
#endif

namespace trainpp {

/// FSDP's sharding strategies (ZeRO stages 1-2 as one: trainpp shards gradients and optimizer state
/// together, as SHARD_GRAD_OP does).
enum class ShardingStrategy { no_shard, shard_grad_op, full_shard };
/// When FullShard gathers the next unit ahead of its backward (FSDP's BackwardPrefetch).
enum class BackwardPrefetch { no_prefetch, backward_pre, backward_post };
/// How checkpoints hold the model under a sharded policy (accelerate's state_dict_type).
enum class StateDictType { full_state_dict, sharded_state_dict };

/// Everything --fsdp and --fsdp_config say, with HF's defaults.
struct FsdpOptions {
  std::optional<ShardingStrategy> strategy;  ///< nullopt: --fsdp not given
  /// FSDP's HYBRID_SHARD (with full_shard) and HYBRID_SHARD_ZERO2 (with shard_grad_op): the strategy
  /// applies among the processes of one node (those sharing LOCAL_WORLD_SIZE), and the nodes hold
  /// replicas of each other, their gradient shards averaged by an all-reduce across nodes.
  bool hybrid = false;
  bool offload = false;                      ///< parameters, gradients, optimizer state and step on the CPU
  bool auto_wrap = false;  ///< set by --fsdp auto_wrap, or by the config naming what to wrap
  /// Module class names whose instances become units (fsdp_transformer_layer_cls_to_wrap); matched
  /// against the C++ class name with or without its namespaces.
  std::vector<std::string> transformer_layer_cls_to_wrap;
  std::int64_t min_num_params = 0;  ///< size-based auto-wrap when > 0
  BackwardPrefetch backward_prefetch = BackwardPrefetch::no_prefetch;
  bool forward_prefetch = false;
  bool limit_all_gathers = true;  ///< at most two units gathered at once (the one in use and one ahead)
  bool activation_checkpointing = false;
  bool sync_module_states = true;  ///< rank 0's initial weights everywhere
  StateDictType state_dict_type = StateDictType::full_state_dict;
};

namespace detail {

inline std::string lower(std::string s) {
  std::ranges::transform(s, s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

/// A config value that must be a boolean: JSON true/false, or the strings accelerate's YAML writes.
bool fsdp_bool(const nlohmann::json& value, const std::string& key, const std::string& source);

/// The JSON of an option that holds an inline object ("{...}") or the path of a JSON file, read
/// strictly (duplicate keys refused, see parse_json_strict). `source` becomes what errors name: the
/// flag for an inline object, else the file.
nlohmann::json read_json_option(std::string_view flag, const std::string& value, std::string& source);

}  // namespace detail

/// Reads --fsdp (space-separated options) and --fsdp_config (a JSON file path, or a JSON object
/// given inline), with HF's rules: `offload` alone and `full_shard` with `shard_grad_op` are errors;
/// a leading `fsdp_` of a config key is dropped; min_num_params and transformer_layer_cls_to_wrap
/// exclude each other; activation_checkpointing excludes --gradient_checkpointing. Unlike HF, an
/// unknown key or option is an error (HF ignores it, and a typo silently trains without sharding).
// Long on purpose: one rule of HF's --fsdp / --fsdp_config checks after another, each with its message.
[[nodiscard]] FsdpOptions parse_fsdp_options(const std::string& fsdp, const std::optional<std::string>& fsdp_config,
                                             bool gradient_checkpointing);

/// What `accelerate launch` says about FSDP, as --fsdp and --fsdp_config would say it.
struct AccelerateFsdp {
  std::string fsdp;  ///< the strategy (and offload) in --fsdp's words
  nlohmann::json config = nlohmann::json::object();  ///< fsdp_config keys, without the fsdp_ prefix
};

/// Reads the FSDP settings `accelerate launch` exports from a config file whose distributed_type is
/// FSDP (ACCELERATE_USE_FSDP=true, then FSDP_SHARDING_STRATEGY, FSDP_AUTO_WRAP_POLICY, ...); nullopt
/// when it does not say FSDP. The strategy is a name (FULL_SHARD, SHARD_GRAD_OP, NO_SHARD,
/// HYBRID_SHARD, HYBRID_SHARD_ZERO2) or its number 1..5, as accelerate's configs write either; FSDP
/// version 2 configs say FSDP_RESHARD_AFTER_FORWARD instead (true: full_shard, false: shard_grad_op).
/// Settings without a counterpart here (use_orig_params, cpu_ram_efficient_loading) are ignored;
/// a value trainpp cannot honour is an error naming the variable.
// Long on purpose: one accelerate variable after another, each mapped and checked in place.
[[nodiscard]] std::optional<AccelerateFsdp> accelerate_fsdp_environment(const EnvironmentReader& env = process_environment);

/// What a DeepSpeed config must agree on with the training arguments (HF fills "auto" values from
/// them and refuses explicit values that differ).
struct DeepSpeedArguments {
  std::int64_t per_device_train_batch_size = 8;
  std::int64_t gradient_accumulation_steps = 1;
  double max_grad_norm = 1.0;
  double learning_rate = 5e-5, weight_decay = 0, adam_beta1 = 0.9, adam_beta2 = 0.999, adam_epsilon = 1e-8;
  bool fp16 = false, bf16 = false;
  std::int64_t world_size = 1;
  bool operator==(const DeepSpeedArguments&) const = default;
};

/// Everything FsdpOptions are read from (TrainingArguments::fsdp_options): equal sources read the same
/// options, so a source compared equal lets the options read once stand for a new reading.
struct ShardingOptionsSource {
  std::string fsdp;
  std::optional<std::string> fsdp_config;
  std::optional<std::string> deepspeed;
  bool gradient_checkpointing = false;
  DeepSpeedArguments deepspeed_arguments;  ///< read only with deepspeed
  bool operator==(const ShardingOptionsSource&) const = default;
};

/// The options a source gives: --deepspeed's config, else --fsdp with --fsdp_config. Reads a config file
/// each call; TrainingArguments::fsdp_options() answers from the reading finalize() kept.
[[nodiscard]] FsdpOptions read_sharding_options(const ShardingOptionsSource& source);

/// A DeepSpeed JSON config (--deepspeed: a file, or an inline object) mapped onto the same policies:
/// zero_optimization.stage 0 → data parallelism, 1 and 2 → shard_grad_op (trainpp shards gradients with
/// the optimizer state, which stage 1 would not: less memory, the same numbers), 3 → full_shard (the
/// whole model one unit: DeepSpeed gathers per module, which needs trainpp::call; use --fsdp_config to
/// wrap units); offload_optimizer / offload_param to "cpu" → offload. "auto" values are the training
/// arguments'; explicit train_micro_batch_size_per_gpu, gradient_accumulation_steps, train_batch_size,
/// gradient_clipping, fp16/bf16.enabled and AdamW's lr, betas, eps, weight_decay must equal them, as
/// HF requires. DeepSpeed's tuning keys (bucket sizes, overlap_comm, stage3_* thresholds, logging) are
/// accepted and have no effect; anything else, a scheduler block, another optimizer or NVMe offload is
/// an error naming it.
// Long on purpose: one check per DeepSpeed config key, in the config's own order, each with its message.
[[nodiscard]] FsdpOptions parse_deepspeed_config(const std::string& deepspeed, const DeepSpeedArguments& a);

#if TRAINPP_DEFINITIONS

namespace detail {

TRAINPP_INLINE bool fsdp_bool(const nlohmann::json& value, const std::string& key, const std::string& source) {
  if (value.is_boolean()) return value.get<bool>();
  if (value.is_string()) {
    const auto v = lower(value.get<std::string>());
    if (v == "true") return true;
    if (v == "false") return false;
  }
  throw error("{}: fsdp_config key '{}' must be true or false, got {}", source, key, value.dump());
}

TRAINPP_INLINE nlohmann::json read_json_option(std::string_view flag, const std::string& value, std::string& source) {
  const auto first = value.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && value[first] == '{') {
    source = std::string(flag);
    return parse_json_strict(value, source);
  }
  source = value;
  std::string text;
  try {
    text = read_file(value);
  } catch (const Error& e) {
    throw error("{} {}: cannot open the file ({})", flag, value, e.what());
  }
  return parse_json_strict(text, source);
}

}  // namespace detail

TRAINPP_INLINE FsdpOptions parse_fsdp_options(const std::string& fsdp, const std::optional<std::string>& fsdp_config,
                                              bool gradient_checkpointing) {
  FsdpOptions o;
  std::istringstream words(fsdp);
  bool full = false, grad_op = false, none = false, hybrid_full = false, hybrid_grad_op = false;
  for (std::string word; words >> word;) {
    const auto w = detail::lower(word);
    if (w == "full_shard") full = true;
    else if (w == "shard_grad_op") grad_op = true;
    else if (w == "no_shard") none = true;
    else if (w == "offload") o.offload = true;
    else if (w == "auto_wrap") o.auto_wrap = true;
    else if (w == "hybrid_shard") hybrid_full = true;
    else if (w == "hybrid_shard_zero2") hybrid_grad_op = true;
    else
      throw error("--fsdp: unknown option '{}' (expected full_shard, shard_grad_op, hybrid_shard, hybrid_shard_zero2, "
                  "no_shard, offload, auto_wrap)", word);
  }
  if (full && grad_op) throw error("`--fsdp full_shard` is not compatible with `--fsdp shard_grad_op`.");
  if ((full || grad_op) && none) throw error("`--fsdp no_shard` is not compatible with `--fsdp {}`.", full ? "full_shard" : "shard_grad_op");
  // Each names one strategy of FSDP's ShardingStrategy: two of them cannot both hold.
  if (static_cast<int>(full) + grad_op + hybrid_full + hybrid_grad_op + none > 1)
    throw error("--fsdp '{}' names more than one sharding strategy: choose one of full_shard, shard_grad_op, "
                "hybrid_shard, hybrid_shard_zero2, no_shard", fsdp);
  o.hybrid = hybrid_full || hybrid_grad_op;
  full = full || hybrid_full;
  grad_op = grad_op || hybrid_grad_op;
  if (full) o.strategy = ShardingStrategy::full_shard;
  else if (grad_op) o.strategy = ShardingStrategy::shard_grad_op;
  else if (none) o.strategy = ShardingStrategy::no_shard;
  if (o.offload && !(full || grad_op))
    throw error("`--fsdp offload` can't work on its own. It needs to be added to `--fsdp full_shard` or `--fsdp "
                "shard_grad_op`. For example, `--fsdp \"full_shard offload\"`.");
  if (o.auto_wrap && !o.strategy)
    throw error("`--fsdp auto_wrap` needs a sharding strategy too, for example `--fsdp \"full_shard auto_wrap\"`.");

  if (!fsdp_config || fsdp_config->empty()) {
    if (o.auto_wrap)
      throw error("`--fsdp auto_wrap` needs the units to wrap: give fsdp_transformer_layer_cls_to_wrap (module class "
                  "names) or fsdp_min_num_params in --fsdp_config");
    return o;
  }
  std::string source;
  const nlohmann::json config = detail::read_json_option("--fsdp_config", *fsdp_config, source);
  if (!config.is_object()) throw error("{}: fsdp_config must be a JSON object, got {}", source, config.type_name());
  bool has_min = false, has_cls = false;
  for (const auto& [raw_key, value] : config.items()) {
    const std::string key = raw_key.starts_with("fsdp_") ? raw_key.substr(5) : raw_key;
    if (key == "min_num_params") {
      if (!value.is_number_integer() || value.get<std::int64_t>() < 0)
        throw error("{}: min_num_params must be a non-negative integer, got {}", source, value.dump());
      o.min_num_params = value.get<std::int64_t>();
      has_min = o.min_num_params > 0;
    } else if (key == "transformer_layer_cls_to_wrap") {
      if (value.is_string()) o.transformer_layer_cls_to_wrap = {value.get<std::string>()};
      else if (value.is_array() && std::ranges::all_of(value, [](const auto& v) { return v.is_string(); }))
        o.transformer_layer_cls_to_wrap = value.get<std::vector<std::string>>();
      else throw error("{}: transformer_layer_cls_to_wrap must be a class name or a list of them, got {}", source, value.dump());
      has_cls = !o.transformer_layer_cls_to_wrap.empty();
    } else if (key == "backward_prefetch" || key == "backward_prefetch_policy") {
      const auto v = value.is_string() ? detail::lower(value.get<std::string>()) : std::string();
      if (v == "backward_pre") o.backward_prefetch = BackwardPrefetch::backward_pre;
      else if (v == "backward_post") o.backward_prefetch = BackwardPrefetch::backward_post;
      else if (v == "no_prefetch") o.backward_prefetch = BackwardPrefetch::no_prefetch;
      else throw error("{}: backward_prefetch must be backward_pre, backward_post or no_prefetch, got {}", source, value.dump());
    } else if (key == "forward_prefetch") {
      o.forward_prefetch = detail::fsdp_bool(value, raw_key, source);
    } else if (key == "limit_all_gathers") {
      o.limit_all_gathers = detail::fsdp_bool(value, raw_key, source);
    } else if (key == "activation_checkpointing") {
      o.activation_checkpointing = detail::fsdp_bool(value, raw_key, source);
    } else if (key == "sync_module_states") {
      o.sync_module_states = detail::fsdp_bool(value, raw_key, source);
    } else if (key == "offload_params") {
      o.offload = o.offload || detail::fsdp_bool(value, raw_key, source);
    } else if (key == "state_dict_type") {
      const auto v = value.is_string() ? detail::lower(value.get<std::string>()) : std::string();
      if (v == "full_state_dict") o.state_dict_type = StateDictType::full_state_dict;
      else if (v == "sharded_state_dict") o.state_dict_type = StateDictType::sharded_state_dict;
      else throw error("{}: state_dict_type must be FULL_STATE_DICT or SHARDED_STATE_DICT, got {}", source, value.dump());
    } else if (key == "use_orig_params" || key == "cpu_ram_efficient_loading") {
      (void)detail::fsdp_bool(value, raw_key, source);  // trainpp always keeps the original parameters
    } else if (key == "reshard_after_forward") {
      if (!detail::fsdp_bool(value, raw_key, source))
        throw error("{}: reshard_after_forward false is not implemented; use --fsdp shard_grad_op to keep "
                    "parameters gathered", source);
    } else if (key == "version") {
      if (!value.is_number_integer() || (value.get<int>() != 1 && value.get<int>() != 2))
        throw error("{}: version must be 1 or 2, got {}", source, value.dump());
    } else {
      throw error("{}: unknown fsdp_config key '{}'", source, raw_key);
    }
  }
  if (has_min && has_cls) throw error("{}: `min_num_params` and `transformer_layer_cls_to_wrap` are mutually exclusive.", source);
  if (o.activation_checkpointing && gradient_checkpointing)
    throw error("The activation_checkpointing in FSDP config and the gradient_checkpointing in training arg can't be "
                "set to True simultaneously. Please use FSDP's activation_checkpointing logic when using FSDP.");
  if (has_min || has_cls) o.auto_wrap = true;
  if (o.auto_wrap && !has_min && !has_cls)
    throw error("`--fsdp auto_wrap` needs the units to wrap: give fsdp_transformer_layer_cls_to_wrap (module class "
                "names) or fsdp_min_num_params in --fsdp_config");
  return o;
}

TRAINPP_INLINE std::optional<AccelerateFsdp> accelerate_fsdp_environment(const EnvironmentReader& env) {
  auto flag = [&](const std::string& name) -> std::optional<bool> {
    const auto text = env(name);
    if (!text) return std::nullopt;
    const auto v = detail::lower(*text);
    if (v == "1" || v == "true" || v == "yes" || v == "y" || v == "on" || v == "t") return true;
    if (v == "0" || v == "false" || v == "no" || v == "n" || v == "off" || v == "f") return false;
    throw error("the environment variable {} must be true or false, got '{}'", name, *text);
  };
  if (!flag("ACCELERATE_USE_FSDP").value_or(false)) return std::nullopt;
  AccelerateFsdp out;
  static constexpr std::array<const char*, 5> strategies = {"full_shard", "shard_grad_op", "no_shard", "hybrid_shard",
                                                            "hybrid_shard_zero2"};
  if (const auto text = env("FSDP_SHARDING_STRATEGY")) {
    const auto v = detail::lower(*text);
    for (std::size_t i = 0; i < strategies.size(); ++i)
      if (v == strategies[i] || v == std::to_string(i + 1)) out.fsdp = strategies[i];
    if (out.fsdp.empty())
      throw error("the environment variable FSDP_SHARDING_STRATEGY (accelerate's fsdp_sharding_strategy) must be "
                  "FULL_SHARD, SHARD_GRAD_OP, NO_SHARD, HYBRID_SHARD, HYBRID_SHARD_ZERO2 or 1..5, got '{}'", *text);
  } else {
    const bool version2 = env("FSDP_VERSION").value_or("1") == "2";
    out.fsdp = version2 && !flag("FSDP_RESHARD_AFTER_FORWARD").value_or(true) ? "shard_grad_op" : "full_shard";
  }
  if (flag("FSDP_OFFLOAD_PARAMS").value_or(false)) {
    if (out.fsdp == "no_shard")
      throw error("FSDP_OFFLOAD_PARAMS=true with FSDP_SHARDING_STRATEGY NO_SHARD: trainpp offloads sharded state only");
    out.fsdp += " offload";
  }
  const auto policy = detail::lower(env("FSDP_AUTO_WRAP_POLICY").value_or("no_wrap"));
  if (policy == "transformer_based_wrap") {
    const auto classes = env("FSDP_TRANSFORMER_CLS_TO_WRAP").value_or("");
    std::vector<std::string> names;
    std::istringstream list(classes);
    for (std::string name; std::getline(list, name, ',');)
      if (const auto first = name.find_first_not_of(' '); first != std::string::npos)
        names.push_back(name.substr(first, name.find_last_not_of(' ') - first + 1));
    if (names.empty())
      throw error("FSDP_AUTO_WRAP_POLICY is TRANSFORMER_BASED_WRAP but FSDP_TRANSFORMER_CLS_TO_WRAP names no class "
                  "(accelerate's fsdp_transformer_layer_cls_to_wrap): trainpp models have no _no_split_modules to "
                  "fall back on");
    out.config["transformer_layer_cls_to_wrap"] = names;
  } else if (policy == "size_based_wrap") {
    const auto text = env("FSDP_MIN_NUM_PARAMS").value_or("");
    out.config["min_num_params"] = detail::parse_launch_int("FSDP_MIN_NUM_PARAMS", text);
  } else if (policy != "no_wrap") {
    throw error("the environment variable FSDP_AUTO_WRAP_POLICY must be TRANSFORMER_BASED_WRAP, SIZE_BASED_WRAP or "
                "NO_WRAP, got '{}'", *env("FSDP_AUTO_WRAP_POLICY"));
  }
  if (const auto text = env("FSDP_BACKWARD_PREFETCH")) {
    const auto v = detail::lower(*text);
    if (v != "backward_pre" && v != "backward_post" && v != "no_prefetch")
      throw error("the environment variable FSDP_BACKWARD_PREFETCH must be BACKWARD_PRE, BACKWARD_POST or "
                  "NO_PREFETCH, got '{}'", *text);
    out.config["backward_prefetch"] = v;
  }
  if (const auto text = env("FSDP_STATE_DICT_TYPE")) {
    const auto v = detail::lower(*text);
    if (v != "full_state_dict" && v != "sharded_state_dict")
      throw error("the environment variable FSDP_STATE_DICT_TYPE must be FULL_STATE_DICT or SHARDED_STATE_DICT, "
                  "got '{}'", *text);
    out.config["state_dict_type"] = v;
  }
  for (const auto& [variable, key] : {std::pair{"FSDP_FORWARD_PREFETCH", "forward_prefetch"},
                                      std::pair{"FSDP_SYNC_MODULE_STATES", "sync_module_states"},
                                      std::pair{"FSDP_ACTIVATION_CHECKPOINTING", "activation_checkpointing"}})
    if (const auto value = flag(variable)) out.config[key] = *value;
  return out;
}

TRAINPP_INLINE FsdpOptions parse_deepspeed_config(const std::string& deepspeed, const DeepSpeedArguments& a) {
  std::string source;
  const nlohmann::json config = detail::read_json_option("--deepspeed", deepspeed, source);
  if (!config.is_object()) throw error("{}: a DeepSpeed config must be a JSON object", source);
  std::vector<std::string> mismatches;
  auto agree = [&](const nlohmann::json& value, const std::string& key, double expected, const char* hf_name) {
    if (value.is_string() && value.get<std::string>() == "auto") return;
    if (!value.is_number()) throw error("{}: {} must be a number or \"auto\", got {}", source, key, value.dump());
    if (value.get<double>() != expected)
      mismatches.push_back(fmt::format("- ds {}={} vs hf {}={}", key, value.dump(), hf_name, expected));
  };
  auto enabled = [&](const nlohmann::json& block, const std::string& key, bool expected, const char* hf_name) {
    if (!block.is_object()) throw error("{}: {} must be an object", source, key);
    if (!block.contains("enabled")) return;
    const auto& v = block["enabled"];
    if (v.is_string() && v.get<std::string>() == "auto") return;
    if (!v.is_boolean()) throw error("{}: {}.enabled must be true, false or \"auto\"", source, key);
    if (v.get<bool>() != expected) mismatches.push_back(fmt::format("- ds {}.enabled={} vs hf {}={}", key, v.dump(), hf_name, expected));
  };
  FsdpOptions o;
  o.strategy = ShardingStrategy::no_shard;
  static const std::vector<std::string> tuning = {
      "steps_per_print", "wall_clock_breakdown", "prescale_gradients", "gradient_predivide_factor",
      "communication_data_type", "dump_state", "zero_allow_untested_optimizer", "memory_breakdown",
      "flops_profiler", "tensorboard", "comms_logger", "checkpoint", "data_types"};
  for (const auto& [key, value] : config.items()) {
    if (key == "zero_optimization") {
      if (!value.is_object()) throw error("{}: zero_optimization must be an object", source);
      for (const auto& [zkey, zvalue] : value.items()) {
        if (zkey == "stage") {
          if (!zvalue.is_number_integer() || zvalue.get<int>() < 0 || zvalue.get<int>() > 3)
            throw error("{}: zero_optimization.stage must be 0, 1, 2 or 3, got {}", source, zvalue.dump());
          const int stage = zvalue.get<int>();
          o.strategy = stage == 0 ? ShardingStrategy::no_shard
                                  : stage == 3 ? ShardingStrategy::full_shard : ShardingStrategy::shard_grad_op;
        } else if (zkey == "offload_optimizer" || zkey == "offload_param") {
          if (!zvalue.is_object()) throw error("{}: zero_optimization.{} must be an object", source, zkey);
          const auto device = zvalue.value("device", std::string("none"));
          if (device == "cpu") o.offload = true;
          else if (device != "none")
            throw error("{}: zero_optimization.{}.device {}: trainpp offloads to the CPU only", source, zkey, device);
        } else if (zkey.starts_with("stage3_") || zkey.ends_with("bucket_size") || zkey == "overlap_comm" ||
                   zkey == "contiguous_gradients" || zkey == "reduce_scatter" || zkey == "allgather_partitions" ||
                   zkey == "round_robin_gradients" || zkey == "sub_group_size" || zkey == "elastic_checkpoint") {
          // DeepSpeed's communication tuning: no counterpart here.
        } else {
          throw error("{}: unknown zero_optimization key '{}'", source, zkey);
        }
      }
    } else if (key == "train_micro_batch_size_per_gpu") {
      agree(value, key, static_cast<double>(a.per_device_train_batch_size), "per_device_train_batch_size");
    } else if (key == "gradient_accumulation_steps") {
      agree(value, key, static_cast<double>(a.gradient_accumulation_steps), "gradient_accumulation_steps");
    } else if (key == "train_batch_size") {
      agree(value, key, static_cast<double>(a.world_size * a.per_device_train_batch_size * a.gradient_accumulation_steps),
            "world_size*per_device_train_batch_size*gradient_accumulation_steps");
    } else if (key == "gradient_clipping") {
      agree(value, key, a.max_grad_norm, "max_grad_norm");
    } else if (key == "fp16") {
      enabled(value, key, a.fp16, "fp16");
    } else if (key == "bf16") {
      enabled(value, key, a.bf16, "bf16");
    } else if (key == "optimizer") {
      const auto type = value.is_object() ? detail::lower(value.value("type", std::string())) : std::string();
      if (type != "adamw" && type != "adam")
        throw error("{}: optimizer {}: trainpp builds the optimizer from --optim; drop the block or use type AdamW",
                    source, value.is_object() ? value.value("type", std::string("?")) : value.dump());
      const auto params = value.value("params", nlohmann::json::object());
      for (const auto& [pkey, pvalue] : params.items()) {
        if (pkey == "lr") agree(pvalue, "optimizer.params.lr", a.learning_rate, "learning_rate");
        else if (pkey == "eps") agree(pvalue, "optimizer.params.eps", a.adam_epsilon, "adam_epsilon");
        else if (pkey == "weight_decay") agree(pvalue, "optimizer.params.weight_decay", a.weight_decay, "weight_decay");
        else if (pkey == "betas") {
          if (pvalue.is_string() && pvalue.get<std::string>() == "auto") continue;
          if (!pvalue.is_array() || pvalue.size() != 2) throw error("{}: optimizer.params.betas must be two numbers or \"auto\"", source);
          agree(pvalue[0], "optimizer.params.betas[0]", a.adam_beta1, "adam_beta1");
          agree(pvalue[1], "optimizer.params.betas[1]", a.adam_beta2, "adam_beta2");
        } else if (pkey != "torch_adam" && pkey != "adam_w_mode") {
          throw error("{}: unknown optimizer.params key '{}'", source, pkey);
        }
      }
    } else if (key == "scheduler") {
      throw error("{}: a scheduler block: trainpp schedules the learning rate with --lr_scheduler_type and "
                  "--warmup_steps; drop the block", source);
    } else if (std::ranges::find(tuning, key) == tuning.end()) {
      throw error("{}: unknown DeepSpeed config key '{}'", source, key);
    }
  }
  if (!mismatches.empty())
    throw error("Please correct the following DeepSpeed config values that mismatch TrainingArguments values:\n{}\n"
                "The easiest method is to set these DeepSpeed config values to 'auto'.", fmt::join(mismatches, "\n"));
  if (o.offload && (!o.strategy || *o.strategy == ShardingStrategy::no_shard))
    throw error("{}: offloading needs zero_optimization.stage 1, 2 or 3", source);
  return o;
}


TRAINPP_INLINE FsdpOptions read_sharding_options(const ShardingOptionsSource& source) {
  if (source.deepspeed && !source.deepspeed->empty()) {
    if (!source.fsdp.empty()) throw error("--deepspeed and --fsdp are mutually exclusive: choose one");
    return parse_deepspeed_config(*source.deepspeed, source.deepspeed_arguments);
  }
  return parse_fsdp_options(source.fsdp, source.fsdp_config, source.gradient_checkpointing);
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
