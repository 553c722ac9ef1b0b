#pragma once
// The training loop: the one place that orders a step and an epoch. Every hook call site is here.
// Semantics follow transformers 5.x's Trainer._inner_training_loop / _run_epoch.

#include <trainpp/detail/crash_point.hpp>
#include <trainpp/detail/format.hpp>
#include <trainpp/io/checkpoint.hpp>
#include <trainpp/logging.hpp>
#include <trainpp/trainer.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>

namespace trainpp {

template <class Model, class P>
TrainOutput Trainer<Model, P>::train(const std::optional<std::string>& resume_from_checkpoint) {
  static_assert(has_train_dataset, "trainpp: train() needs the train_dataset slot (trainpp::train_dataset = ...)");
  (void)detail::crash_plan();  // a malformed TRAINPP_CRASH_AT fails here, before any work
  // HF's train(): the model switches its blocks to checkpointing itself (it knows which to wrap).
  // Before anything is written, so an unsupported model fails without side effects.
  if (args_.gradient_checkpointing) {
    if constexpr (requires(Model& m) { m->gradient_checkpointing_enable(); })
      model_->gradient_checkpointing_enable();
    else
      throw error("the model does not support --gradient_checkpointing (it has no gradient_checkpointing_enable())");
  }
  const std::optional<std::filesystem::path> resume = resolve_checkpoint(resume_from_checkpoint);
  prepare_output_dir(resume.has_value());

  const auto& dataset = detail::unwrap(train_dataset_);
  auto loader = train_loader_for(dataset);
  in_train_ = true;
  current_train_loader_ = &loader;
  struct LeaveTrain {
    bool& flag;
    train_loader_type*& loader;
    ~LeaveTrain() {
      flag = false;
      loader = nullptr;
    }
  } leave_train{in_train_, current_train_loader_};

  // ---- sizes, as HF's set_initial_training_values -----------------------------------------------
  const auto len_dataloader = static_cast<std::int64_t>(loader.num_batches());
  if (len_dataloader == 0)
    throw error("the training data yields no batch: {} examples, per_device_train_batch_size {}, "
                "dataloader_drop_last {}", loader.num_samples(), args_.per_device_train_batch_size,
                args_.dataloader_drop_last);
  const std::int64_t ga = args_.gradient_accumulation_steps;
  const std::int64_t total_train_batch_size = args_.per_device_train_batch_size * ga * sharding_.world_size();
  const std::int64_t updates_per_epoch = std::max<std::int64_t>(len_dataloader / ga + (len_dataloader % ga > 0), 1);
  const bool epoch_based = args_.max_steps < 0;
  const std::int64_t max_steps =
      epoch_based ? static_cast<std::int64_t>(std::ceil(args_.num_train_epochs * static_cast<double>(updates_per_epoch)))
                  : args_.max_steps;
  const std::int64_t num_train_epochs =
      epoch_based ? static_cast<std::int64_t>(std::ceil(args_.num_train_epochs))
                  : max_steps / updates_per_epoch + (max_steps % updates_per_epoch > 0);
  const double num_train_samples = epoch_based
      ? static_cast<double>(loader.num_samples()) * args_.num_train_epochs
      : static_cast<double>(max_steps * total_train_batch_size);
  const std::int64_t steps_in_epoch = len_dataloader;

  state_ = TrainerState{};
  state_.compute_steps(args_, max_steps);
  state_.train_batch_size = args_.per_device_train_batch_size;
  state_.epoch = 0.0;
  control_ = TrainerControl{};
  // Where a resumed run picks up (HF's _init_training_state): whole epochs from global_step, then the
  // micro-batches of the current epoch, which the loader skips without reading them.
  std::int64_t epochs_trained = 0;
  std::int64_t batches_to_skip = 0;
  if (resume) {
    // The weights first, before the optimizer holds references to the parameters.
    load_checkpoint_weights(*resume);
    state_ = resumed_state(*resume);
    epochs_trained = state_.global_step / updates_per_epoch;
    if (!args_.ignore_data_skip) batches_to_skip = (state_.global_step % updates_per_epoch) * ga;
  }
  // HF's init_training_references: this run's totals, whatever the checkpoint said.
  state_.max_steps = max_steps;
  state_.num_train_epochs = num_train_epochs;
  state_.is_world_process_zero = state_.is_local_process_zero = sharding_.rank() == 0;
  const std::int64_t initial_global_step = state_.global_step;

  // ---- optimizer and schedule (HF rebuilds them on each train()) ---------------------------------
  optimizer_.reset();
  scheduler_.reset();
  optimizer_.emplace(optimizer_policy_.create(module(), args_));
  // ZeRO: the optimizer keeps only this process's pieces of the parameters.
  if constexpr (requires { sharding_.shard_optimizer(*optimizer_); }) sharding_.shard_optimizer(*optimizer_);
  scheduler_.emplace(scheduler_policy_.create(args_, max_steps));
  auto& optimizer = *optimizer_;
  auto& scheduler = *scheduler_;
  scheduler_steps_ = 0;  // advances with each optimizer step that was not skipped
  scheduler.apply(optimizer.param_groups(), scheduler_steps_);
  const auto parameters = optimizer.parameters();

  module().train();
  optimizer.zero_grad();
  // The running training loss lives on the device; it reaches the host only on logging steps.
  auto tr_loss = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(device_));
  torch::Tensor grad_norm;
  total_loss_scalar_ = 0;
  globalstep_last_logged_ = state_.global_step;
  bool loss_sums_restored = false;
  if (resume) loss_sums_restored = load_training_state(*resume, tr_loss);
  double learning_rate = optimizer.param_groups().begin()->lr;
  const auto start_time = std::chrono::steady_clock::now();

