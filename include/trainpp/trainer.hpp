#pragma once
// Trainer: a model, TrainingArguments and named policy slots; train(), evaluate(), predict().
// The order of one step and one epoch lives in loop.hpp; this file holds construction, evaluation,
// prediction, logging and what policies reach through the trainer.

#include <trainpp/args.hpp>
#include <trainpp/callbacks/callback_list.hpp>
#include <trainpp/callbacks/console.hpp>
#include <trainpp/callbacks/default_flow.hpp>
#include <trainpp/callbacks/report_to.hpp>
#include <trainpp/cli.hpp>
#include <trainpp/concepts/data_loader.hpp>
#include <trainpp/concepts/loss.hpp>
#include <trainpp/concepts/optimizer.hpp>
#include <trainpp/concepts/precision.hpp>
#include <trainpp/concepts/scheduler.hpp>
#include <trainpp/concepts/sharding.hpp>
#include <trainpp/concepts/step.hpp>
#include <trainpp/concepts/token_loss.hpp>
#include <trainpp/data/dataset.hpp>
#include <trainpp/data/tensor_dataset.hpp>
#include <trainpp/detail/format.hpp>
#include <trainpp/detail/host_allocator.hpp>
#include <trainpp/detail/memory_tracker.hpp>
#include <trainpp/device.hpp>
#include <trainpp/io/eval_metrics.hpp>
#include <trainpp/io/metrics.hpp>
#include <trainpp/io/model_io.hpp>
#include <trainpp/logging.hpp>
#include <trainpp/loss/label_smoothing.hpp>
#include <trainpp/loss/model_output.hpp>
#include <trainpp/precision/autocast.hpp>
#include <trainpp/precision/full_eval.hpp>
#include <trainpp/slots.hpp>
#include <trainpp/state.hpp>

#include <chrono>
#include <unordered_set>
#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace trainpp {

namespace detail {

/// Stand-in type for a member that a failed slot check leaves without a meaningful type: it keeps
/// the compiler from piling further errors onto the one readable static_assert.
struct invalid_slot {
  template <class... A> invalid_slot(A&&...) {}
};

template <class OptP, bool ok = requires(const OptP& p, torch::nn::Module& m, const TrainingArguments& a) { p.create(m, a); }>
struct optimizer_of { using type = invalid_slot; };
template <class OptP>
struct optimizer_of<OptP, true> {
  using type = decltype(std::declval<const OptP&>().create(std::declval<torch::nn::Module&>(),
                                                           std::declval<const TrainingArguments&>()));
};

template <class SchP, bool ok = requires(const SchP& p, const TrainingArguments& a, std::int64_t n) { p.create(a, n); }>
struct scheduler_of { using type = invalid_slot; };
template <class SchP>
struct scheduler_of<SchP, true> {
  using type = decltype(std::declval<const SchP&>().create(std::declval<const TrainingArguments&>(), std::int64_t{}));
};

/// The callbacks a Trainer runs: HF's built-ins first (the default flow, progress / printing, the
/// integrations report_to names), then the user's, in the order given.
template <class C> struct with_builtins { using type = CallbackList<DefaultFlow, ConsoleProgress, ReportTo>; };
template <class... C> struct with_builtins<CallbackList<C...>> {
  using type = CallbackList<DefaultFlow, ConsoleProgress, ReportTo, C...>;
};

template <class T> struct is_reference_wrapper : std::false_type {};
template <class T> struct is_reference_wrapper<std::reference_wrapper<T>> : std::true_type {};
/// A dataset held by value, or the one a std::reference_wrapper points at.
template <class T>
decltype(auto) unwrap(T& x) {
  if constexpr (is_reference_wrapper<std::remove_const_t<T>>::value) return x.get();
  else return (x);
}
template <class T> struct unwrap_type { using type = T; };
template <class T> struct unwrap_type<std::reference_wrapper<T>> { using type = std::remove_const_t<T>; };

/// The loader type train() uses, for the pointer callbacks reach it through (void without a training set
/// or with a data loader policy the slot check refuses).
template <class DLP, class DS, bool ok = requires(const DLP& p, const typename unwrap_type<DS>::type& d,
                                                   const TrainingArguments& a, torch::Device dev) { p.train_loader(d, a, dev); }>
struct train_loader_of { using type = void; };
template <class DLP, class DS>
struct train_loader_of<DLP, DS, true> {
  using type = decltype(std::declval<const DLP&>().train_loader(std::declval<const typename unwrap_type<DS>::type&>(),
                                                                std::declval<const TrainingArguments&>(),
                                                                std::declval<torch::Device>()));
};

template <class D>
constexpr bool check_dataset(const char* /*slot*/) {
  if constexpr (std::is_same_v<D, no_dataset>) return true;
  else {
    constexpr bool ok = Dataset<typename unwrap_type<D>::type>;
    static_assert(ok, "trainpp: the train_dataset / eval_dataset slots need a dataset with size() and get(index)");
    return ok;
  }
}

template <class F>
constexpr bool check_metrics_fn() {
  if constexpr (std::is_same_v<F, no_metrics>) return true;
  else {
    constexpr bool ok = requires(F& f, const EvalPrediction& p) { { f(p) } -> std::convertible_to<Metrics>; };
    static_assert(ok, "trainpp: the compute_metrics slot needs a callable Metrics(const EvalPrediction&)");
    return ok;
  }
}

template <class C>
constexpr bool check_callbacks() {
  constexpr bool ok = is_callback_list<C>::value;
  static_assert(ok, "trainpp: the callbacks slot holds a trainpp::CallbackList; build it with "
                    "trainpp::callback_list(MyCallback{}, ...)");
  return ok;
}

/// The model's optional members the Trainer reads, each declared with the wrong shape an error naming
/// it (as the slots' optional members are), never silently the default:
/// - `static constexpr const char* main_input_name`: the batch key of its main input ("input_ids");
/// - `static constexpr bool is_causal_lm`: its logits at position t score the label at t + 1;
/// - `double floating_point_ops(const Batch&) const`: the flops of a forward and backward (total_flos).
template <class Model>
constexpr bool check_model_members() {
  using Impl = model_impl_t<Model>;
  constexpr bool input_ok = !declares_main_input_name<Impl> ||
                            requires { { Impl::main_input_name } -> std::convertible_to<std::string_view>; };
  static_assert(input_ok, "trainpp: the model declares 'main_input_name' but it is not "
                          "static constexpr const char* main_input_name (the batch key of its main input)");
  constexpr bool causal_ok = !declares_is_causal_lm<Impl> ||
                             requires { typename std::bool_constant<Impl::is_causal_lm>; };
  static_assert(causal_ok, "trainpp: the model declares 'is_causal_lm' but it is not static constexpr bool is_causal_lm");
  constexpr bool flops_ok = !declares_floating_point_ops<Impl> ||
                            requires(const Impl& m, const Batch& b) { { m.floating_point_ops(b) } -> std::convertible_to<double>; };
  static_assert(flops_ok, "trainpp: the model declares 'floating_point_ops' but it cannot be called as "
                          "double floating_point_ops(const Batch& batch) const");
  return input_ok && causal_ok && flops_ok;
}

/// The batch key holding a model's main input (HF's model.main_input_name): the module's
/// `main_input_name` when it declares one, else "input_ids".
template <class Model>
constexpr std::string_view main_input_name() {
  if constexpr (declares_main_input_name<model_impl_t<Model>> && check_model_members<Model>())
    return model_impl_t<Model>::main_input_name;
  else
    return "input_ids";
}

/// HF's num_parameters(exclude_embeddings=True): every parameter once (a tied weight under two names
/// counts once), leaving out the weights of Embedding modules.
inline std::int64_t non_embedding_parameters(const torch::nn::Module& module) {
  std::unordered_set<const void*> seen;
  for (const auto& child : module.modules(/*include_self=*/true))
    if (const auto* embedding = child->as<torch::nn::EmbeddingImpl>())
      seen.insert(embedding->weight.unsafeGetTensorImpl());
  std::int64_t count = 0;
  for (const auto& parameter : module.parameters(/*recurse=*/true))
    if (seen.insert(parameter.unsafeGetTensorImpl()).second) count += parameter.numel();
  return count;
}

/// Whether a model's logits at position t predict the label at t + 1 (HF's causal LM classes, whose
/// labels the label smoother shifts): the module's `static constexpr bool is_causal_lm`, else false.
template <class Model>
constexpr bool is_causal_lm() {
  if constexpr (declares_is_causal_lm<model_impl_t<Model>> && check_model_members<Model>())
    return model_impl_t<Model>::is_causal_lm;
  else
    return false;
}

/// A model the Trainer can hold: a module holder (TORCH_MODULE) or a shared_ptr to a module.
template <class T>
concept model_handle = requires(T& m) { { *m.operator->() } -> std::convertible_to<torch::nn::Module&>; };
/// A function that builds the model (HF's model_init). Checked after model_handle, so that a module
/// holder is never asked whether it is callable without arguments (LibTorch's answer is a hard error).
template <class F>
concept model_factory = !model_handle<F> && std::is_invocable_v<F&>;

/// Seeds as the Trainer does (set_seed, or enable_full_determinism), then builds the model.
template <class Model, class Factory>
Model seeded_model(Factory& factory, const TrainingArguments& args) {
  if (args.full_determinism) enable_full_determinism(args.seed);
  else set_seed(args.seed);
  return factory();
}

}  // namespace detail

