#pragma once
// TrainingArguments: every setting of a run, with transformers 5.x's names and defaults.

#include <trainpp/args/fsdp_options.hpp>
#include <trainpp/args/optim_args.hpp>
#include <trainpp/detail/config.hpp>
#include <trainpp/logging.hpp>

#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
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
/// The optimizers `optim` can name (HF's spellings; lion_32bit is bitsandbytes' Lion in HF).
enum class OptimizerName { adamw_torch, adamw_torch_fused, sgd, adagrad, rmsprop, adafactor, lion_32bit };
/// Every learning-rate schedule of `transformers.get_scheduler`.
enum class SchedulerType {
  linear, cosine, cosine_with_restarts, polynomial, constant, constant_with_warmup,
  inverse_sqrt, reduce_lr_on_plateau, cosine_with_min_lr, warmup_stable_decay
};
/// Order in which training samples are drawn (HF's train_sampling_strategy; group_by_length is HF 5.x's
/// spelling of the former --group_by_length flag).
enum class SamplingStrategy { random, sequential, group_by_length };
/// Which input tokens num_input_tokens_seen counts (HF's include_num_input_tokens_seen): none, all of the
/// main input's, or the attention mask's ones. HF also takes true (all) and false (no).
enum class TokenCounting { no, all, non_padding };

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
  static constexpr std::array<std::pair<OptimizerName, std::string_view>, 7> values{
      {{OptimizerName::adamw_torch, "adamw_torch"}, {OptimizerName::adamw_torch_fused, "adamw_torch_fused"},
       {OptimizerName::sgd, "sgd"}, {OptimizerName::adagrad, "adagrad"}, {OptimizerName::rmsprop, "rmsprop"},
       {OptimizerName::adafactor, "adafactor"}, {OptimizerName::lion_32bit, "lion_32bit"}}};
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
  static constexpr std::array<std::pair<SamplingStrategy, std::string_view>, 3> values{
      {{SamplingStrategy::random, "random"}, {SamplingStrategy::sequential, "sequential"},
       {SamplingStrategy::group_by_length, "group_by_length"}}};
};