  if (logger().enabled_for(LogLevel::info)) {
    std::int64_t trainable = 0;
    for (const auto& p : module().parameters())
      if (p.requires_grad()) trainable += p.numel();
    // HF's summary, with its wording, so that logs of both read alike.
    logger().info("***** Running training *****");
    logger().info("  Num examples = {}", detail::thousands(static_cast<std::int64_t>(loader.num_samples())));
    logger().info("  Num Epochs = {}", detail::thousands(num_train_epochs));
    logger().info("  Num update steps per epoch = {}", detail::thousands(updates_per_epoch));
    logger().info("  Instantaneous batch size per device = {}", detail::thousands(args_.per_device_train_batch_size));
    logger().info("  Total train batch size (w. parallel, distributed & accumulation) = {}", detail::thousands(total_train_batch_size));
    logger().info("  Gradient Accumulation steps = {}", ga);
    logger().info("  Total optimization steps = {}", detail::thousands(max_steps));
    logger().info("  Number of trainable parameters = {}", detail::thousands(trainable));
  }

  fire(hooks::on_train_begin);
  if (args_.eval_on_start) evaluate_during_training();

  // A run resumed from its final checkpoint has nothing left to train (HF would train one step more).
  const bool already_done = state_.global_step >= max_steps;
  for (std::int64_t epoch = epochs_trained; epoch < num_train_epochs && !already_done; ++epoch) {
    loader.set_epoch(epoch);
    fire(hooks::on_epoch_begin);

    // Windows of gradient_accumulation_steps micro-batches; the last window of an epoch holds the
    // remainder, and each of its losses is divided by that smaller count (HF's rule).
    std::int64_t remainder = steps_in_epoch % ga;
    if (remainder == 0) remainder = ga;
    std::int64_t step = -1;
    std::int64_t first_update = 0;
    if (epoch == epochs_trained && batches_to_skip > 0) {
      skip_batches(loader, batches_to_skip);
      step = batches_to_skip - 1;
      first_update = batches_to_skip / ga;
    }
    std::vector<typename std::remove_cvref_t<decltype(*loader.next())>> window;
    window.reserve(static_cast<std::size_t>(ga));

    for (std::int64_t update = first_update; update < updates_per_epoch; ++update) {
      const std::int64_t wanted = update != updates_per_epoch - 1 ? ga : remainder;
      window.clear();
      for (std::int64_t i = 0; i < wanted; ++i) {
        auto batch = loader.next();
        if (!batch) break;
        window.push_back(std::move(*batch));
      }
      const auto window_size = static_cast<std::int64_t>(window.size());

      for (std::int64_t i = 0; i < window_size; ++i) {
        ++step;
        const bool sync_step = (step + 1) % ga == 0 || step + 1 == steps_in_epoch;
        if (step % ga == 0) fire(hooks::on_step_begin);

        // Data parallelism communicates gradients in the last micro-batch's backward only (DDP's no_sync).
        if constexpr (requires { sharding_.set_gradient_sync(true); }) sharding_.set_gradient_sync(i == window_size - 1);
        torch::Tensor tr_loss_step = step_.training_step(*this, window[static_cast<std::size_t>(i)], window_size);
        // Gradient communication happens only at the end of the window (DDP no_sync elsewhere).
        sharding_.after_backward(module(), i == window_size - 1);

        if (args_.logging_nan_inf_filter) {
          // HF replaces a nan/inf step loss by the mean of the losses since the last log; done with a
          // device-side select, so no step pays a host sync to look at its loss.
          const double since_log = static_cast<double>(1 + state_.global_step - globalstep_last_logged_);
          tr_loss = torch::where(torch::isfinite(tr_loss_step), tr_loss + tr_loss_step, tr_loss + tr_loss / since_log);
        } else {
          tr_loss += tr_loss_step;
        }

        if (sync_step) {
          precision_.unscale_(optimizer);
          grad_norm = args_.max_grad_norm > 0 ? sharding_.clip_grad_norm(parameters, args_.max_grad_norm)
                                              : sharding_.clip_grad_norm(parameters, INFINITY);
          fire(hooks::on_pre_optimizer_step);
          const bool stepped = precision_.step(optimizer);
          sharding_.after_step(module());
          fire(hooks::on_optimizer_step);

          learning_rate = optimizer.param_groups().begin()->lr;  // the rate this update used
          if ((!precision_type::can_skip_steps || stepped) && !scheduler.steps_on_metric())
            scheduler.apply(optimizer.param_groups(), ++scheduler_steps_);

          optimizer.zero_grad();
          state_.global_step += 1;
          state_.epoch = static_cast<double>(epoch) + static_cast<double>(step + 1) / static_cast<double>(steps_in_epoch);
          detail::crash_point("step", state_.global_step);
          fire(hooks::on_step_end);
          maybe_log_save_evaluate(tr_loss, grad_norm, learning_rate);
        } else {
          fire(hooks::on_substep_end);
          detail::crash_point("substep", state_.global_step);
        }
        if (control_.should_epoch_stop || control_.should_training_stop) break;
      }
      if (control_.should_epoch_stop || control_.should_training_stop) break;
    }

    if (step < 0) {
      warn("the epoch yielded no batch; stopping training at step {}", state_.global_step);
      control_.should_training_stop = true;
    }
    fire(hooks::on_epoch_end);
    maybe_log_save_evaluate(tr_loss, grad_norm, learning_rate);
    if (control_.should_training_stop) break;
  }