/// A Trainer composed from policies. Construct it from a model (a torch::nn::ModuleHolder such as
/// one declared with TORCH_MODULE, or a std::shared_ptr to a module), the TrainingArguments, and any
/// named slots, in any order:
///
///     trainpp::Trainer trainer(Net{}, args,
///         trainpp::train_dataset = train, trainpp::eval_dataset = test,
///         trainpp::loss = WeightedLoss{}, trainpp::compute_metrics = trainpp::accuracy);
///
/// Slots left out take their defaults (see slots.hpp). Datasets are held by value; pass
/// std::ref(dataset) to share one instead. A type that does not fit its slot is rejected at compile
/// time with one message naming the slot and the missing member.
template <class Model, class P>
class Trainer {
 public:
  using model_type = Model;
  using policies = P;
  using data_loader_policy_type = typename P::template type<slot::data_loader_t>;
  using loss_type = typename P::template type<slot::loss_t>;
  using optimizer_policy_type = typename P::template type<slot::optimizer_t>;
  using scheduler_policy_type = typename P::template type<slot::scheduler_t>;
  using precision_type = typename P::template type<slot::precision_t>;
  using sharding_type = typename P::template type<slot::sharding_t>;
  using user_callbacks_type = typename P::template type<slot::callbacks_t>;
  using callbacks_type = typename detail::with_builtins<user_callbacks_type>::type;
  using step_type = typename P::template type<slot::step_t>;
  using train_dataset_type = typename P::template type<slot::train_dataset_t>;
  using eval_dataset_type = typename P::template type<slot::eval_dataset_t>;
  using compute_metrics_type = typename P::template type<slot::compute_metrics_t>;
  using optimizer_type = typename detail::optimizer_of<optimizer_policy_type>::type;
  using scheduler_type = typename detail::scheduler_of<scheduler_policy_type>::type;
  using train_loader_type = typename detail::train_loader_of<data_loader_policy_type, train_dataset_type>::type;

  static constexpr bool has_train_dataset = !std::is_same_v<train_dataset_type, no_dataset>;
  static constexpr bool has_eval_dataset = !std::is_same_v<eval_dataset_type, no_dataset>;
  static constexpr bool has_compute_metrics = !std::is_same_v<compute_metrics_type, no_metrics>;

  /// HF's model_init: `factory()` builds the model after the arguments' seed is set (with
  /// --full_determinism, as enable_full_determinism), so its initial weights are the same on every run
  /// of the program: `trainpp::Trainer trainer([] { return Net{}; }, args, ...)`.
  template <detail::model_factory Factory, class... Named>
    requires std::is_convertible_v<std::invoke_result_t<Factory&>, Model>
  Trainer(Factory factory, TrainingArguments args, Named... named)
      : Trainer(detail::seeded_model<Model>(factory, args), TrainingArguments(args), std::move(named)...) {}

