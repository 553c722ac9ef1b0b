#pragma once
// TrainingArguments: every setting of a run, with transformers 5.x's names and defaults.

#include <trainpp/args/fsdp_options.hpp>
#include <trainpp/detail/config.hpp>
#include <trainpp/logging.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace trainpp {

/// When logging / evaluation happens (HF's IntervalStrategy).
enum class IntervalStrategy { no, steps, epoch };
/// When checkpoints are written (HF's SaveStrategy; `best` comes with the checkpoint work).
enum class SaveStrategy { no, steps, epoch, best };
/// The optimizers `optim` can name.
enum class OptimizerName { adamw_torch, adamw_torch_fused, sgd };
/// Every learning-rate schedule of `transformers.get_scheduler`.
enum class SchedulerType {
  linear, cosine, cosine_with_restarts, polynomial, constant, constant_with_warmup,
  inverse_sqrt, reduce_lr_on_plateau, cosine_with_min_lr, warmup_stable_decay
};
/// Order in which training samples are drawn (HF's train_sampling_strategy).
enum class SamplingStrategy { random, sequential };

/// The spelling of each enumerator, as HF writes it on the command line and in JSON.
template <typename E> struct enum_names;
template <> struct enum_names<IntervalStrategy> {
  static constexpr std::array<std::pair<IntervalStrategy, std::string_view>, 3> values{
      {{IntervalStrategy::no, "no"}, {IntervalStrategy::steps, "steps"}, {IntervalStrategy::epoch, "epoch"}}};
};
template <> struct enum_names<SaveStrategy> {
  static constexpr std::array<std::pair<SaveStrategy, std::string_view>, 4> values{
      {{SaveStrategy::no, "no"}, {SaveStrategy::steps, "steps"}, {SaveStrategy::epoch, "epoch"},
       {SaveStrategy::best, "best"}}};
};
template <> struct enum_names<OptimizerName> {
  static constexpr std::array<std::pair<OptimizerName, std::string_view>, 3> values{
      {{OptimizerName::adamw_torch, "adamw_torch"}, {OptimizerName::adamw_torch_fused, "adamw_torch_fused"},
       {OptimizerName::sgd, "sgd"}}};
};
template <> struct enum_names<SchedulerType> {
  static constexpr std::array<std::pair<SchedulerType, std::string_view>, 10> values{
      {{SchedulerType::linear, "linear"},
       {SchedulerType::cosine, "cosine"},
       {SchedulerType::cosine_with_restarts, "cosine_with_restarts"},
       {SchedulerType::polynomial, "polynomial"},
       {SchedulerType::constant, "constant"},
       {SchedulerType::constant_with_warmup, "constant_with_warmup"},
       {SchedulerType::inverse_sqrt, "inverse_sqrt"},
       {SchedulerType::reduce_lr_on_plateau, "reduce_lr_on_plateau"},
       {SchedulerType::cosine_with_min_lr, "cosine_with_min_lr"},
       {SchedulerType::warmup_stable_decay, "warmup_stable_decay"}}};
};
template <> struct enum_names<LogLevel> {
  static constexpr std::array<std::pair<LogLevel, std::string_view>, 6> values{
      {{LogLevel::passive, "passive"}, {LogLevel::debug, "debug"}, {LogLevel::info, "info"},
       {LogLevel::warning, "warning"}, {LogLevel::error, "error"}, {LogLevel::critical, "critical"}}};
};
template <> struct enum_names<SamplingStrategy> {
  static constexpr std::array<std::pair<SamplingStrategy, std::string_view>, 2> values{
      {{SamplingStrategy::random, "random"}, {SamplingStrategy::sequential, "sequential"}}};
};

template <typename E>
concept NamedEnum = std::is_enum_v<E> && requires { enum_names<E>::values; };

template <NamedEnum E>
[[nodiscard]] constexpr std::string_view to_string(E value) {
  for (const auto& [e, name] : enum_names<E>::values)
    if (e == value) return name;
  return "?";
}

/// The enumerator spelled `text`, or nullopt.
template <NamedEnum E>
[[nodiscard]] constexpr std::optional<E> parse_enum(std::string_view text) {
  for (const auto& [e, name] : enum_names<E>::values)
    if (name == text) return e;
  return std::nullopt;
}