  // ---- the end, as HF's _finalize_training ---------------------------------------------------------
  total_loss_scalar_ += mean_across_processes(tr_loss);
  const auto steps_trained = state_.global_step - initial_global_step;
  // With the loss sums restored from the checkpoint, train_loss covers the whole run, as it would
  // have without the interruption (HF averages over the steps since the resume only).
  const auto steps_in_loss = loss_sums_restored ? state_.global_step : steps_trained;
  const double train_loss = total_loss_scalar_ / std::max<double>(static_cast<double>(steps_in_loss), 0.001);
  Metrics metrics = speed_metrics("train", start_time,
                                  num_train_samples * static_cast<double>(steps_trained) /
                                      static_cast<double>(std::max<std::int64_t>(state_.max_steps, 1)),
                                  static_cast<double>(steps_trained));
  metrics["total_flos"] = state_.total_flos;
  metrics["train_loss"] = train_loss;
  log(metrics);
  finish_checkpoints();
  fire(hooks::on_train_end);
  return TrainOutput{state_.global_step, train_loss, metrics};
}

template <class Model, class P>
void Trainer<Model, P>::maybe_log_save_evaluate(torch::Tensor& tr_loss, const torch::Tensor& grad_norm,
                                                double learning_rate) {
  if (control_.should_log && state_.global_step > globalstep_last_logged_) {
    // The host syncs of a logging step: the user asked for these numbers.
    const double tr_loss_scalar = mean_across_processes(tr_loss);
    tr_loss.zero_();
    Metrics logs;
    logs["loss"] = tr_loss_scalar / static_cast<double>(state_.global_step - globalstep_last_logged_);
    if (grad_norm.defined()) logs["grad_norm"] = grad_norm.item<double>();
    logs["learning_rate"] = learning_rate;
    total_loss_scalar_ += tr_loss_scalar;
    globalstep_last_logged_ = state_.global_step;
    log(logs);
  }
  if (control_.should_evaluate) {
    const Metrics metrics = evaluate_during_training();
    bool is_new_best = false;
    if (args_.metric_for_best_model) {
      auto name = *args_.metric_for_best_model;
      if (!name.starts_with("eval_")) name = "eval_" + name;
      const auto it = metrics.find(name);
      if (it == metrics.end())
        throw error("The metric_for_best_model '{}' is not among the evaluation metrics ({}); set "
                    "--metric_for_best_model to one of them", name, fmt::join(std::views::keys(metrics), ", "));
      const double value = it->second;
      const bool greater = args_.greater_is_better.value_or(true);
      if (!state_.best_metric || (greater ? value > *state_.best_metric : value < *state_.best_metric)) {
        state_.best_metric = value;
        // HF records the step only when checkpoints are saved: it names the best checkpoint.
        if (args_.save_strategy != SaveStrategy::no) state_.best_global_step = state_.global_step;
        is_new_best = true;
      }
    }
    if (args_.save_strategy == SaveStrategy::best) control_.should_save = is_new_best;
  }
  if (control_.should_save) {
    save_checkpoint(tr_loss);
    fire(hooks::on_save);
  }
}