  template <class... Named>
  Trainer(Model model, TrainingArguments args, Named... named)
      : model_(std::move(model)),
        args_(std::move(args)),
        // Each slot's value, or its default: P already holds the resolved types (slots.hpp), so the
        // defaults are named in one place only.
        data_loader_(detail::take_slot<slot::data_loader_t, data_loader_policy_type>(named...)),
        loss_(detail::take_slot<slot::loss_t, loss_type>(named...)),
        optimizer_policy_(detail::take_slot<slot::optimizer_t, optimizer_policy_type>(named...)),
        scheduler_policy_(detail::take_slot<slot::scheduler_t, scheduler_policy_type>(named...)),
        precision_(detail::take_slot<slot::precision_t, precision_type>(named...)),
        sharding_(detail::take_slot<slot::sharding_t, sharding_type>(named...)),
        callbacks_(make_callbacks(detail::take_slot<slot::callbacks_t, user_callbacks_type>(named...))),
        step_(detail::take_slot<slot::step_t, step_type>(named...)),
        train_dataset_(detail::take_slot<slot::train_dataset_t, train_dataset_type>(named...)),
        eval_dataset_(detail::take_slot<slot::eval_dataset_t, eval_dataset_type>(named...)),
        compute_metrics_(detail::take_slot<slot::compute_metrics_t, compute_metrics_type>(named...)) {
    static_assert(slots_ok<Named...>(), "trainpp: see the first error above");
    static_assert(detail::check_model_members<Model>(), "trainpp: see the first error above");
    args_.finalize();
    memory_tracker_.set_enabled(!args_.skip_memory_metrics);
    memory_tracker_.start("init");
    saved_arguments_ = args_json(args_);
    if (args_.eval_strategy != IntervalStrategy::no && !has_eval_dataset)
      throw error("You have set eval_strategy to {} but you didn't pass an eval_dataset to the Trainer. "
                  "Either set eval_strategy to 'no' or pass an eval_dataset.", to_string(args_.eval_strategy));
    // HF lets a compute_loss_func win over the smoother without a word; here the flag never goes unused.
    if (args_.label_smoothing_factor != 0 && !std::is_same_v<loss_type, ModelLoss>)
      throw error("--label_smoothing_factor smooths the default loss (trainpp::ModelLoss); this Trainer's loss slot "
                  "computes its own loss: smooth inside it, or leave the factor at 0");
    // HF's Trainer sets the library's verbosity from the arguments (main process or replica).
    logger().set_level(args_.get_process_log_level());
    detail::keep_freed_host_memory();
    if (args_.full_determinism) enable_full_determinism(args_.seed);
    else set_seed(args_.seed);
    device_ = select_device(args_);
    apply_tf32(args_, device_);
    if constexpr (requires { precision_.configure(args_, device_); }) precision_.configure(args_, device_);
    if constexpr (requires { sharding_.configure(args_, device_); }) sharding_.configure(args_, device_);
    if constexpr (!detail::sharding_shards_model<sharding_type>()) {
      // HF's flags asked for sharding that this slot cannot do: say so instead of training unsharded.
      const auto fsdp = args_.fsdp_options();
      if (fsdp.strategy && *fsdp.strategy != ShardingStrategy::no_shard)
        throw error("{}: the sharding slot of this Trainer does not shard; put trainpp::AutoSharding (which "
                    "follows --fsdp and --deepspeed), trainpp::ShardGradOp or trainpp::FullShard in it",
                    args_.fsdp.empty() ? std::string("--deepspeed") : "--fsdp " + args_.fsdp);
      if (!args_.fsdp_config.value_or("").empty())
        warn("`--fsdp_config` is useful only with a sharding policy (--fsdp, or a sharded slot type); ignoring it.");
    }
    if constexpr (counts_floating_point_ops()) non_embedding_parameters_ = detail::non_embedding_parameters(module());
    sharding_.prepare(module(), device_);
    set_process_flags();
    fire(hooks::on_init_end);
    memory_tracker_.stop_and_update("init", nullptr);  // reported with the first stage's metrics, as HF
  }

  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // ---- the three entry points ------------------------------------------------------------------

  /// Runs training (see loop.hpp). Needs the train_dataset slot. Resumes as
  /// args.resume_from_checkpoint says: "true" (the newest checkpoint in output_dir), a checkpoint
  /// directory, or nothing / "false" for a fresh run. (HF's Trainer.train takes this as a parameter
  /// and leaves the argument to scripts; here the argument works by itself, and the overload below
  /// takes the parameter.)
  TrainOutput train() { return train(args_.resume_from_checkpoint); }
  /// Runs training, resuming from `resume_from_checkpoint` ("true", a directory, or nullopt / "false").
  TrainOutput train(const std::optional<std::string>& resume_from_checkpoint);

  /// Evaluates on the eval_dataset slot: eval_loss, eval_runtime, eval_samples_per_second,
  /// eval_steps_per_second and compute_metrics' results, all under `prefix`_; logged and returned.
  Metrics evaluate(std::string_view prefix = "eval") {
    static_assert(has_eval_dataset, "trainpp: evaluate() without a dataset needs the eval_dataset slot");
    return evaluate(detail::unwrap(eval_dataset_), prefix);
  }
  /// Evaluates on another dataset.
  template <Dataset D>
  Metrics evaluate(const D& dataset, std::string_view prefix = "eval") {
    memory_tracker_.start("eval");  // nothing of its own inside training, as HF's tracker
    const auto start = std::chrono::steady_clock::now();
    auto loader = eval_loader_for(dataset);
    log_loop_start("Evaluation", loader.num_samples());
    // HF: without compute_metrics only the loss is gathered (no logits kept in memory).
    auto out = evaluation_loop(loader, /*prediction_loss_only=*/!has_compute_metrics || args_.prediction_loss_only, prefix);
    if (has_compute_metrics && !args_.prediction_loss_only && !out.label_ids.defined())
      // HF skips compute_metrics silently here; a misspelt --label_names would go unnoticed.
      warn("compute_metrics was not called: the evaluation batches hold none of the label keys ({}); set "
           "--label_names to the batch key that holds the labels", fmt::join(args_.effective_label_names(), ", "));
    const double n = static_cast<double>(loader.num_samples());
    const double batch = static_cast<double>(args_.per_device_eval_batch_size * sharding_.world_size());
    out.metrics.merge(speed_metrics(prefix, start, n, std::ceil(n / batch)));
    log(out.metrics);  // adds "epoch" to the returned metrics too, as HF's evaluate does
    control_.should_evaluate = false;  // the request is served (HF resets it as on_evaluate fires)
    fire(hooks::on_evaluate, std::as_const(out.metrics));
    // After the log, as HF: the returned metrics carry the memory figures, log_history does not.
    memory_tracker_.stop_and_update("eval", &out.metrics);
    return out.metrics;
  }

  /// Predicts on `dataset`: predictions, label ids (when the data has labels) and test_ metrics.
  /// Fires on_predict; does not log (as HF).
  template <Dataset D>
  PredictionOutput predict(const D& dataset, std::string_view prefix = "test") {
    memory_tracker_.start("test");
    const auto start = std::chrono::steady_clock::now();
    auto loader = [&] {
      if constexpr (requires { data_loader_.test_loader(dataset, args_, device_, DataShard{}); })
        return data_loader_.test_loader(dataset, args_, device_, data_shard());
      else if constexpr (requires { data_loader_.test_loader(dataset, args_, device_); })
        return unsharded(data_loader_.test_loader(dataset, args_, device_), "test_loader");
      else
        return eval_loader_for(dataset);
    }();
    log_loop_start("Prediction", loader.num_samples());
    auto out = evaluation_loop(loader, args_.prediction_loss_only, prefix);
    const double n = static_cast<double>(loader.num_samples());
    const double batch = static_cast<double>(args_.per_device_eval_batch_size * sharding_.world_size());
    out.metrics.merge(speed_metrics(prefix, start, n, std::ceil(n / batch)));
    fire(hooks::on_predict, std::as_const(out.metrics));
    memory_tracker_.stop_and_update("test", &out.metrics);
    return out;
  }