template <> struct enum_names<TokenCounting> {
  // The canonical spelling of each value first: to_string() and training_args.json use it.
  static constexpr std::array<std::pair<TokenCounting, std::string_view>, 5> values{
      {{TokenCounting::no, "no"}, {TokenCounting::all, "all"}, {TokenCounting::non_padding, "non_padding"},
       {TokenCounting::all, "true"}, {TokenCounting::no, "false"}}};
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

/// Describes one field of an argument struct to a visitor: its flag name, help line and group.
struct FieldInfo {
  std::string_view name;
  std::string_view help;
  std::string_view group = "";
};

// Every field of TrainingArguments, declared once as FIELD(type, name, default, group, help): the
// struct's members (in this order, which designated initializers follow), the command line, --help
// and training_args.json all come from this list, so that none of them can miss a field. Names,
// types and defaults are transformers 5.x's; a float-valued `*_steps` below 1 is a ratio of the
// training steps, as in HF. A default holding a comma goes in parentheses.
#define TRAINPP_TRAINING_ARGUMENTS_FIELDS(FIELD)                                                                          \
  FIELD(std::string, output_dir, "trainer_output", "output", "Where checkpoints, metrics and the final model are written.") \
  FIELD(bool, overwrite_output_dir, false, "output", "Start fresh in an output_dir that already holds checkpoints.")       \
  FIELD(bool, do_train, false, "output", "Run training (read by the examples).")                                          \
  FIELD(bool, do_eval, false, "output", "Run evaluation on the eval set (read by the examples).")                         \
  FIELD(bool, do_predict, false, "output", "Run prediction on the test set (read by the examples).")                      \
  FIELD(std::optional<std::string>, resume_from_checkpoint, std::nullopt, "output",                                       \
        "Checkpoint folder to resume from, or 'true' for the newest.")                                                    \
  FIELD(std::optional<std::string>, run_name, std::nullopt, "output", "A name for this run in logs.")                     \
                                                                                                                          \
  FIELD(std::int64_t, per_device_train_batch_size, 8, "batches", "Batch size per device for training.")                   \
  FIELD(std::int64_t, per_device_eval_batch_size, 8, "batches", "Batch size per device for evaluation.")                  \
  FIELD(std::int64_t, gradient_accumulation_steps, 1, "batches", "Micro-batches accumulated per optimizer step.")         \
  FIELD(bool, average_tokens_across_devices, true, "batches",                                                             \
        "A token-level loss divides by the label tokens of every process (all-reduced), not of this one.")                \
  FIELD(std::optional<std::int64_t>, eval_accumulation_steps, std::nullopt, "batches",                                    \
        "Move gathered predictions to the CPU every N eval steps.")                                                       \
  FIELD(double, num_train_epochs, 3.0, "batches", "Epochs to train (fractions allowed).")                                 \
  FIELD(std::int64_t, max_steps, -1, "batches", "Optimizer steps to train; overrides num_train_epochs when > 0.")         \
                                                                                                                          \
  FIELD(OptimizerName, optim, OptimizerName::adamw_torch_fused, "optimizer", "The optimizer.")                            \
  FIELD(std::optional<std::string>, optim_args, std::nullopt, "optimizer",                                                \
        "Optimizer settings as key=value,key=value (e.g. momentum=0.9,nesterov=true for sgd).")                           \
  FIELD(double, learning_rate, 5e-5, "optimizer", "Initial learning rate.")                                               \
  FIELD(double, weight_decay, 0.0, "optimizer", "Weight decay for weights (not biases or norms).")                        \
  FIELD(double, adam_beta1, 0.9, "optimizer", "AdamW beta1.")                                                             \
  FIELD(double, adam_beta2, 0.999, "optimizer", "AdamW beta2.")                                                           \
  FIELD(double, adam_epsilon, 1e-8, "optimizer", "AdamW epsilon.")                                                        \
  FIELD(double, max_grad_norm, 1.0, "optimizer", "Gradient clipping norm (0 disables).")                                  \
  FIELD(double, label_smoothing_factor, 0.0, "optimizer",                                                                 \
        "Label smoothing of the default loss (HF's LabelSmoother): 0 off, else in (0, 1).")                               \
                                                                                                                          \
  FIELD(SchedulerType, lr_scheduler_type, SchedulerType::linear, "schedule", "The learning-rate schedule.")               \
  FIELD(nlohmann::json, lr_scheduler_kwargs, nlohmann::json::object(), "schedule",                                        \
        "Extra schedule arguments as a JSON object, e.g. '{\"num_cycles\": 2}'.")                                         \
  FIELD(double, warmup_steps, 0, "schedule", "Warm-up steps (an int), or a ratio of the training steps (below 1).")       \
  /* transformers 4's spelling of a warm-up ratio, which 5.0 deprecated and 5.2 removed; still */                        \
  /* accepted so that older command lines and argument files keep working (see finalize()). */                           \
  FIELD(std::optional<double>, warmup_ratio, std::nullopt, "schedule",                                                    \
        "Deprecated: warm up over ceil(R * training steps); --warmup_steps R (below 1) says the same.")                   \
                                                                                                                          \
  FIELD(LogLevel, log_level, LogLevel::passive, "logging", "Log level of the main process.")                              \
  FIELD(LogLevel, log_level_replica, LogLevel::warning, "logging", "Log level of the other processes.")                   \
  FIELD(bool, log_on_each_node, true, "logging", "Log on the main process of each node, not only the first.")             \
  FIELD(std::optional<std::string>, logging_dir, std::nullopt, "logging",                                                 \
        "TensorBoard log directory (default output_dir/runs).")                                                           \
  FIELD(IntervalStrategy, logging_strategy, IntervalStrategy::steps, "logging", "When to log.")                           \
  FIELD(bool, logging_first_step, false, "logging", "Log the first optimizer step too.")                                  \
  FIELD(double, logging_steps, 500, "logging", "Log every N steps (a ratio of max_steps below 1).")                       \
  FIELD(bool, logging_nan_inf_filter, true, "logging", "Replace nan/inf step losses in the logged loss.")                 \
  FIELD(TokenCounting, include_num_input_tokens_seen, TokenCounting::no, "logging",                                       \
        "Count the training input tokens (all, or non_padding: the attention mask's) as num_input_tokens_seen.")         \
  FIELD(bool, skip_memory_metrics, true, "logging",                                                                       \
        "Leave out the host memory metrics (init/train/eval/test _mem_cpu_alloc_delta and _peaked_delta).")             \
  FIELD(std::optional<bool>, disable_tqdm, std::nullopt, "logging", "Plain log lines instead of the live progress bar.")  \
  FIELD(std::vector<std::string>, report_to, std::vector<std::string>{"none"}, "logging",                                 \
        "Integrations to report to (none, all, tensorboard, jsonl, csv, curves).")                                        \
                                                                                                                          \
  FIELD(IntervalStrategy, eval_strategy, IntervalStrategy::no, "evaluation", "When to evaluate.")                         \
  FIELD(std::optional<double>, eval_steps, std::nullopt, "evaluation",                                                    \
        "Evaluate every N steps (default logging_steps; a ratio below 1).")                                               \
  FIELD(double, eval_delay, 0, "evaluation", "Steps or epochs to wait before the first evaluation.")                      \
  FIELD(bool, eval_on_start, false, "evaluation", "Evaluate once before training.")                                       \
  FIELD(bool, prediction_loss_only, false, "evaluation", "Return only the loss when evaluating and predicting.")          \
  FIELD(std::vector<std::string>, label_names, std::vector<std::string>{}, "evaluation",                                  \
        "Batch keys holding the labels (default: labels).")                                                               \
                                                                                                                          \
  FIELD(SaveStrategy, save_strategy, SaveStrategy::steps, "saving", "When to save checkpoints.")                          \
  FIELD(double, save_steps, 500, "saving", "Save every N steps (a ratio of max_steps below 1).")                          \
  FIELD(std::optional<std::int64_t>, save_total_limit, std::nullopt, "saving", "Keep at most N checkpoints.")             \
  FIELD(bool, save_only_model, false, "saving", "Checkpoints hold the model only.")                                       \
  FIELD(bool, load_best_model_at_end, false, "saving", "Load the best checkpoint when training ends.")                    \
  FIELD(std::optional<std::string>, metric_for_best_model, std::nullopt, "saving",                                        \
        "Metric that defines the best model (default loss).")                                                             \
  FIELD(std::optional<bool>, greater_is_better, std::nullopt, "saving",                                                   \
        "Whether a larger metric_for_best_model is better.")                                                              \
  FIELD(bool, ignore_data_skip, false, "saving", "On resume, do not skip the batches already seen.")                      \
  FIELD(bool, restore_callback_states_from_checkpoint, false, "saving",                                                   \
        "On resume, restore the control flags and stateful callbacks saved in the checkpoint.")                           \
                                                                                                                          \
  FIELD(std::int64_t, seed, 42, "reproducibility", "Random seed set at the start.")                                       \
  FIELD(std::optional<std::int64_t>, data_seed, std::nullopt, "reproducibility", "Seed of the data order (default: seed).") \
  FIELD(bool, full_determinism, false, "reproducibility", "Deterministic algorithms everywhere (slower).")                 \
                                                                                                                          \
  FIELD(bool, use_cpu, false, "device", "Train on the CPU even when a GPU is present.")                                   \
  FIELD(bool, bf16, false, "device", "bfloat16 mixed precision.")                                                         \
  FIELD(bool, fp16, false, "device", "float16 mixed precision with loss scaling.")                                        \
  FIELD(bool, bf16_full_eval, false, "device", "Evaluate in bfloat16.")                                                   \
  FIELD(bool, fp16_full_eval, false, "device", "Evaluate in float16.")                                                    \
  FIELD(std::optional<bool>, tf32, std::nullopt, "device", "TF32 matmuls on CUDA.")                                       \
                                                                                                                          \
  FIELD(bool, dataloader_drop_last, false, "data", "Drop the last incomplete batch.")                                     \
  FIELD(std::int64_t, dataloader_num_workers, 0, "data", "Background threads preparing batches (0: on demand).")          \
  FIELD(std::optional<std::int64_t>, dataloader_prefetch_factor, std::nullopt, "data", "Batches in flight per worker.")   \
  FIELD(bool, dataloader_pin_memory, true, "data", "Pin host memory for faster copies to the GPU.")                       \
  FIELD(bool, dataloader_persistent_workers, false, "data", "Keep workers alive between epochs.")                         \
  FIELD(SamplingStrategy, train_sampling_strategy, SamplingStrategy::random, "data", "Order of training samples.")        \
  FIELD(std::string, length_column_name, "length", "data",                                                                \
        "Example key holding precomputed lengths for train_sampling_strategy group_by_length.")                            \
                                                                                                                          \
  /* train() calls the model's gradient_checkpointing_enable(). */                                                        \
  FIELD(bool, gradient_checkpointing, false, "memory",                                                                    \
        "Enable activation checkpointing to trade compute for memory. Reduces memory at the cost of ~20% slower "         \
        "training.")                                                                                                      \
                                                                                                                          \
  /* Read by the data-parallel sharding policies. */                                                                      \
  FIELD(std::optional<std::string>, ddp_backend, std::nullopt, "distributed",                                             \
        "Collective backend: nccl or gloo (default: nccl on CUDA, else gloo).")                                           \
  FIELD(std::int64_t, ddp_timeout, 1800, "distributed",                                                                   \
        "Seconds the rendezvous and each collective may wait for the other processes.")                                   \
  FIELD(std::optional<std::int64_t>, ddp_bucket_cap_mb, std::nullopt, "distributed",                                      \
        "Gradient bucket size in MiB for the allreduce (default 25).")                                                    \
  FIELD(std::optional<bool>, ddp_broadcast_buffers, std::nullopt, "distributed",                                          \
        "Broadcast buffers from rank 0 before each forward (default true).")                                              \
  /* Read by the sharding slots AutoSharding, ShardGradOp and FullShard (see fsdp_options()). */                         \
  FIELD(std::string, fsdp, "", "distributed",                                                                             \
        "Sharding: full_shard, shard_grad_op or no_shard, plus offload and auto_wrap (space-separated).")                 \
  FIELD(std::optional<std::string>, deepspeed, std::nullopt, "distributed",                                               \
        "A DeepSpeed JSON config (file or inline object) mapped onto the sharding policies (ZeRO stage, offload).")       \
  FIELD(std::optional<std::string>, fsdp_config, std::nullopt, "distributed",                                             \
        "FSDP options: a JSON file, or an inline JSON object (HF's fsdp_config keys).")                                   \
  /* What `python -m torch.distributed.launch` and the deepspeed launcher pass to each process; the */                   \
  /* launcher's environment stays the source of the rank (see finalize()). */                                            \
  FIELD(std::int64_t, local_rank, -1, "distributed",                                                                      \
        "The local rank a launcher passes (-1: none); must agree with LOCAL_RANK when that is set.")

/// The settings of a run: one member per TRAINPP_TRAINING_ARGUMENTS_FIELDS entry. Call `finalize()`
/// (the parser and the Trainer do) to apply HF's validation and derived defaults.
struct TrainingArguments {
#define TRAINPP_DECLARE_ARGUMENT(type, name, default_value, group, help) type name = default_value;
  TRAINPP_TRAINING_ARGUMENTS_FIELDS(TRAINPP_DECLARE_ARGUMENT)
#undef TRAINPP_DECLARE_ARGUMENT

  /// --fsdp and --fsdp_config, or --deepspeed, read and checked: the options finalize() read while the
  /// arguments they come from are unchanged (a config file is read once, and what runs is what
  /// validate() checked), else read again.
  [[nodiscard]] FsdpOptions fsdp_options() const;
  /// The arguments fsdp_options() reads: --fsdp, --fsdp_config, --deepspeed, --gradient_checkpointing,
  /// and those a DeepSpeed config must agree with (batch size, optimizer settings, precision, world size).
  [[nodiscard]] ShardingOptionsSource sharding_options_source() const;
  /// What finalize() read for fsdp_options(), with the source it read it from. Not an argument: never
  /// parsed, printed or saved; copies of the arguments share it.
  std::shared_ptr<const std::pair<ShardingOptionsSource, FsdpOptions>> finalized_sharding_options;

  /// The label keys of a batch: label_names, or HF's default {"labels"}.
  [[nodiscard]] std::vector<std::string> effective_label_names() const {
    return label_names.empty() ? std::vector<std::string>{"labels"} : label_names;
  }
  /// HF's get_warmup_steps: an int, or ceil(ratio * num_training_steps) when below 1. A
  /// warmup_ratio still set after finalize() (1: warm up over every step, which warmup_steps cannot
  /// say) counts when warmup_steps is 0, as in transformers 4.
  [[nodiscard]] std::int64_t get_warmup_steps(std::int64_t num_training_steps) const;
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

  /// HF's __post_init__: validate(*this), then apply_derived_defaults(). Throws trainpp::Error naming
  /// the problem; calling it again on its result changes nothing.
  void finalize();
  /// The defaults HF's __post_init__ derives from other fields (eval_steps from logging_steps, the
  /// best-model metric, logging_dir, ...), on arguments validate() accepted.
  void apply_derived_defaults();

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

/// The fields of TrainingArguments, for the parser, --help and training_args.json. A user's own
/// argument struct takes part by providing the same function (found by ADL):
///   template <class V> void visit_fields(MyArgs& a, V&& v) { v(FieldInfo{"epochs", "..."}, a.epochs); }
template <class V>
void visit_fields(TrainingArguments& a, V&& v) {
#define TRAINPP_VISIT_ARGUMENT(type, name, default_value, group, help) v(FieldInfo{#name, help, group}, a.name);
  TRAINPP_TRAINING_ARGUMENTS_FIELDS(TRAINPP_VISIT_ARGUMENT)
#undef TRAINPP_VISIT_ARGUMENT
}

namespace detail {

/// The launch environment as `args` and the process environment say together: a --local_rank fills
/// in LOCAL_RANK where the launcher did not set it (torch.distributed.launch without --use-env).
[[nodiscard]] EnvironmentReader environment_with_local_rank(std::int64_t local_rank);

}  // namespace detail

/// Refuses optim_args that `optim` does not read. The keys are HF's handlers' (transformers'
/// trainer_optimizer.py), except adafactor's: HF reads none for it and fixes scale_parameter and
/// relative_step to false; trainpp lets optim_args set transformers.Adafactor's own options.
void check_optim_args(OptimizerName optim, const OptimArgs& optim_args);

/// Every check of TrainingArguments' values, alone and in combination; throws trainpp::Error naming
/// the problem. Reads the fields as given (before finalize()'s derived defaults), so that a message
/// speaks of what was passed.
// Long on purpose: every combination of arguments is checked here, in one place, in HF's order.
void validate(const TrainingArguments& a);

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE ShardingOptionsSource TrainingArguments::sharding_options_source() const {
  ShardingOptionsSource source{.fsdp = fsdp, .fsdp_config = fsdp_config, .deepspeed = deepspeed,
                               .gradient_checkpointing = gradient_checkpointing};
  if (deepspeed && !deepspeed->empty())
    source.deepspeed_arguments = {.per_device_train_batch_size = per_device_train_batch_size,
                                  .gradient_accumulation_steps = gradient_accumulation_steps,
                                  .max_grad_norm = max_grad_norm,
                                  .learning_rate = learning_rate,
                                  .weight_decay = weight_decay,
                                  .adam_beta1 = adam_beta1,
                                  .adam_beta2 = adam_beta2,
                                  .adam_epsilon = adam_epsilon,
                                  .fp16 = fp16,
                                  .bf16 = bf16,
                                  .world_size = detect_launch_environment().world_size};
  return source;
}

TRAINPP_INLINE FsdpOptions TrainingArguments::fsdp_options() const {
  ShardingOptionsSource source = sharding_options_source();
  if (finalized_sharding_options && finalized_sharding_options->first == source) return finalized_sharding_options->second;
  return read_sharding_options(source);
}

TRAINPP_INLINE std::int64_t TrainingArguments::get_warmup_steps(std::int64_t num_training_steps) const {
  if (warmup_steps == 0 && warmup_ratio)
    return static_cast<std::int64_t>(std::ceil(num_training_steps * *warmup_ratio));
  return warmup_steps >= 1 ? static_cast<std::int64_t>(warmup_steps)
                           : static_cast<std::int64_t>(std::ceil(num_training_steps * warmup_steps));
}

namespace detail {

TRAINPP_INLINE EnvironmentReader environment_with_local_rank(std::int64_t local_rank) {
  return [local_rank](const std::string& name) -> std::optional<std::string> {
    auto value = process_environment(name);
    if (!value && name == "LOCAL_RANK" && local_rank >= 0) return std::to_string(local_rank);
    return value;
  };
}

}  // namespace detail

TRAINPP_INLINE void check_optim_args(OptimizerName optim, const OptimArgs& optim_args) {
  using namespace std::string_view_literals;
  static constexpr std::array sgd{"momentum"sv, "dampening"sv, "nesterov"sv};
  static constexpr std::array adagrad{"lr_decay"sv, "eps"sv};
  static constexpr std::array rmsprop{"momentum"sv, "alpha"sv, "eps"sv, "centered"sv};
  static constexpr std::array adafactor{"beta1"sv,           "clip_threshold"sv, "decay_rate"sv,
                                        "scale_parameter"sv, "relative_step"sv,  "warmup_init"sv};
  const std::string_view name = to_string(optim);
  switch (optim) {
    case OptimizerName::adamw_torch:
    case OptimizerName::adamw_torch_fused:
      return optim_args.accept_only(name, {}, "its settings are --adam_beta1, --adam_beta2 and --adam_epsilon");
    case OptimizerName::lion_32bit:
      return optim_args.accept_only(name, {}, "its betas are --adam_beta1 and --adam_beta2, as in HF");
    case OptimizerName::sgd: return optim_args.accept_only(name, sgd);
    case OptimizerName::adagrad: return optim_args.accept_only(name, adagrad);
    case OptimizerName::rmsprop: return optim_args.accept_only(name, rmsprop);
    case OptimizerName::adafactor: return optim_args.accept_only(name, adafactor);
  }
}

TRAINPP_INLINE void validate(const TrainingArguments& a) {
  auto positive = [](std::string_view name, auto value) {
    if (value <= 0) throw error("{} must be a positive number, got {}", name, value);
  };
  if (a.output_dir.empty()) throw error("output_dir must not be empty");
  positive("per_device_train_batch_size", a.per_device_train_batch_size);
  positive("per_device_eval_batch_size", a.per_device_eval_batch_size);
  positive("gradient_accumulation_steps", a.gradient_accumulation_steps);
  if (a.eval_accumulation_steps) positive("eval_accumulation_steps", *a.eval_accumulation_steps);
  if (a.max_steps == 0 || a.max_steps < -1)
    throw error("max_steps must be a positive number, or -1 to train for num_train_epochs, got {}", a.max_steps);
  if (a.max_steps < 0 && !(a.num_train_epochs > 0))
    throw error("num_train_epochs must be positive when max_steps is not set, got {}", a.num_train_epochs);
  // The launcher's environment: a malformed or inconsistent one must not silently count as rank 0 of 1.
  if (a.local_rank < -1) throw error("local_rank must be -1 (not given) or a process's local rank, got {}", a.local_rank);
  const LaunchEnvironment launch = detect_launch_environment(detail::environment_with_local_rank(a.local_rank));
  if (a.local_rank >= 0) {
    if (const auto text = process_environment("LOCAL_RANK")) {
      if (const int from_environment = detail::parse_launch_int("LOCAL_RANK", *text); from_environment != a.local_rank)
        throw error("--local_rank {} disagrees with LOCAL_RANK={} in the environment: pass the launcher's value, "
                    "or leave --local_rank out", a.local_rank, from_environment);
    }
    if (a.local_rank != launch.local_rank) {
      if (launch.launcher == Launcher::none)
        throw error("--local_rank {} but no launcher started this process (RANK and WORLD_SIZE are not set): "
                    "its local rank is 0", a.local_rank);
      throw error("--local_rank {} disagrees with this process's local rank {} from the {} environment",
                  a.local_rank, launch.local_rank, to_string(launch.launcher));
    }
  }
  if (a.ddp_backend && *a.ddp_backend != "nccl" && *a.ddp_backend != "gloo")
    throw error("ddp_backend must be nccl or gloo, got '{}'", *a.ddp_backend);
  if (a.ddp_timeout < 1) throw error("ddp_timeout must be at least 1 second, got {}", a.ddp_timeout);
  {
    const auto options = a.fsdp_options();  // a bad --fsdp or --fsdp_config fails here, before any work
    if (options.strategy && options.strategy != ShardingStrategy::no_shard && a.save_only_model &&
        options.state_dict_type == StateDictType::sharded_state_dict)
      throw error("save_only_model is not compatible with FSDP state dict type 'SHARDED_STATE_DICT'");
    // Adafactor's statistics are per matrix (row and column means, the update's RMS): on the flat
    // pieces a sharded optimizer holds they would be another algorithm, silently.
    if (options.strategy && options.strategy != ShardingStrategy::no_shard && a.optim == OptimizerName::adafactor)
      throw error("--optim adafactor cannot run on sharded optimizer state ({}): its factored statistics need whole "
                  "matrices; use data parallelism (no --fsdp / ZeRO stage 0) or another optimizer",
                  a.fsdp.empty() ? std::string("a DeepSpeed ZeRO stage or --fsdp_config") : "--fsdp " + a.fsdp);
  }
  if (a.ddp_bucket_cap_mb && *a.ddp_bucket_cap_mb < 1)
    throw error("ddp_bucket_cap_mb must be at least 1, got {}", *a.ddp_bucket_cap_mb);
  if (!(a.learning_rate >= 0)) throw error("learning_rate must be >= 0, got {}", a.learning_rate);
  if (!(a.weight_decay >= 0)) throw error("weight_decay must be >= 0, got {}", a.weight_decay);
  if (!(a.adam_beta1 >= 0 && a.adam_beta1 < 1)) throw error("adam_beta1 must be in [0, 1), got {}", a.adam_beta1);
  if (!(a.adam_beta2 >= 0 && a.adam_beta2 < 1)) throw error("adam_beta2 must be in [0, 1), got {}", a.adam_beta2);
  if (!(a.adam_epsilon >= 0)) throw error("adam_epsilon must be >= 0, got {}", a.adam_epsilon);
  if (!(a.max_grad_norm >= 0)) throw error("max_grad_norm must be >= 0 (0 disables clipping), got {}", a.max_grad_norm);
  // HF takes any number; a negative factor or one of 1 and more is no smoothing anyone means.
  if (!(a.label_smoothing_factor >= 0 && a.label_smoothing_factor < 1))
    throw error("label_smoothing_factor must be in [0, 1) (0 disables label smoothing), got {}", a.label_smoothing_factor);
  if (a.optim_args) check_optim_args(a.optim, OptimArgs::parse(*a.optim_args));
  if (!(a.warmup_steps >= 0)) throw error("warmup_steps must be >= 0 (an int, or a ratio below 1), got {}", a.warmup_steps);
  if (a.warmup_steps > 1 && a.warmup_steps != std::floor(a.warmup_steps))
    throw error("warmup_steps must be an integer when >= 1 (a ratio only below 1), got {}", a.warmup_steps);
  if (a.warmup_ratio && !(*a.warmup_ratio >= 0 && *a.warmup_ratio <= 1))  // transformers 4's range
    throw error("warmup_ratio must lie in range [0, 1], got {}", *a.warmup_ratio);
  if (!a.lr_scheduler_kwargs.is_object())
    throw error("lr_scheduler_kwargs must be a JSON object, got {}", a.lr_scheduler_kwargs.dump());
  if (a.dataloader_num_workers < 0)
    throw error("dataloader_num_workers must be >= 0, got {}", a.dataloader_num_workers);
  if (a.dataloader_prefetch_factor && a.dataloader_num_workers == 0)
    throw error("--dataloader_prefetch_factor can only be set when data is loaded in a different process, "
                "i.e. when --dataloader_num_workers > 1.");
  if (a.dataloader_prefetch_factor) positive("dataloader_prefetch_factor", *a.dataloader_prefetch_factor);
  if (a.dataloader_persistent_workers && a.dataloader_num_workers == 0)
    throw error("--dataloader_persistent_workers needs --dataloader_num_workers > 0 (torch's DataLoader refuses it too)");
  if (a.logging_dir && a.logging_dir->empty()) throw error("logging_dir must not be empty");
  if (a.bf16 && a.fp16) throw error("At most one of fp16 and bf16 can be True, but not both");
  if (a.bf16_full_eval && a.fp16_full_eval) throw error("At most one of fp16_full_eval and bf16_full_eval can be True");

  // Ratio-valued steps, with HF's fallback of eval_steps to logging_steps.
  auto check_steps = [](std::string_view name, double value) {
    if (!(value > 0)) throw error("{} must be positive (an int, or a ratio below 1), got {}", name, value);
    if (value > 1 && value != std::floor(value))
      throw error("{} must be an integer when > 1 (a ratio only below 1), got {}", name, value);
  };
  if (a.logging_strategy == IntervalStrategy::steps) check_steps("logging_steps", a.logging_steps);
  const double eval_steps = a.eval_steps.value_or(a.logging_steps);
  if (a.eval_strategy == IntervalStrategy::steps) {
    if (!a.eval_steps && !(a.logging_steps > 0))
      throw error("eval_strategy steps requires either a non-zero --eval_steps or --logging_steps");
    check_steps("eval_steps", eval_steps);
  }
  if (a.save_strategy == SaveStrategy::steps) check_steps("save_steps", a.save_steps);
  if (!(a.eval_delay >= 0)) throw error("eval_delay must be >= 0, got {}", a.eval_delay);

  if (a.load_best_model_at_end && a.save_strategy != SaveStrategy::best) {
    if (a.eval_strategy == IntervalStrategy::no)
      throw error("--load_best_model_at_end requires an evaluation strategy (eval_strategy is 'no')");
    if (static_cast<int>(a.eval_strategy) != static_cast<int>(a.save_strategy))
      throw error("--load_best_model_at_end requires the save and eval strategy to match, but found\n- "
                  "Evaluation strategy: {}\n- Save strategy: {}",
                  to_string(a.eval_strategy), to_string(a.save_strategy));
    if (a.eval_strategy == IntervalStrategy::steps) {
      const double e = eval_steps, s = a.save_steps;
      const bool both_ratio = e < 1 && s < 1, both_int = e >= 1 && s >= 1;
      const bool multiple = both_int ? std::fmod(s, e) == 0
                                     : both_ratio && std::fabs(std::remainder(s, e)) < 1e-12;
      if (!multiple)
        throw error("--load_best_model_at_end requires the saving steps to be a round multiple of the "
                    "evaluation steps, but found {}, which is not a round multiple of {}.", s, e);
    }
  }
  if (a.lr_scheduler_type == SchedulerType::reduce_lr_on_plateau && a.eval_strategy == IntervalStrategy::no)
    throw error("lr_scheduler_type reduce_lr_on_plateau requires an eval strategy (it steps on evaluation)");
  if (std::ranges::find(a.report_to, "none") != a.report_to.end() && a.report_to.size() > 1)
    throw error("report_to 'none' cannot be combined with other integrations");
  for (const auto& name : a.report_to)
    if (name != "none" && name != "all" && name != "tensorboard" && name != "jsonl" && name != "csv" && name != "curves")
      throw error("report_to '{}' is not an integration trainpp has; choose among tensorboard, jsonl, csv, curves, all, "
                  "none", name);
}

TRAINPP_INLINE void TrainingArguments::finalize() {
  validate(*this);
  apply_derived_defaults();
  ShardingOptionsSource source = sharding_options_source();
  FsdpOptions options = fsdp_options();  // the reading a previous finalize() kept, when still current
  finalized_sharding_options = std::make_shared<const std::pair<ShardingOptionsSource, FsdpOptions>>(
      std::move(source), std::move(options));
}

TRAINPP_INLINE void TrainingArguments::apply_derived_defaults() {
  if (eval_strategy != IntervalStrategy::no) do_eval = true;
  if (eval_strategy == IntervalStrategy::steps && !eval_steps) eval_steps = logging_steps;
  if ((load_best_model_at_end || save_strategy == SaveStrategy::best ||
       lr_scheduler_type == SchedulerType::reduce_lr_on_plateau) && !metric_for_best_model)
    metric_for_best_model = "loss";
  if (metric_for_best_model && !greater_is_better) {
    const auto& m = *metric_for_best_model;
    greater_is_better = !(m.size() >= 4 && m.compare(m.size() - 4, 4, "loss") == 0);
  }
  if (!logging_dir) logging_dir = output_dir + "/runs";

  // transformers 5.0 read warmup_ratio as warmup_steps, as here: a ratio below 1 becomes the
  // warmup_steps that says the same, so that training_args.json holds the 5.x spelling and a second
  // finalize() has nothing left to note. Transformers 4 let a positive warmup_steps win.
  if (warmup_ratio) {
    if (warmup_steps > 0) {
      logger().warning("--warmup_ratio is deprecated (removed in transformers 5.2) and --warmup_steps {} is given too: "
                       "warmup_steps wins, as in transformers 4", warmup_steps);
      warmup_ratio.reset();
    } else if (*warmup_ratio < 1) {
      logger().warning("--warmup_ratio is deprecated (removed in transformers 5.2): use --warmup_steps {} instead, "
                       "which says the same", *warmup_ratio);
      warmup_steps = *warmup_ratio;
      warmup_ratio.reset();
    } else {
      logger().warning("--warmup_ratio is deprecated (removed in transformers 5.2): warming up over every training "
                       "step, which --warmup_steps cannot say");
    }
  }

  // Where the launcher passed --local_rank without setting LOCAL_RANK, every later reader of the
  // rank (the device, logging, the process group) must see it: they all read the environment.
  // Only torchrun's contract reads LOCAL_RANK; under the other launchers validate() has checked that
  // the flag agrees with what they set.
  if (local_rank >= 0 && !process_environment("LOCAL_RANK") &&
      detect_launch_environment(detail::environment_with_local_rank(local_rank)).launcher == Launcher::torchrun)
    ::setenv("LOCAL_RANK", std::to_string(local_rank).c_str(), /*overwrite=*/0);
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