template <class Model, class P>
Metrics Trainer<Model, P>::evaluate_during_training() {
  if constexpr (!has_eval_dataset) {
    // The constructor refuses an eval strategy without an eval dataset; a callback forcing
    // should_evaluate can still get here.
    throw error("evaluation was requested during training, but the Trainer has no eval_dataset");
  } else {
  Metrics metrics = evaluate();
  if (scheduler_ && scheduler_->steps_on_metric()) {
    auto name = args_.metric_for_best_model.value_or("loss");
    if (!name.starts_with("eval_")) name = "eval_" + name;
    const auto it = metrics.find(name);
    if (it == metrics.end())
      throw error("reduce_lr_on_plateau steps on '{}', which evaluation did not return", name);
    scheduler_->step_on_metric(it->second, optimizer_->param_groups());
  }
  return metrics;
  }
}

// ---- checkpoints --------------------------------------------------------------------------------

/// The checkpoint directory train() resumes from: nullopt for none ("false", or nothing given), the
/// newest complete checkpoint in output_dir for "true", else the path given, which must hold a
/// complete checkpoint.
template <class Model, class P>
std::optional<std::filesystem::path> Trainer<Model, P>::resolve_checkpoint(const std::optional<std::string>& value) const {
  if (!value || value->empty() || *value == "false" || *value == "False") return std::nullopt;
  if (*value == "true" || *value == "True") {
    auto last = last_checkpoint(args_.output_dir);
    if (!last)
      throw error("No valid checkpoint found in output directory ({}) to resume from (resume_from_checkpoint "
                  "true)", args_.output_dir);
    return last;
  }
  const std::filesystem::path dir = *value;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw error("Can't find a valid checkpoint at {}: it is not a directory", dir.string());
  if (!is_complete_checkpoint(dir))
    throw error("Can't find a valid checkpoint at {}: it lacks {} or {}", dir.string(), trainer_state_name,
                model_weights_name);
  return dir;
}