  /// The tail of HF's example scripts (run_glue, run_clm) in one call: with a train_dataset, train
  /// (resuming as --resume_from_checkpoint says), save the model, log and save the train metrics and
  /// trainer_state.json; with an eval_dataset, evaluate and log and save the eval metrics. Returns
  /// every metric, as output_dir/all_results.json holds them. A program that wants another order
  /// calls the same methods itself.
  Metrics run() {
    Metrics all;
    if constexpr (has_train_dataset) {
      const TrainOutput result = train();
      save_model();
      log_metrics("train", result.metrics);
      save_metrics("train", result.metrics);
      save_state();
      all.insert(result.metrics.begin(), result.metrics.end());
    }
    if constexpr (has_eval_dataset) {
      const Metrics metrics = evaluate();
      log_metrics("eval", metrics);
      save_metrics("eval", metrics);
      all.insert(metrics.begin(), metrics.end());
    }
    return all;
  }

  // ---- logging ---------------------------------------------------------------------------------

  /// HF's Trainer.log: adds the epoch and, with include_num_input_tokens_seen, num_input_tokens_seen;
  /// appends {logs..., step} to log_history, fires on_log.
  void log(Metrics& logs) { log(logs, std::nullopt); }
  /// The same for a training log: with include_num_input_tokens_seen, also train_runtime and
  /// train_tokens_per_second since `train_start` (HF's log(logs, start_time)).
  void log(Metrics& logs, std::optional<std::chrono::steady_clock::time_point> train_start) {
    if (state_.epoch) logs["epoch"] = *state_.epoch;
    const bool count_tokens = args_.include_num_input_tokens_seen != TokenCounting::no;
    if (count_tokens) {
      logs["num_input_tokens_seen"] = static_cast<double>(state_.num_input_tokens_seen);
      if (train_start) {
        const auto session_tokens = static_cast<double>(state_.num_input_tokens_seen - initial_num_input_tokens_seen_);
        for (const auto& [key, value] : speed_metrics("train", *train_start, std::nullopt, std::nullopt, session_tokens))
          logs[key] = value;
      }
    }
    nlohmann::json entry(logs);
    // An integer, as HF writes it (Metrics holds doubles).
    if (count_tokens) entry["num_input_tokens_seen"] = state_.num_input_tokens_seen;
    entry["step"] = state_.global_step;
    state_.log_history.push_back(entry);
    nlohmann::json shown(logs);
    if (count_tokens) shown["num_input_tokens_seen"] = state_.num_input_tokens_seen;
    control_.should_log = false;  // the request is served (HF resets it as on_log fires)
    fire(hooks::on_log, std::as_const(shown));
  }
  void log(Metrics&& logs) { log(logs); }

  /// HF's log_metrics / save_metrics, on the main process only.
  void log_metrics(std::string_view split, const Metrics& metrics) const {
    if (state_.is_world_process_zero) trainpp::log_metrics(split, metrics);
  }
  void save_metrics(std::string_view split, const Metrics& metrics, bool combined = true) const {
    if (state_.is_world_process_zero) trainpp::save_metrics(args_.output_dir, split, metrics, combined);
  }
  /// Writes the model alone into `dir` (default: output_dir): as HF's save_model, through
  /// save_pretrained for a model that has it (models/pretrained.hpp: config.json, generation_config.json
  /// for a model that generates, model.safetensors — a directory transformers' from_pretrained loads),
  /// else model.safetensors. Under a sharded policy every process must call it (the parameters are
  /// gathered); only the main process writes.
  void save_model(std::optional<std::filesystem::path> dir = std::nullopt) {
    auto write = [&](const std::filesystem::path& into) {
      if constexpr (saves_pretrained) write_pretrained_files(into, /*with_weights=*/true);
      else trainpp::save_model(module(), into);
    };
    if constexpr (requires { sharding_.full_parameters(); }) {
      auto gathered = sharding_.full_parameters();
      if (state_.is_world_process_zero) write(dir.value_or(args_.output_dir));
    } else if (state_.is_world_process_zero) {
      write(dir.value_or(args_.output_dir));
    }
  }
  /// Writes trainer_state.json into `dir` (default: output_dir), as HF's save_state.
  void save_state(std::optional<std::filesystem::path> dir = std::nullopt) const {
    if (!state_.is_world_process_zero) return;
    const auto d = dir.value_or(args_.output_dir);
    std::filesystem::create_directories(d);
    write_json_file(d / "trainer_state.json", state_json());
  }

  // ---- what policies and callbacks reach through the trainer ------------------------------------

  [[nodiscard]] Model& model() { return model_; }
  [[nodiscard]] torch::nn::Module& module() { return module_of(model_); }
  [[nodiscard]] const TrainingArguments& args() const { return args_; }
  [[nodiscard]] const TrainerState& state() const { return state_; }
  [[nodiscard]] TrainerControl& control() { return control_; }
  [[nodiscard]] torch::Device device() const { return device_; }
  [[nodiscard]] precision_type& precision() { return precision_; }
  [[nodiscard]] sharding_type& sharding() { return sharding_; }
  [[nodiscard]] loss_type& loss_policy() { return loss_; }
  [[nodiscard]] step_type& step() { return step_; }
  [[nodiscard]] callbacks_type& callbacks() { return callbacks_; }
  /// The optimizer and scheduler exist from the start of train() on.
  [[nodiscard]] optimizer_type& optimizer() { return optimizer_.value(); }
  [[nodiscard]] scheduler_type& lr_scheduler() { return scheduler_.value(); }
  [[nodiscard]] bool has_optimizer() const { return optimizer_.has_value(); }
  /// Batches in the evaluation running now (for progress displays).
  [[nodiscard]] std::size_t current_eval_batches() const { return current_eval_batches_; }
  /// The training loader while train() runs (HF hands callbacks its train_dataloader), else null.
  [[nodiscard]] train_loader_type* train_dataloader() { return current_train_loader_; }