/// "a, b, c": the accepted spellings, for error messages.
template <NamedEnum E>
[[nodiscard]] std::string enum_choices() {
  std::string out;
  for (const auto& [e, name] : enum_names<E>::values) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

/// The settings of a run. Names, types and defaults are transformers 5.x's TrainingArguments; a
/// float-valued `*_steps` below 1 is a ratio of max_steps, as in HF. Call `finalize()` (the
/// parser and the Trainer do) to apply HF's derived defaults and validation.
struct TrainingArguments {
  // --- where and what
  std::string output_dir = "trainer_output";
  bool overwrite_output_dir = false;
  bool do_train = false;
  bool do_eval = false;
  bool do_predict = false;
  std::optional<std::string> resume_from_checkpoint;
  std::optional<std::string> run_name;

  // --- batches and steps
  std::int64_t per_device_train_batch_size = 8;
  std::int64_t per_device_eval_batch_size = 8;
  std::int64_t gradient_accumulation_steps = 1;
  std::optional<std::int64_t> eval_accumulation_steps;
  double num_train_epochs = 3.0;
  std::int64_t max_steps = -1;

  // --- optimizer
  OptimizerName optim = OptimizerName::adamw_torch_fused;
  double learning_rate = 5e-5;
  double weight_decay = 0.0;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_epsilon = 1e-8;
  double max_grad_norm = 1.0;

  // --- schedule
  SchedulerType lr_scheduler_type = SchedulerType::linear;
  nlohmann::json lr_scheduler_kwargs = nlohmann::json::object();
  double warmup_steps = 0;  ///< an int, or a ratio of the training steps when below 1

  // --- logging
  LogLevel log_level = LogLevel::passive;
  LogLevel log_level_replica = LogLevel::warning;
  bool log_on_each_node = true;
  std::optional<std::string> logging_dir;
  IntervalStrategy logging_strategy = IntervalStrategy::steps;
  bool logging_first_step = false;
  double logging_steps = 500;
  bool logging_nan_inf_filter = true;
  std::optional<bool> disable_tqdm;
  std::vector<std::string> report_to{"none"};

  // --- evaluation
  IntervalStrategy eval_strategy = IntervalStrategy::no;
  std::optional<double> eval_steps;
  double eval_delay = 0;
  bool eval_on_start = false;
  bool prediction_loss_only = false;
  std::vector<std::string> label_names;  ///< empty: {"labels"}

  // --- saving
  SaveStrategy save_strategy = SaveStrategy::steps;
  double save_steps = 500;
  std::optional<std::int64_t> save_total_limit;
  bool save_only_model = false;
  bool load_best_model_at_end = false;
  std::optional<std::string> metric_for_best_model;
  std::optional<bool> greater_is_better;
  bool ignore_data_skip = false;
  bool restore_callback_states_from_checkpoint = false;

  // --- reproducibility
  std::int64_t seed = 42;
  std::optional<std::int64_t> data_seed;
  bool full_determinism = false;

  // --- precision and device
  bool use_cpu = false;
  bool bf16 = false;
  bool fp16 = false;
  bool bf16_full_eval = false;
  bool fp16_full_eval = false;
  std::optional<bool> tf32;

  // --- data loading
  bool dataloader_drop_last = false;
  std::int64_t dataloader_num_workers = 0;
  std::optional<std::int64_t> dataloader_prefetch_factor;
  bool dataloader_pin_memory = true;
  bool dataloader_persistent_workers = false;
  SamplingStrategy train_sampling_strategy = SamplingStrategy::random;

  // --- memory
  /// Recompute activations in backward instead of keeping them: train() calls the model's
  /// gradient_checkpointing_enable().
  bool gradient_checkpointing = false;

  // --- distributed (read by the data-parallel sharding policies)
  /// nccl or gloo; unset: nccl for CUDA devices, gloo otherwise (as torch picks).
  std::optional<std::string> ddp_backend;
  /// Seconds a collective or the rendezvous may wait for the other processes before failing.
  std::int64_t ddp_timeout = 1800;
  /// Gradient bucket size in MiB for the allreduce; unset: 25, as torch's DDP.
  std::optional<std::int64_t> ddp_bucket_cap_mb;
  /// Broadcast buffers (batch-norm statistics) from rank 0 before every forward; unset: true.
  std::optional<bool> ddp_broadcast_buffers;
  /// HF's --fsdp: "full_shard", "shard_grad_op" or "no_shard", with "offload" and "auto_wrap"; read
  /// by the sharding slots trainpp::AutoSharding, ShardGradOp and FullShard.
  std::string fsdp;
  /// HF's --fsdp_config: a JSON file (or an inline JSON object) of FSDP options, keys with or without
  /// their `fsdp_` prefix (see parse_fsdp_options).
  std::optional<std::string> fsdp_config;

  /// HF's --deepspeed: a DeepSpeed JSON config (file or inline object), mapped onto the same sharding
  /// policies as --fsdp (see parse_deepspeed_config); exclusive with --fsdp.
  std::optional<std::string> deepspeed;

  /// --fsdp and --fsdp_config, or --deepspeed, read and checked.
  [[nodiscard]] FsdpOptions fsdp_options() const {
    if (deepspeed && !deepspeed->empty()) {
      if (!fsdp.empty()) throw error("--deepspeed and --fsdp are mutually exclusive: choose one");
      return parse_deepspeed_config(*deepspeed, {.per_device_train_batch_size = per_device_train_batch_size,
                                                 .gradient_accumulation_steps = gradient_accumulation_steps,
                                                 .max_grad_norm = max_grad_norm,
                                                 .learning_rate = learning_rate,
                                                 .weight_decay = weight_decay,
                                                 .adam_beta1 = adam_beta1,
                                                 .adam_beta2 = adam_beta2,
                                                 .adam_epsilon = adam_epsilon,
                                                 .fp16 = fp16,
                                                 .bf16 = bf16,
                                                 .world_size = detect_launch_environment().world_size});
    }
    return parse_fsdp_options(fsdp, fsdp_config, gradient_checkpointing);
  }

  /// The label keys of a batch: label_names, or HF's default {"labels"}.
  [[nodiscard]] std::vector<std::string> effective_label_names() const {
    return label_names.empty() ? std::vector<std::string>{"labels"} : label_names;
  }
  /// HF's get_warmup_steps: an int, or ceil(ratio * num_training_steps) when below 1.
  [[nodiscard]] std::int64_t get_warmup_steps(std::int64_t num_training_steps) const {
    return warmup_steps >= 1 ? static_cast<std::int64_t>(warmup_steps)
                             : static_cast<std::int64_t>(std::ceil(num_training_steps * warmup_steps));
  }
  /// The seed of the data order: data_seed, else seed.
  [[nodiscard]] std::int64_t effective_data_seed() const { return data_seed.value_or(seed); }

  /// HF's process_index / local_process_index: this process's rank, from the launcher's RANK and
  /// LOCAL_RANK (0 without a launcher).
  [[nodiscard]] long process_index() const { return trainpp::process_index(); }
  [[nodiscard]] long local_process_index() const { return trainpp::local_process_index(); }
  /// HF's should_log: whether this process logs as a main process — the first process of each node
  /// with log_on_each_node, else the first process of all.
  [[nodiscard]] bool should_log() const { return log_on_each_node ? local_process_index() == 0 : process_index() == 0; }
  /// HF's get_process_log_level: log_level on a main process, log_level_replica on the others; a
  /// `passive` one resolves to the logger's current level. The Trainer applies it when constructed.
  [[nodiscard]] LogLevel get_process_log_level() const {
    const LogLevel chosen = should_log() ? log_level : log_level_replica;
    return chosen == LogLevel::passive ? logger().level() : chosen;
  }

  /// HF's __post_init__: derived defaults, then validation. Throws trainpp::Error naming the problem.
  void finalize();

  /// What `accelerate launch` exports from its config file, as HF's Trainer takes it: the mixed
  /// precision (ACCELERATE_MIXED_PRECISION: no, bf16, fp16) unless bf16 or fp16 is already true or
  /// `given` (the arguments the command line or the arguments file set) names either; the FSDP
  /// settings (ACCELERATE_USE_FSDP, FSDP_*: see accelerate_fsdp_environment) unless --fsdp,
  /// --fsdp_config or --deepspeed is set or given. So an explicit `--bf16 false` or `--fsdp ...` wins.
  /// parse_args calls it before finalize().
  template <class Names>
  void apply_launcher_environment(const Names& given, const EnvironmentReader& env = process_environment) {
    if (!given.contains("bf16") && !given.contains("fp16") && !bf16 && !fp16) {
      if (const auto precision = env("ACCELERATE_MIXED_PRECISION")) {
        const auto value = detail::lower(*precision);
        if (value == "bf16") bf16 = true;
        else if (value == "fp16") fp16 = true;
        else if (value != "no")
          throw error("the environment variable ACCELERATE_MIXED_PRECISION (accelerate's mixed_precision) must be no, "
                      "bf16 or fp16, got '{}'", *precision);
      }
    }
    const bool sharding_set = !fsdp.empty() || (fsdp_config && !fsdp_config->empty()) || (deepspeed && !deepspeed->empty());
    if (sharding_set || given.contains("fsdp") || given.contains("fsdp_config") || given.contains("deepspeed")) return;
    if (auto accelerate = accelerate_fsdp_environment(env)) {
      fsdp = std::move(accelerate->fsdp);
      if (!accelerate->config.empty()) fsdp_config = accelerate->config.dump();
    }
  }
};

// Long on purpose: every combination of arguments is checked here, in one place, in HF's order.
inline void TrainingArguments::finalize() {
  auto positive = [](std::string_view name, auto value) {
    if (value <= 0) throw error("{} must be a positive number, got {}", name, value);
  };
  if (output_dir.empty()) throw error("output_dir must not be empty");
  positive("per_device_train_batch_size", per_device_train_batch_size);
  positive("per_device_eval_batch_size", per_device_eval_batch_size);
  positive("gradient_accumulation_steps", gradient_accumulation_steps);
  if (eval_accumulation_steps) positive("eval_accumulation_steps", *eval_accumulation_steps);
  if (max_steps == 0 || max_steps < -1)
    throw error("max_steps must be a positive number, or -1 to train for num_train_epochs, got {}", max_steps);
  if (max_steps < 0 && !(num_train_epochs > 0))
    throw error("num_train_epochs must be positive when max_steps is not set, got {}", num_train_epochs);
  // The launcher's environment: a malformed or inconsistent one must not silently count as rank 0 of 1.
  (void)detect_launch_environment();
  if (ddp_backend && *ddp_backend != "nccl" && *ddp_backend != "gloo")
    throw error("ddp_backend must be nccl or gloo, got '{}'", *ddp_backend);
  if (ddp_timeout < 1) throw error("ddp_timeout must be at least 1 second, got {}", ddp_timeout);
  {
    const auto options = fsdp_options();  // a bad --fsdp or --fsdp_config fails here, before any work
    if (options.strategy && options.strategy != ShardingStrategy::no_shard && save_only_model &&
        options.state_dict_type == StateDictType::sharded_state_dict)
      throw error("save_only_model is not compatible with FSDP state dict type 'SHARDED_STATE_DICT'");
  }
  if (ddp_bucket_cap_mb && *ddp_bucket_cap_mb < 1) throw error("ddp_bucket_cap_mb must be at least 1, got {}", *ddp_bucket_cap_mb);
  if (!(learning_rate >= 0)) throw error("learning_rate must be >= 0, got {}", learning_rate);
  if (!(weight_decay >= 0)) throw error("weight_decay must be >= 0, got {}", weight_decay);
  if (!(adam_beta1 >= 0 && adam_beta1 < 1)) throw error("adam_beta1 must be in [0, 1), got {}", adam_beta1);
  if (!(adam_beta2 >= 0 && adam_beta2 < 1)) throw error("adam_beta2 must be in [0, 1), got {}", adam_beta2);
  if (!(adam_epsilon >= 0)) throw error("adam_epsilon must be >= 0, got {}", adam_epsilon);
  if (!(max_grad_norm >= 0)) throw error("max_grad_norm must be >= 0 (0 disables clipping), got {}", max_grad_norm);
  if (!(warmup_steps >= 0)) throw error("warmup_steps must be >= 0 (an int, or a ratio below 1), got {}", warmup_steps);
  if (warmup_steps > 1 && warmup_steps != std::floor(warmup_steps))
    throw error("warmup_steps must be an integer when >= 1 (a ratio only below 1), got {}", warmup_steps);
  if (!lr_scheduler_kwargs.is_object())
    throw error("lr_scheduler_kwargs must be a JSON object, got {}", lr_scheduler_kwargs.dump());
  if (dataloader_num_workers < 0)
    throw error("dataloader_num_workers must be >= 0, got {}", dataloader_num_workers);
  if (dataloader_prefetch_factor && dataloader_num_workers == 0)
    throw error("--dataloader_prefetch_factor can only be set when data is loaded in a different process, "
                "i.e. when --dataloader_num_workers > 1.");
  if (dataloader_prefetch_factor) positive("dataloader_prefetch_factor", *dataloader_prefetch_factor);
  if (dataloader_persistent_workers && dataloader_num_workers == 0)
    throw error("--dataloader_persistent_workers needs --dataloader_num_workers > 0 (torch's DataLoader refuses it too)");
  if (logging_dir && logging_dir->empty()) throw error("logging_dir must not be empty");
  if (bf16 && fp16) throw error("At most one of fp16 and bf16 can be True, but not both");
  if (bf16_full_eval && fp16_full_eval) throw error("At most one of fp16_full_eval and bf16_full_eval can be True");

  if (eval_strategy != IntervalStrategy::no) do_eval = true;  // HF's __post_init__

  // Ratio-valued steps and HF's fallbacks.
  auto check_steps = [](std::string_view name, double value) {
    if (!(value > 0)) throw error("{} must be positive (an int, or a ratio below 1), got {}", name, value);
    if (value > 1 && value != std::floor(value))
      throw error("{} must be an integer when > 1 (a ratio only below 1), got {}", name, value);
  };
  if (logging_strategy == IntervalStrategy::steps) check_steps("logging_steps", logging_steps);
  if (eval_strategy == IntervalStrategy::steps) {
    if (!eval_steps) {
      if (logging_steps > 0) eval_steps = logging_steps;
      else throw error("eval_strategy steps requires either a non-zero --eval_steps or --logging_steps");
    }
    check_steps("eval_steps", *eval_steps);
  }
  if (save_strategy == SaveStrategy::steps) check_steps("save_steps", save_steps);
  if (!(eval_delay >= 0)) throw error("eval_delay must be >= 0, got {}", eval_delay);

  if (load_best_model_at_end && save_strategy != SaveStrategy::best) {
    if (eval_strategy == IntervalStrategy::no)
      throw error("--load_best_model_at_end requires an evaluation strategy (eval_strategy is 'no')");
    if (static_cast<int>(eval_strategy) != static_cast<int>(save_strategy))
      throw error("--load_best_model_at_end requires the save and eval strategy to match, but found\n- "
                  "Evaluation strategy: {}\n- Save strategy: {}",
                  to_string(eval_strategy), to_string(save_strategy));
    if (eval_strategy == IntervalStrategy::steps) {
      const double e = *eval_steps, s = save_steps;
      const bool both_ratio = e < 1 && s < 1, both_int = e >= 1 && s >= 1;
      const bool multiple = both_int ? std::fmod(s, e) == 0
                                     : both_ratio && std::fabs(std::remainder(s, e)) < 1e-12;
      if (!multiple)
        throw error("--load_best_model_at_end requires the saving steps to be a round multiple of the "
                    "evaluation steps, but found {}, which is not a round multiple of {}.", s, e);
    }
  }
  if ((load_best_model_at_end || save_strategy == SaveStrategy::best ||
       lr_scheduler_type == SchedulerType::reduce_lr_on_plateau) && !metric_for_best_model)
    metric_for_best_model = "loss";
  if (metric_for_best_model && !greater_is_better) {
    const auto& m = *metric_for_best_model;
    greater_is_better = !(m.size() >= 4 && m.compare(m.size() - 4, 4, "loss") == 0);
  }
  if (lr_scheduler_type == SchedulerType::reduce_lr_on_plateau && eval_strategy == IntervalStrategy::no)
    throw error("lr_scheduler_type reduce_lr_on_plateau requires an eval strategy (it steps on evaluation)");
  if (std::ranges::find(report_to, "none") != report_to.end() && report_to.size() > 1)
    throw error("report_to 'none' cannot be combined with other integrations");
  for (const auto& name : report_to)
    if (name != "none" && name != "all" && name != "tensorboard" && name != "jsonl" && name != "curves")
      throw error("report_to '{}' is not an integration trainpp has; choose among tensorboard, jsonl, curves, all, none", name);
  if (!logging_dir) logging_dir = output_dir + "/runs";
}

}  // namespace trainpp