/// Before a run writes into output_dir: removes what interrupted saves left there, and refuses to
/// start a fresh run on top of another run's checkpoints unless told to overwrite them (HF's example
/// scripts refuse the same way; the Trainer itself would mix the two runs' checkpoints).
template <class Model, class P>
void Trainer<Model, P>::prepare_output_dir(bool resuming) {
  if (!state_.is_world_process_zero) return;
  // Created up front, as HF's Trainer does: an output_dir that cannot exist fails now, not at the first
  // checkpoint after an hour of training.
  std::error_code ec;
  std::filesystem::create_directories(args_.output_dir, ec);
  if (ec) throw error("cannot create output_dir {}: {}", args_.output_dir, ec.message());
  if (args_.save_strategy == SaveStrategy::no) return;
  remove_stale_staging(args_.output_dir);
  if (resuming) return;
  const auto existing = sorted_checkpoints(args_.output_dir);
  if (existing.empty()) return;
  if (!args_.overwrite_output_dir)
    throw error("Output directory ({}) already holds checkpoints ({} ... {}). Use --resume_from_checkpoint true "
                "to continue that run, or --overwrite_output_dir to delete them and start over.",
                args_.output_dir, existing.front().filename().string(), existing.back().filename().string());
  for (const auto& dir : existing) {
    note("overwrite_output_dir: deleting {}", dir.string());
    remove_dir_atomic(dir);
  }
}

/// trainer_state.json of the checkpoint, checked against this run (HF's _init_training_state).
template <class Model, class P>
TrainerState Trainer<Model, P>::resumed_state(const std::filesystem::path& checkpoint) {
  const auto path = checkpoint / trainer_state_name;
  TrainerState loaded = read_trainer_state(path);
  if (loaded.best_model_checkpoint && !std::filesystem::is_directory(*loaded.best_model_checkpoint)) {
    warn("The best checkpoint {} recorded in the resumed state does not exist anymore. Ignoring it for this run.",
         *loaded.best_model_checkpoint);
    loaded.best_model_checkpoint.reset();
  }
  // HF's compare_trainer_and_checkpoint_args: differences are allowed, but said.
  std::vector<std::string> differences;
  auto compare = [&](const char* name, std::int64_t now, std::int64_t saved) {
    if (now != saved) differences.push_back(fmt::format("{}: {} (from args) != {} (from {})", name, now, saved, path.string()));
  };
  TrainerState now;
  now.compute_steps(args_, loaded.max_steps);
  compare("logging_steps", now.logging_steps, loaded.logging_steps);
  compare("eval_steps", now.eval_steps, loaded.eval_steps);
  compare("save_steps", now.save_steps, loaded.save_steps);
  compare("per_device_train_batch_size", args_.per_device_train_batch_size, loaded.train_batch_size);
  if (!differences.empty())
    warn("The following arguments do not match the ones in the checkpoint's trainer_state.json (the checkpoint's "
         "logging/eval/save steps stay in force, as in HF):\n\t{}", fmt::join(differences, "\n\t"));
  if (args_.restore_callback_states_from_checkpoint) {
    if (auto control = control_from_state(loaded, path.string())) control_ = *control;
    const auto unclaimed = callbacks_.load_states(loaded.stateful_callbacks, path.string());
    if (!unclaimed.empty())
      warn("Checkpoint included callbacks not included in current configuration. Ignoring. ({})",
           fmt::join(unclaimed, ", "));
  }
  note("resuming training from {} at global step {}", checkpoint.string(), loaded.global_step);
  return loaded;
}