  /// model->forward(batch).
  template <class B>
  decltype(auto) forward(const B& batch) {
    return trainpp::forward(model_, batch);
  }
  /// The loss slot applied to a batch (forward included) — HF's compute_loss.
  /// During training, a model with a token-level loss (concepts/token_loss.hpp) gives its summed token
  /// losses over the label tokens of the whole accumulation window (times the number of processes
  /// when that count is summed over them, as HF scales it: data parallelism then averages the
  /// gradients back), already normalised for the window (loss_is_scaled_for_accumulation()).
  /// With --label_smoothing_factor (and the default loss), as HF: the labels are taken out of the batch,
  /// the model runs without them, and label_smoothed_loss scores its logits (shifted for a causal LM;
  /// over the window's label tokens when the loss is token-level).
  template <class B>
  torch::Tensor compute_loss(const B& batch) {
    using Output = decltype(trainpp::forward(model_, batch));
    if constexpr (std::is_same_v<loss_type, ModelLoss>) {
      if (args_.label_smoothing_factor != 0 && has_smoothing_labels(batch)) {
        if constexpr (requires { { batch.without(std::vector<std::string>{"labels"}) } -> std::convertible_to<B>; }) {
          return smoothed_loss(trainpp::forward(model_, B(batch.without({"labels"}))), batch);
        } else {
          throw error("--label_smoothing_factor takes the labels out of the batch before the forward, as HF does; "
                      "this batch type has no without(names): use trainpp::Batch");
        }
      }
    }
    if constexpr (loss_is_token_level<B>()) {
      if (window_items_.defined()) {
        auto loss = trainpp::forward(model_, batch).loss_sum / window_items_;
        if (window_items_summed_over_processes_) loss = loss * static_cast<double>(sharding_.world_size());
        return loss;
      }
    }
    if constexpr (LossFromOutputs<loss_type, Output, B>) return loss_(trainpp::forward(model_, batch), batch);
    else return loss_(model_, batch);
  }
  /// True while the micro-batches of the current window take the token-level loss: their losses are
  /// normalised for the whole window, and the step must not divide them by the window size (HF's
  /// loss_is_scaled_for_ga).
  [[nodiscard]] bool loss_is_scaled_for_accumulation() const { return window_items_.defined(); }
  /// The label tokens of the current accumulation window (undefined outside a window, or when the
  /// model's loss is not token-level): transformers' num_items_in_batch.
  [[nodiscard]] const torch::Tensor& num_items_in_batch() const { return window_items_; }
  /// The loss slot applied to outputs already computed (a second forward only for a loss policy
  /// that drives the model itself).
  template <class Output, class B>
  torch::Tensor compute_loss(const Output& outputs, const B& batch) {
    if constexpr (std::is_same_v<loss_type, ModelLoss>) {
      if (args_.label_smoothing_factor != 0 && has_smoothing_labels(batch)) return smoothed_loss(outputs, batch);
    }
    if constexpr (LossFromOutputs<loss_type, Output, B>) return loss_(outputs, batch);
    else return loss_(model_, batch);
  }
  /// True when the batch carries every key of label_names (HF's has_labels).
  template <class B>
  [[nodiscard]] bool has_labels(const B& batch) const {
    for (const auto& name : label_names_)
      if (!batch.contains(name)) return false;
    return true;
  }
  /// The labels of a batch: the first of label_names.
  template <class B>
  [[nodiscard]] torch::Tensor labels_of(const B& batch) const {
    return batch.at(label_names_.front());
  }
  template <class Output>
  [[nodiscard]] torch::Tensor logits_of(const Output& outputs, bool has_labels) const {
    return trainpp::logits_of(outputs, has_labels);
  }

  /// What checkpoints write as training_args.json: every field of the arguments the Trainer was given
  /// (a Trainer built from a derived argument struct, as Seq2SeqTrainer is, sets its own fields here).
  [[nodiscard]] const nlohmann::json& saved_arguments() const { return saved_arguments_; }

  /// trainer_state.json's content, with TrainerControl among the stateful callbacks as HF writes it.
  [[nodiscard]] nlohmann::json state_json() const {
    auto j = state_.to_json();
    // Entries of callbacks this run lacks stay as the checkpoint had them; this run's replace theirs.
    const nlohmann::json states = callbacks_.states();
    for (const auto& [name, value] : states.items()) j["stateful_callbacks"][name] = value;
    j["stateful_callbacks"]["TrainerControl"] = control_.to_json();
    return j;
  }

 protected:
  /// For a Trainer built from a struct derived from TrainingArguments: the fields its checkpoints
  /// write as training_args.json.
  void set_saved_arguments(nlohmann::json arguments) { saved_arguments_ = std::move(arguments); }

 private:
  template <class... Named>
  static constexpr bool slots_ok() {
    if constexpr (!detail::check_slot_arguments<Named...>()) return false;
    else if constexpr (!detail::check_callbacks<user_callbacks_type>()) return false;
    else if constexpr (!detail::check_optimizer<optimizer_policy_type>()) return false;
    else if constexpr (!detail::check_scheduler<scheduler_policy_type, decltype(std::declval<optimizer_type&>().param_groups())>()) return false;
    else if constexpr (!detail::check_precision<precision_type, optimizer_type>()) return false;
    else if constexpr (!detail::check_sharding<sharding_type, optimizer_type, precision_type>()) return false;
    else if constexpr (!detail::check_dataset<train_dataset_type>("train_dataset") ||
                       !detail::check_dataset<eval_dataset_type>("eval_dataset")) return false;
    else if constexpr (!detail::check_metrics_fn<compute_metrics_type>()) return false;
    else {
      constexpr bool combination = detail::sharding_accepts_precision<sharding_type, precision_type>();
      static_assert(combination, "trainpp: this sharding policy does not accept this precision policy (its "
                                 "accepts_precision<P> is false for it): choose one it accepts among trainpp::FP32, "
                                 "trainpp::BF16, trainpp::FP16 and trainpp::MixedPrecision, or another sharding policy");
      if constexpr (!combination) return false;
      else if constexpr (has_train_dataset) return check_data_path<typename detail::unwrap_type<train_dataset_type>::type>();
      else if constexpr (has_eval_dataset) return check_data_path<typename detail::unwrap_type<eval_dataset_type>::type>();
      else return true;
    }
  }

  /// The checks that need a batch type: the data loader, the model's forward, the loss, the step.
  template <class D>
  static constexpr bool check_data_path() {
    if constexpr (!detail::check_data_loader<data_loader_policy_type, D>()) return false;
    else {
      using loader_t = decltype(std::declval<const data_loader_policy_type&>().train_loader(
          std::declval<const D&>(), std::declval<const TrainingArguments&>(), std::declval<torch::Device>()));
      using batch_t = std::remove_cvref_t<decltype(*std::declval<loader_t&>().next())>;
      constexpr bool callable = requires(Model& m, const batch_t& b) { m->forward(b); };
      static_assert(callable, "trainpp: the model's forward must accept the batch the data_loader slot "
                              "produces: model->forward(const Batch&)");
      if constexpr (!callable) return false;
      else {
        using output_t = decltype(std::declval<Model&>()->forward(std::declval<const batch_t&>()));
        if constexpr (!detail::check_loss<loss_type, Model, output_t, batch_t>()) return false;
        else if constexpr (detail::declares_num_items_in_batch<detail::model_impl_t<Model>> &&
                           !detail::check_token_loss<Model, batch_t, output_t>()) return false;
        else return detail::check_step<step_type, Trainer, batch_t>();
      }
    }
  }