/// Optimizer, schedule, loss scaler, random generators and the loop's running sums from a checkpoint.
/// Returns whether the loss sums were restored (checkpoints hold them; a run resumed from a
/// model-only checkpoint is refused before this point).
template <class Model, class P>
bool Trainer<Model, P>::load_training_state(const std::filesystem::path& checkpoint, torch::Tensor& tr_loss) {
  const auto process_file = checkpoint / process_state_name(sharding_.rank(), sharding_.world_size());
  const auto optimizer_path = checkpoint / optimizer_state_file();
  if (!std::filesystem::exists(optimizer_path) && !std::filesystem::exists(process_file)) {
    // A checkpoint saved with save_only_model, or one from another world size.
    const auto others = std::filesystem::exists(checkpoint / "process_state.safetensors") ||
                        std::filesystem::exists(checkpoint / "process_state_0.safetensors");
    if (others)
      throw error("{} was saved by a run with a different number of processes than this one ({}): its optimizer "
                  "and random states cannot be split or merged", checkpoint.string(), sharding_.world_size());
    throw error("{} holds the model only (saved with save_only_model): it has no optimizer, scheduler or random "
                "state to resume training from; load its weights with trainpp::load_model instead",
                checkpoint.string());
  }

  // This process's state first: a checkpoint of another number of processes is refused before any
  // optimizer piece is read (a sharded optimizer's pieces would not fit).
  if (!std::filesystem::exists(process_file))
    throw error("{} lacks {}: it was saved by a run with a different number of processes than this one ({})",
                checkpoint.string(), process_file.filename().string(), sharding_.world_size());
  const ProcessState process = load_process_state(process_file);
  if (process.world_size != sharding_.world_size() || process.rank != sharding_.rank())
    throw error("{} is rank {} of {} processes; this process is rank {} of {}", process_file.string(), process.rank,
                process.world_size, sharding_.rank(), sharding_.world_size());

  // The optimizer: per-parameter state, then each group's learning rate as it was.
  if constexpr (requires(optimizer_type& o, const OptimizerState& st) { o.load_state(st); }) {
    const auto& path = optimizer_path;
    if (!std::filesystem::exists(path))
      throw error("{} lacks {}: it was not saved under this sharding policy (or by a run with another number of "
                  "processes)", checkpoint.string(), path.filename().string());
    auto saved = load_optimizer_state(path);
    auto& groups = optimizer_->param_groups();
    const auto group_count = static_cast<std::size_t>(std::ranges::distance(groups));
    if (saved.groups.size() != group_count)
      throw error("{}: {} parameter groups, this run's optimizer has {}", path.string(), saved.groups.size(), group_count);
    std::size_t g = 0;
    for (auto& group : groups) {
      if (saved.group_sizes[g] != group.params.size())
        throw error("{}: parameter group {} holds {} parameters, this run's holds {} (is it the same model?)",
                    path.string(), g, saved.group_sizes[g], group.params.size());
      if (!saved.groups[g].names.empty() && !group.names.empty() && saved.groups[g].names != group.names)
        throw error("{}: parameter group {} names other parameters than this run's (first difference: {})",
                    path.string(), g, [&] {
                      for (std::size_t i = 0; i < group.names.size(); ++i)
                        if (group.names[i] != saved.groups[g].names[i])
                          return fmt::format("{} vs {}", saved.groups[g].names[i], group.names[i]);
                      return std::string("?");
                    }());
      ++g;
    }
    try {
      optimizer_->load_state(saved.state);
    } catch (const Error& e) {
      throw error("{}: {}", path.string(), e.what());
    }
    g = 0;
    for (auto& group : groups) {
      group.lr = saved.groups[g].lr;
      group.initial_lr = saved.groups[g].initial_lr;
      ++g;
    }
  } else {
    throw error("this Trainer's optimizer has no load_state(const OptimizerState&): it cannot resume from {}",
                checkpoint.string());
  }

  if constexpr (requires(scheduler_type& s, const nlohmann::json& j) { s.load_state(j); }) {
    const auto path = checkpoint / scheduler_state_name;
    try {
      scheduler_->load_state(read_json_file(path));
    } catch (const Error& e) {
      throw error("{}: {}", path.string(), e.what());
    }
  }
  if constexpr (requires(precision_type& p, const nlohmann::json& j) { p.load_state(j); }) {
    const auto path = checkpoint / scaler_state_name;
    if (std::filesystem::exists(path)) {
      try {
        precision_.load_state(read_json_file(path));
      } catch (const Error& e) {
        throw error("{}: {}", path.string(), e.what());
      }
    } else if (!precision_.state().is_null()) {
      warn("{} has no {} (it was not saved by an fp16 run): the loss scale starts from its initial value",
           checkpoint.string(), scaler_state_name);
    }
  }

  restore_rng_state(process, process_file.string());
  tr_loss.copy_(process.tr_loss);
  total_loss_scalar_ = process.total_loss_scalar;
  globalstep_last_logged_ = process.globalstep_last_logged;
  scheduler_steps_ = process.scheduler_steps;
  if (globalstep_last_logged_ > state_.global_step || scheduler_steps_ > state_.global_step)
    throw error("{}: its loop counters (last logged step {}, scheduler steps {}) are past the checkpoint's global "
                "step {}", process_file.string(), globalstep_last_logged_, scheduler_steps_, state_.global_step);
  return true;
}