  static callbacks_type make_callbacks(user_callbacks_type user) {
    if constexpr (is_callback_list<user_callbacks_type>::value)
      return std::move(user).prepend(DefaultFlow{}, ConsoleProgress{}, ReportTo{});
    else
      return callbacks_type{};
  }

  /// This process's share of the data: all of it, or its shard under data parallelism.
  [[nodiscard]] DataShard data_shard() const { return {sharding_.rank(), sharding_.world_size()}; }
  /// A loader from a policy that cannot shard: fine for one process, an error for several (each would
  /// see the whole data set, and evaluation would count every example world_size times).
  template <class L>
  L unsharded(L loader, std::string_view member) const {
    if (sharding_.world_size() > 1)
      throw error("the data_loader slot cannot shard data across the {} processes of this job: give it "
                  "{}(const Dataset&, const TrainingArguments&, torch::Device, trainpp::DataShard)",
                  sharding_.world_size(), member);
    return loader;
  }
  template <class D>
  auto train_loader_for(const D& dataset) {
    if constexpr (requires { data_loader_.train_loader(dataset, args_, device_, DataShard{}); })
      return data_loader_.train_loader(dataset, args_, device_, data_shard());
    else
      return unsharded(data_loader_.train_loader(dataset, args_, device_), "train_loader");
  }
  template <class D>
  auto eval_loader_for(const D& dataset) {
    if constexpr (requires { data_loader_.eval_loader(dataset, args_, device_, DataShard{}); })
      return data_loader_.eval_loader(dataset, args_, device_, data_shard());
    else
      return unsharded(data_loader_.eval_loader(dataset, args_, device_), "eval_loader");
  }

  /// Returns once every process of the job got here (nothing with one process).
  void synchronize_processes() {
    if constexpr (requires { sharding_.barrier(); })
      if (sharding_.world_size() > 1) sharding_.barrier();
  }

  /// Whether the model can be written by save_pretrained (the members models/pretrained.hpp's
  /// PretrainedModule asks for: GPT2LMHeadModel, LlamaForCausalLM).
  static constexpr bool saves_pretrained = requires(const detail::model_impl_t<Model>& m) {
    detail::model_impl_t<Model>::model_type;
    detail::model_impl_t<Model>::architecture;
    m.pretrained_config();
    m.tied_weights();
  };

  /// save_pretrained's files placed into `dir` itself, next to what it holds (HF's save_model writes
  /// into output_dir, which also holds the checkpoints: save_pretrained's own swap of the whole
  /// directory must not reach them). Without with_weights only config.json and generation_config.json
  /// are kept: the checkpoint's weights are the sharding policy's.
  void write_pretrained_files(const std::filesystem::path& dir, bool with_weights) {
    namespace fs = std::filesystem;
    fs::create_directories(dir);
    const auto scratch = dir / ".save_pretrained";
    fs::remove_all(scratch);
    save_pretrained(model_, scratch);  // trainpp::save_pretrained (models/pretrained.hpp), found by the model's namespace
    for (const auto& entry : fs::directory_iterator(scratch)) {
      const auto name = entry.path().filename().string();
      const bool weights = name.ends_with(".safetensors") || name.ends_with(".safetensors.index.json");
      if (weights && !with_weights) continue;
      fs::rename(entry.path(), dir / name);
    }
    fs::remove_all(scratch);
  }

  /// Whether micro-batches of type B take the token-level loss: the model counts its label tokens and
  /// the loss slot is the model's own (another loss policy returns a mean of its own).
  template <class B>
  static constexpr bool loss_is_token_level() {
    using Output = decltype(std::declval<Model&>()->forward(std::declval<const B&>()));
    if constexpr (!std::is_same_v<loss_type, ModelLoss>) return false;
    else return detail::check_token_loss<Model, B, Output>();
  }

  /// HF's get_batch_samples count: the label tokens of every micro-batch of the window, on the device
  /// (no host sync). Summed over the processes under --average_tokens_across_devices (the default, as
  /// in HF), so that every process divides by the same count. Undefined when the batches carry no
  /// labels (HF counts only then).
  template <class B>
  torch::Tensor count_window_items(const std::vector<B>& window) {
    window_items_summed_over_processes_ = false;
    if (window.empty() || !has_labels(window.front())) return {};
    const auto& impl = *model_;
    torch::Tensor count = impl.num_items_in_batch(window.front());
    for (std::size_t i = 1; i < window.size(); ++i) count = count + impl.num_items_in_batch(window[i]);
    if (args_.average_tokens_across_devices && sharding_.world_size() > 1) {
      if constexpr (requires(torch::Tensor& t) { sharding_.all_reduce_sum(t); }) {
        count = count.clone();
        sharding_.all_reduce_sum(count);
        window_items_summed_over_processes_ = true;
      } else {
        throw error("--average_tokens_across_devices needs a sharding slot with all_reduce_sum(torch::Tensor&) "
                    "under {} processes; set --average_tokens_across_devices false", sharding_.world_size());
      }
    }
    return count;
  }

  /// A loss summed on this process, averaged over the processes of the job (HF logs the mean of
  /// _nested_gather(tr_loss)); a host sync, as logging is.
  double mean_across_processes(const torch::Tensor& value) {
    if constexpr (requires(torch::Tensor& t) { sharding_.all_reduce_sum(t); }) {
      if (sharding_.world_size() > 1) {
        auto sum = value.detach().to(torch::kFloat64).clone();
        sharding_.all_reduce_sum(sum);
        return sum.item<double>() / static_cast<double>(sharding_.world_size());
      }
    }
    return value.item<double>();
  }

  /// HF smooths when the batch has "labels" (that key, whatever label_names say).
  template <class B>
  [[nodiscard]] static bool has_smoothing_labels(const B& batch) {
    if constexpr (requires { { batch.contains("labels") } -> std::convertible_to<bool>; }) return batch.contains("labels");
    else return false;
  }
  /// HF's label_smoother(outputs, labels, shift_labels, num_items_in_batch) on outputs computed without
  /// the labels.
  template <class Output, class B>
  torch::Tensor smoothed_loss(const Output& outputs, const B& batch) {
    const torch::Tensor logits = trainpp::logits_of(outputs, /*has_labels=*/false);
    if (!logits.defined()) throw error("--label_smoothing_factor needs the model's logits; its output has none");
    auto loss = label_smoothed_loss(logits, torch::Tensor(batch.at("labels")), args_.label_smoothing_factor,
                                    detail::is_causal_lm<Model>(), window_items_);
    if (window_items_.defined() && window_items_summed_over_processes_) loss = loss * static_cast<double>(sharding_.world_size());
    return loss;
  }

  /// HF's _track_num_input_tokens for one training micro-batch, without its host sync: the count stays
  /// on this process (on the device for the attention mask's) until store_counts().
  template <class B>
  void track_num_input_tokens(const B& batch) {
    const TokenCounting counting = args_.include_num_input_tokens_seen;
    if (counting == TokenCounting::no) return;
    const std::string_view name = detail::main_input_name<Model>();
    if constexpr (requires { { batch.contains(name) } -> std::convertible_to<bool>; { batch.at(name) } -> std::convertible_to<torch::Tensor>; }) {
      if (!batch.contains(name)) {
        if (!warned_token_counting_) warn("include_num_input_tokens_seen: the batch has no '{}' (the model's main input): no "
                                          "tokens are counted; declare `static constexpr const char* main_input_name` in the "
                                          "model's class to name another key", name);
        warned_token_counting_ = true;
        return;
      }
      if (counting == TokenCounting::non_padding) {
        if (batch.contains("attention_mask")) {
          const auto ones = torch::Tensor(batch.at("attention_mask")).sum(torch::kInt64);
          if (input_tokens_on_device_.defined()) input_tokens_on_device_.add_(ones);  // no new tensor per step
          else input_tokens_on_device_ = ones;
          return;
        }
        if (!warned_token_counting_)
          warn("include_num_input_tokens_seen non_padding: the batch has no attention_mask; counting all tokens");
        warned_token_counting_ = true;
      }
      input_tokens_on_host_ += torch::Tensor(batch.at(name)).numel();
    } else {
      if (!warned_token_counting_)
        warn("include_num_input_tokens_seen: the batch type offers no contains(name) / at(name); no tokens are counted");
      warned_token_counting_ = true;
    }
  }
  /// HF's store_flos, with the token count's sum: adds every process's pending floating-point operations
  /// and input tokens to state().total_flos and num_input_tokens_seen, in one reduction. Collective: the
  /// loop calls it on every process at the same points (before logging, evaluating or saving, and at
  /// the end).
  void store_counts() {
    const bool count_tokens = args_.include_num_input_tokens_seen != TokenCounting::no;
    if (!count_tokens && !counts_floating_point_ops()) return;
    // float64 holds every token count up to 2^53 exactly, and every backend sums it.
    auto counts = torch::tensor({static_cast<double>(input_tokens_on_host_), current_flos_},
                                torch::TensorOptions().dtype(torch::kFloat64)).to(device_);
    if (input_tokens_on_device_.defined()) counts.select(0, 0).add_(input_tokens_on_device_.to(torch::kFloat64));
    if constexpr (requires(torch::Tensor& t) { sharding_.all_reduce_sum(t); }) {
      if (sharding_.world_size() > 1) sharding_.all_reduce_sum(counts);
    }
    const auto summed = counts.cpu();
    if (count_tokens) state_.num_input_tokens_seen += std::llround(summed[0].item<double>());
    state_.total_flos += summed[1].item<double>();
    input_tokens_on_host_ = 0;
    input_tokens_on_device_ = torch::Tensor();
    current_flos_ = 0;
  }

  /// Whether floating_point_ops counts anything for this model: it declares floating_point_ops, or it
  /// is one of trainpp's transformers architectures (a module with model_type), whose count is HF's.
  static constexpr bool counts_floating_point_ops() {
    using Impl = detail::model_impl_t<Model>;
    return detail::declares_floating_point_ops<Impl> || requires { Impl::model_type; };
  }
  /// HF's Trainer.floating_point_ops for one training micro-batch: the module's own
  /// `double floating_point_ops(const Batch&) const`, else for trainpp's transformers architectures
  /// 6 x the main input's tokens x the parameters outside embeddings (HF's
  /// num_parameters(exclude_embeddings=True)), else 0. Host arithmetic only.
  template <class B>
  [[nodiscard]] double floating_point_ops(const B& batch) const {
    using Impl = detail::model_impl_t<Model>;
    if constexpr (detail::declares_floating_point_ops<Impl> && detail::check_model_members<Model>()) {
      return static_cast<double>(model_->floating_point_ops(batch));
    } else if constexpr (requires { Impl::model_type; } &&
                         requires { { batch.contains(std::string_view()) } -> std::convertible_to<bool>; }) {
      const std::string_view name = detail::main_input_name<Model>();
      if (!batch.contains(name)) return 0;
      return 6.0 * static_cast<double>(torch::Tensor(batch.at(name)).numel()) *
             static_cast<double>(non_embedding_parameters_);
    } else {
      return 0;
    }
  }

  /// HF's evaluation_loop header lines, at info level.
  void log_loop_start(std::string_view description, std::size_t num_examples) const {
    logger().info("***** Running {} *****", description);
    logger().info("  Num examples = {}", detail::thousands(static_cast<long long>(num_examples)));
    logger().info("  Batch size = {}", args_.per_device_eval_batch_size);
  }

  /// Calls every callback's hook for this event. Resetting the control flags that an event consumes
  /// (HF's CallbackHandler does it inside the call) is left to the call site, where it can be read.
  template <class Hook, class... A>
  void fire(Hook hook, A&&... a) {
    const TrainingArguments& args = args_;
    callbacks_.fire(hook, *this, args, state_, control_, a...);
  }

  /// HF's is_world_process_zero (rank 0 of the job: the one that writes output_dir) and
  /// is_local_process_zero (local rank 0 of each node, as the launcher numbers them).
  void set_process_flags() {
    state_.is_world_process_zero = sharding_.rank() == 0;
    state_.is_local_process_zero = sharding_.world_size() == 1 || local_process_index() == 0;
  }

  /// One batch of evaluation, with the sharding policy's forward-side calls around it (evaluation.hpp).
  template <class B>
  PredictionStep prediction_step(const B& batch, bool prediction_loss_only);

  /// HF's evaluation_loop: prediction steps over a loader; the mean loss weighted by batch size;
  /// predictions and labels concatenated on the CPU (padded with -100 when their lengths differ).
  template <class L>
  PredictionOutput evaluation_loop(L& loader, bool prediction_loss_only, std::string_view prefix);