/// Moves the loader past the batches a resumed epoch already trained on: in O(1) when the loader can
/// jump (skip_to), else by drawing them (what HF does for every loader).
template <class Model, class P>
template <class L>
void Trainer<Model, P>::skip_batches(L& loader, std::int64_t count) {
  if constexpr (requires { loader.skip_to(std::size_t{}); }) {
    loader.skip_to(static_cast<std::size_t>(count));
  } else {
    for (std::int64_t i = 0; i < count; ++i)
      if (!loader.next()) break;
  }
}

/// {output_dir}/checkpoint-{global_step}/ (see io/checkpoint.hpp for its files), written into a
/// staging directory and published by one rename; then HF's rotation. A crash at any moment leaves
/// every earlier checkpoint intact and never a partial checkpoint-N.
template <class Model, class P>
void Trainer<Model, P>::save_checkpoint(const torch::Tensor& tr_loss) {
  const std::filesystem::path out = args_.output_dir;
  const auto final_dir = out / checkpoint_dir_name(state_.global_step);
  const bool main_process = state_.is_world_process_zero;

  // HF's _save_checkpoint: the best checkpoint is the one of best_global_step, once it exists.
  if (args_.save_strategy != SaveStrategy::no && state_.best_global_step) {
    const auto best = out / checkpoint_dir_name(*state_.best_global_step);
    if (*state_.best_global_step == state_.global_step || std::filesystem::is_directory(best))
      state_.best_model_checkpoint = best.string();
  }

  // Every process's random state and loss sums (HF's rng_state_<rank>.pth), for an exact resume.
  const int world = sharding_.world_size();
  auto process_state = [&] {
    ProcessState process = capture_rng_state();
    process.tr_loss = tr_loss;
    process.total_loss_scalar = total_loss_scalar_;
    process.globalstep_last_logged = globalstep_last_logged_;
    process.scheduler_steps = scheduler_steps_;
    process.rank = sharding_.rank();
    process.world_size = world;
    return process;
  };
  // What each process writes itself: its random state and loss sums, and under a sharded policy its
  // optimizer pieces and its share of the model (the policy's save_model_files is collective: every
  // process calls it, in the same place). The other ranks write into a directory named like a staging
  // directory (so that an interrupted save leaves nothing remove_stale_staging misses); rank 0 moves
  // their files into the checkpoint before publishing it. Two barriers: every file is written before
  // rank 0 collects them, and the checkpoint is published before any rank goes on (and might read
  // it, as load_best_model_at_end does).
  auto rank_dir = [&](int rank) { return out / fmt::format(".tmp-{}-rank{}", final_dir.filename().string(), rank); };
  const std::string optimizer_file = optimizer_state_file();
  const bool optimizer_per_process = optimizer_file != optimizer_state_name;
  auto write_own_files = [&](const std::filesystem::path& dir) {
    if constexpr (requires { sharding_.save_model_files(module(), dir, main_process); })
      sharding_.save_model_files(module(), dir, main_process);
    else if (main_process)
      trainpp::save_model(module(), dir);
    if (args_.save_only_model) return;
    if (optimizer_per_process) {
      const auto& groups = optimizer_->param_groups();
      save_optimizer_state(dir / optimizer_file, optimizer_->state(), std::vector<ParamGroup>(groups.begin(), groups.end()));
    }
    save_process_state(dir / process_state_name(sharding_.rank(), world), process_state());
  };
  if (!main_process) {
    if (world > 1) {
      const auto dir = rank_dir(sharding_.rank());
      std::filesystem::create_directories(dir);
      write_own_files(dir);
    }
    synchronize_processes();
    synchronize_processes();
    return;
  }
  const auto staging = make_staging_dir(final_dir);
  try {
    write_own_files(staging);
    if (!args_.save_only_model) {
      if constexpr (requires(const optimizer_type& o) { { o.state() } -> std::convertible_to<OptimizerState>; }) {
        if (!optimizer_per_process) {
          const auto& groups = optimizer_->param_groups();
          save_optimizer_state(staging / optimizer_state_name, optimizer_->state(),
                               std::vector<ParamGroup>(groups.begin(), groups.end()));
        }
      } else {
        warn("checkpoint {}: the optimizer has no state() to save; training cannot resume from it exactly",
             final_dir.string());
      }
      if constexpr (requires(const scheduler_type& s) { { s.state() } -> std::convertible_to<nlohmann::json>; })
        write_file_atomic(staging / scheduler_state_name, scheduler_->state().dump(2) + "\n");
      detail::crash_point("checkpoint", state_.global_step);
      if constexpr (requires(const precision_type& p) { { p.state() } -> std::convertible_to<nlohmann::json>; }) {
        const nlohmann::json scaler = precision_.state();
        if (!scaler.is_null()) write_file_atomic(staging / scaler_state_name, scaler.dump(2) + "\n");
      }
    }
    write_file_atomic(staging / trainer_state_name, state_json().dump(2) + "\n");
    write_file_atomic(staging / training_args_name, saved_arguments_.dump(2) + "\n");
    synchronize_processes();
    for (int rank = 1; rank < world; ++rank) {
      const auto from = rank_dir(rank);
      if (!std::filesystem::is_directory(from) ||
          (!args_.save_only_model && !std::filesystem::exists(from / process_state_name(rank, world))))
        throw error("checkpoint {}: rank {} did not write its state into {}", final_dir.string(), rank, from.string());
      for (const auto& entry : std::filesystem::directory_iterator(from))
        std::filesystem::rename(entry.path(), staging / entry.path().filename());
      std::filesystem::remove(from);
    }
    commit_dir(staging, final_dir);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(staging, ec);  // the failed attempt; earlier checkpoints are untouched
    throw;
  }
  synchronize_processes();
  detail::crash_point("rotate", state_.global_step);
  rotate_checkpoints(out, args_.save_total_limit, state_.best_model_checkpoint);
}

/// The end of training for checkpoints (HF's _finalize_training): load the best model when asked, and
/// with save_total_limit 1 keep only the best checkpoint.
template <class Model, class P>
void Trainer<Model, P>::finish_checkpoints() {
  if (args_.load_best_model_at_end && state_.best_model_checkpoint) {
    note("Loading best model from {} (score: {}).", *state_.best_model_checkpoint,
         state_.best_metric ? detail::python_float(*state_.best_metric) : std::string("None"));
    load_checkpoint_weights(*state_.best_model_checkpoint);
  }
  if (state_.is_world_process_zero && state_.best_model_checkpoint && args_.save_total_limit == 1) {
    const auto best = std::filesystem::path(*state_.best_model_checkpoint).lexically_normal();
    for (const auto& dir : sorted_checkpoints(args_.output_dir, state_.best_model_checkpoint))
      if (dir.lexically_normal() != best) {
        note("Deleting older checkpoint [{}] due to args.save_total_limit", dir.string());
        remove_dir_atomic(dir);
      }
  }
}

}  // namespace trainpp