  // The named steps of train() (loop.hpp).
  /// The sizes of a run, as HF's set_initial_training_values computes them.
  struct TrainingPlan {
    std::int64_t ga = 1;  ///< gradient_accumulation_steps
    std::int64_t num_examples = 0;
    std::int64_t total_train_batch_size = 0;  ///< per device x accumulation x processes
    std::int64_t updates_per_epoch = 1;
    std::int64_t max_steps = 0;
    std::int64_t num_train_epochs = 0;
    double num_train_samples = 0;
    std::int64_t steps_in_epoch = 0;  ///< micro-batches per epoch
  };
  template <class L>
  TrainingPlan training_plan(L& loader) const;
  void log_training_summary(const TrainingPlan& plan);
  template <class Params>
  double optimizer_step(const Params& parameters, torch::Tensor& grad_norm);
  TrainOutput train_metrics(const TrainingPlan& plan, const torch::Tensor& tr_loss, std::int64_t initial_global_step,
                            bool loss_sums_restored, std::chrono::steady_clock::time_point start_time);
  void maybe_log_save_evaluate(torch::Tensor& tr_loss, const torch::Tensor& grad_norm, double learning_rate);
  Metrics evaluate_during_training();

  // Checkpoints and resume (checkpointing.hpp).
  std::optional<std::filesystem::path> resolve_checkpoint(const std::optional<std::string>& value) const;
  void prepare_output_dir(bool resuming);
  TrainerState resumed_state(const std::filesystem::path& checkpoint);
  bool load_training_state(const std::filesystem::path& checkpoint, torch::Tensor& tr_loss);
  ProcessState process_state_of_other_world_size(const std::filesystem::path& checkpoint,
                                                 const std::filesystem::path& optimizer_path);
  template <class L>
  void skip_batches(L& loader, std::int64_t count);
  void save_checkpoint(const torch::Tensor& tr_loss);
  /// A checkpoint's weights into the model: model.safetensors, or what the sharding policy wrote.
  void load_checkpoint_weights(const std::filesystem::path& checkpoint) {
    if constexpr (requires { sharding_.load_model_files(module(), checkpoint); })
      sharding_.load_model_files(module(), checkpoint);
    else
      trainpp::load_model(module(), checkpoint / model_weights_name, /*strict=*/true);
  }
  /// Where this process's optimizer state goes: the policy's per-process file when it shards the
  /// optimizer, else optimizer.safetensors (written by the main process).
  [[nodiscard]] std::string optimizer_state_file() const {
    if constexpr (requires { { sharding_.optimizer_state_file(0) } -> std::convertible_to<std::optional<std::string>>; })
      if (auto name = sharding_.optimizer_state_file(sharding_.rank())) return *name;
    return std::string(optimizer_state_name);
  }
  void finish_checkpoints();

  // The current window's label tokens (count_window_items); undefined outside a window.
  torch::Tensor window_items_;
  bool window_items_summed_over_processes_ = false;
  Model model_;
  TrainingArguments args_;
  data_loader_policy_type data_loader_;
  loss_type loss_;
  optimizer_policy_type optimizer_policy_;
  scheduler_policy_type scheduler_policy_;
  precision_type precision_;
  sharding_type sharding_;
  callbacks_type callbacks_;
  step_type step_;
  train_dataset_type train_dataset_;
  eval_dataset_type eval_dataset_;
  compute_metrics_type compute_metrics_;

  torch::Device device_ = torch::kCPU;
  std::vector<std::string> label_names_ = args_.effective_label_names();
  std::optional<optimizer_type> optimizer_;
  std::optional<scheduler_type> scheduler_;
  TrainerState state_;
  TrainerControl control_;
  std::int64_t globalstep_last_logged_ = 0;
  std::int64_t scheduler_steps_ = 0;  ///< scheduler advances; fewer than global_step when steps were skipped
  double total_loss_scalar_ = 0;
  std::size_t current_eval_batches_ = 0;
  train_loader_type* current_train_loader_ = nullptr;
  bool in_train_ = false;  ///< inside train(): evaluation then keeps the model's dtype (HF's is_in_train)
  // include_num_input_tokens_seen: counts not yet summed over processes, the total when train() began
  // (tokens per second count this run's only, as HF's), and train()'s start for the training logs.
  std::int64_t input_tokens_on_host_ = 0;
  torch::Tensor input_tokens_on_device_;
  std::int64_t initial_num_input_tokens_seen_ = 0;
  std::chrono::steady_clock::time_point train_start_time_;
  double current_flos_ = 0;  ///< floating-point operations since the last store_counts() (HF's current_flos)
  /// --skip_memory_metrics false: the host memory of init, train, eval and test (HF's TrainerMemoryTracker).
  detail::MemoryTracker memory_tracker_;
  /// HF's num_parameters(exclude_embeddings=True), counted before the sharding policy splits the weights.
  std::int64_t non_embedding_parameters_ = 0;
  bool warned_token_counting_ = false;
  nlohmann::json saved_arguments_;  ///< set once args_ is finalized: finalize() fills in derived values
};

template <class Model, class... Named>
  requires(!detail::model_factory<Model>)
Trainer(Model, TrainingArguments, Named...) -> Trainer<Model, resolve_slots_t<Named...>>;
/// A model factory (HF's model_init) in the model's place: the Trainer holds what it returns.
template <detail::model_factory Factory, class... Named>
Trainer(Factory, TrainingArguments, Named...) -> Trainer<std::invoke_result_t<Factory&>, resolve_slots_t<Named...>>;

// ---- evaluation ---------------------------------------------------------------------------------

namespace detail {
/// Concatenates along dim 0, padding dim 1 with `pad` when lengths differ (HF's nested_concat).
[[nodiscard]] torch::Tensor concat_padded(std::vector<torch::Tensor>& parts, double pad = -100);

#if TRAINPP_DEFINITIONS
TRAINPP_INLINE torch::Tensor concat_padded(std::vector<torch::Tensor>& parts, double pad) {
  if (parts.empty()) return {};
  for (auto& p : parts)
    if (p.dim() == 0) p = p.unsqueeze(0);  // one value per batch: concatenate them as a vector
  if (parts.size() == 1) return parts.front();
  const auto dim = parts.front().dim();
  if (dim >= 2) {
    int64_t longest = 0;
    for (const auto& p : parts) longest = std::max(longest, p.size(1));
    for (auto& p : parts)
      if (p.size(1) != longest) {
        auto shape = p.sizes().vec();
        shape[1] = longest;
        auto padded = torch::full(shape, pad, p.options());
        padded.narrow(1, 0, p.size(1)).copy_(p);
        p = padded;
      }
  }
  return torch::cat(parts, 0);
}
#endif  // TRAINPP_DEFINITIONS
}  // namespace detail

}  // namespace trainpp

// The member definitions, each family of them in its own file.
#include <trainpp/evaluation.hpp>
#include <trainpp/checkpointing.hpp>
#include <trainpp/loop.hpp>
