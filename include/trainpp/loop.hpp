#pragma once
// The training loop: the one place that orders a step and an epoch. Semantics follow transformers
// 5.x's Trainer._inner_training_loop / _run_epoch. Read top to bottom, train() does:
//
//   resume? weights, trainer_state.json           (checkpointing.hpp: how; here: when)
//   optimizer slot .create, sharding .shard_optimizer, scheduler slot .create
//   on_train_begin
//   per epoch:  loader.set_epoch, on_epoch_begin, skip the batches a resumed epoch already trained
//     per window of gradient_accumulation_steps micro-batches (the last window of an epoch: the rest):
//       a token-level loss (concepts/token_loss.hpp): the window's label tokens counted (HF's
//         num_items_in_batch), summed over the processes under --average_tokens_across_devices
//       on_step_begin (flags log/evaluate/save cleared first)
//       per micro-batch:
//         sharding .set_gradient_sync(last of window)   data parallelism: communicate in the last only
//         sharding .before_forward                      FullShard: gather the root unit
//         step slot .training_step                      forward + loss under the precision policy's
//                                                       context, / window size (a token-level loss:
//                                                       / the window's label tokens instead), backward
//         sharding .after_backward(last of window)      allreduce / reduce-scatter
//         running loss += step loss (nan/inf filter on the device)
//         not last: on_substep_end
//       last micro-batch of the window:
//         optimizer_step: precision .unscale_, sharding .agree_on_overflow (through precision
//           .share_found_inf: ZeRO's processes agree on an overflow), sharding .clip_grad_norm, on_pre_optimizer_step,
//           precision .step (may skip on overflow), sharding .after_step, on_optimizer_step,
//           scheduler step unless skipped, zero_grad;
//         global_step += 1, on_step_end,
//         log (on_log) / evaluate (on_evaluate) / save checkpoint (on_save) as the flags say
//     on_epoch_end, log / evaluate / save as the flags say
//   train metrics (train_metrics) logged, best model loaded and checkpoints rotated, on_train_end
//
// The sizes of the run (training_plan), the summary log (log_training_summary) and the end of a
// window (optimizer_step) are named steps below train(); every other call is in train() itself.
//
// Evaluation batches go through Trainer::prediction_step (evaluation.hpp): sharding .before_forward,
// step slot .prediction_step, sharding .after_forward. No policy calls another: every call above is
// made from this file or from that one.

#include <trainpp/detail/crash_point.hpp>
#include <trainpp/detail/format.hpp>
#include <trainpp/logging.hpp>
#include <trainpp/trainer.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>

namespace trainpp {

// Long on purpose: the loop's event order (the comment at the top of this file) reads top to bottom here.
template <class Model, class P>
TrainOutput Trainer<Model, P>::train(const std::optional<std::string>& resume_from_checkpoint) {
  static_assert(has_train_dataset, "trainpp: train() needs the train_dataset slot (trainpp::train_dataset = ...)");
  (void)detail::crash_plan();  // a malformed TRAINPP_CRASH_AT fails here, before any work
  memory_tracker_.start("train");
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
  const TrainingPlan plan = training_plan(loader);
  const std::int64_t ga = plan.ga;
  const std::int64_t updates_per_epoch = plan.updates_per_epoch;
  const std::int64_t max_steps = plan.max_steps;
  const std::int64_t num_train_epochs = plan.num_train_epochs;
  const std::int64_t steps_in_epoch = plan.steps_in_epoch;

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
  set_process_flags();
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
  train_start_time_ = start_time;
  initial_num_input_tokens_seen_ = state_.num_input_tokens_seen;
  input_tokens_on_host_ = 0;
  input_tokens_on_device_ = torch::Tensor();
  current_flos_ = 0;

  log_training_summary(plan);

  control_.should_training_stop = false;
  fire(hooks::on_train_begin);
  if (args_.eval_on_start) evaluate_during_training();

  // A run resumed from its final checkpoint has nothing left to train (HF would train one step more).
  const bool already_done = state_.global_step >= max_steps;
  for (std::int64_t epoch = epochs_trained; epoch < num_train_epochs && !already_done; ++epoch) {
    loader.set_epoch(epoch);
    control_.should_epoch_stop = false;
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
      // A token-level loss is normalised by the label tokens of the whole window (HF's num_items_in_batch),
      // counted before its first forward.
      if constexpr (loss_is_token_level<typename decltype(window)::value_type>()) window_items_ = count_window_items(window);

      for (std::int64_t i = 0; i < window_size; ++i) {
        ++step;
        const bool sync_step = (step + 1) % ga == 0 || step + 1 == steps_in_epoch;
        if (step % ga == 0) {
          // A new optimizer step: what the last one asked for (log, evaluate, save) is forgotten.
          control_.should_log = control_.should_evaluate = control_.should_save = false;
          fire(hooks::on_step_begin);
        }

        // Data parallelism communicates gradients in the last micro-batch's backward only (DDP's no_sync).
        if constexpr (requires { sharding_.set_gradient_sync(true); }) sharding_.set_gradient_sync(i == window_size - 1);
        // The sharding policy's calls around the step policy's forward and backward are made here, not
        // by the step, so that a step of the user's own cannot leave them out: gather (FullShard), then
        // forward + loss + backward (the step policy), then reduce. Gradients are communicated only at
        // the end of the window (DDP's no_sync elsewhere); ZeRO reduce-scatters every micro-batch.
        sharding_.before_forward(module());
        torch::Tensor tr_loss_step = step_.training_step(*this, window[static_cast<std::size_t>(i)], window_size);
        sharding_.after_backward(module(), i == window_size - 1);
        track_num_input_tokens(window[static_cast<std::size_t>(i)]);
        if constexpr (counts_floating_point_ops()) current_flos_ += floating_point_ops(window[static_cast<std::size_t>(i)]);

        if (args_.logging_nan_inf_filter) {
          // HF replaces a nan/inf step loss by the mean of the losses since the last log; done with a
          // device-side select, so no step pays a host sync to look at its loss.
          const double since_log = static_cast<double>(1 + state_.global_step - globalstep_last_logged_);
          tr_loss = torch::where(torch::isfinite(tr_loss_step), tr_loss + tr_loss_step, tr_loss + tr_loss / since_log);
        } else {
          tr_loss += tr_loss_step;
        }

        if (sync_step) {
          window_items_ = torch::Tensor();  // what runs from here on (evaluation, saving) is outside the window
          // unscale, clip, on_pre_optimizer_step, step, after_step, on_optimizer_step, schedule, zero_grad
          learning_rate = optimizer_step(parameters, grad_norm);
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
      window_items_ = torch::Tensor();
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
  store_counts();
  TrainOutput output = train_metrics(plan, tr_loss, initial_global_step, loss_sums_restored, start_time);
  memory_tracker_.stop_and_update("train", &output.metrics);
  log(output.metrics);
  finish_checkpoints();
  fire(hooks::on_train_end);
  return output;
}

/// HF's set_initial_training_values: the sizes of the run, from the loader and the arguments.
template <class Model, class P>
template <class L>
typename Trainer<Model, P>::TrainingPlan Trainer<Model, P>::training_plan(L& loader) const {
  const auto len_dataloader = static_cast<std::int64_t>(loader.num_batches());
  if (len_dataloader == 0)
    throw error("the training data yields no batch: {} examples, per_device_train_batch_size {}, "
                "dataloader_drop_last {}", loader.num_samples(), args_.per_device_train_batch_size,
                args_.dataloader_drop_last);
  TrainingPlan plan;
  const std::int64_t ga = args_.gradient_accumulation_steps;
  plan.ga = ga;
  plan.num_examples = static_cast<std::int64_t>(loader.num_samples());
  plan.total_train_batch_size = args_.per_device_train_batch_size * ga * sharding_.world_size();
  plan.updates_per_epoch = std::max<std::int64_t>(len_dataloader / ga + (len_dataloader % ga > 0), 1);
  const bool epoch_based = args_.max_steps < 0;
  plan.max_steps = epoch_based ? static_cast<std::int64_t>(
                                     std::ceil(args_.num_train_epochs * static_cast<double>(plan.updates_per_epoch)))
                               : args_.max_steps;
  plan.num_train_epochs = epoch_based ? static_cast<std::int64_t>(std::ceil(args_.num_train_epochs))
                                      : plan.max_steps / plan.updates_per_epoch +
                                            (plan.max_steps % plan.updates_per_epoch > 0);
  plan.num_train_samples = epoch_based ? static_cast<double>(loader.num_samples()) * args_.num_train_epochs
                                       : static_cast<double>(plan.max_steps * plan.total_train_batch_size);
  plan.steps_in_epoch = len_dataloader;
  return plan;
}

/// HF's "***** Running training *****" summary, with its wording, so that logs of both read alike.
template <class Model, class P>
void Trainer<Model, P>::log_training_summary(const TrainingPlan& plan) {
  if (!logger().enabled_for(LogLevel::info)) return;
  std::int64_t trainable = 0;
  for (const auto& p : module().parameters())
    if (p.requires_grad()) trainable += p.numel();
  logger().info("***** Running training *****");
  logger().info("  Num examples = {}", detail::thousands(plan.num_examples));
  logger().info("  Num Epochs = {}", detail::thousands(plan.num_train_epochs));
  logger().info("  Num update steps per epoch = {}", detail::thousands(plan.updates_per_epoch));
  logger().info("  Instantaneous batch size per device = {}", detail::thousands(args_.per_device_train_batch_size));
  logger().info("  Total train batch size (w. parallel, distributed & accumulation) = {}",
                detail::thousands(plan.total_train_batch_size));
  logger().info("  Gradient Accumulation steps = {}", plan.ga);
  logger().info("  Total optimization steps = {}", detail::thousands(plan.max_steps));
  logger().info("  Number of trainable parameters = {}", detail::thousands(trainable));
}

/// The end of a window, in Lightning's fixed order: unscale (and the processes' agreement on an
/// overflow, where the sharding slot has one), clip (the norm into `grad_norm`),
/// on_pre_optimizer_step, step (the precision policy may skip it), the sharding policy's after_step,
/// on_optimizer_step, the schedule's advance unless the step was skipped, zero_grad. Returns the
/// learning rate this update used.
template <class Model, class P>
template <class Params>
double Trainer<Model, P>::optimizer_step(const Params& parameters, torch::Tensor& grad_norm) {
  auto& optimizer = *optimizer_;
  auto& scheduler = *scheduler_;
  precision_.unscale_(optimizer);
  // Sharded gradients: each process checked only its shard for overflow; every process must make the
  // same skip decision (and scale update), so the flag is agreed on before clipping and the step.
  if constexpr (requires(torch::Tensor& flag) {
                  sharding_.agree_on_overflow(flag);
                  precision_.share_found_inf([](torch::Tensor&) {});
                })
    precision_.share_found_inf([this](torch::Tensor& found_inf) { sharding_.agree_on_overflow(found_inf); });
  grad_norm = args_.max_grad_norm > 0 ? sharding_.clip_grad_norm(parameters, args_.max_grad_norm)
                                      : sharding_.clip_grad_norm(parameters, INFINITY);
  fire(hooks::on_pre_optimizer_step);
  const bool stepped = precision_.step(optimizer);
  sharding_.after_step(module());
  fire(hooks::on_optimizer_step);

  const double learning_rate = optimizer.param_groups().begin()->lr;  // the rate this update used
  if ((!precision_type::can_skip_steps || stepped) && !scheduler.steps_on_metric())
    scheduler.apply(optimizer.param_groups(), ++scheduler_steps_);

  optimizer.zero_grad();
  return learning_rate;
}

/// HF's _finalize_training: the last loss sums, train_loss and the speed metrics.
template <class Model, class P>
TrainOutput Trainer<Model, P>::train_metrics(const TrainingPlan& plan, const torch::Tensor& tr_loss,
                                             std::int64_t initial_global_step, bool loss_sums_restored,
                                             std::chrono::steady_clock::time_point start_time) {
  total_loss_scalar_ += mean_across_processes(tr_loss);
  const auto steps_trained = state_.global_step - initial_global_step;
  // With the loss sums restored from the checkpoint, train_loss covers the whole run, as it would
  // have without the interruption (HF averages over the steps since the resume only).
  const auto steps_in_loss = loss_sums_restored ? state_.global_step : steps_trained;
  const double train_loss = total_loss_scalar_ / std::max<double>(static_cast<double>(steps_in_loss), 0.001);
  Metrics metrics = speed_metrics("train", start_time,
                                  plan.num_train_samples * static_cast<double>(steps_trained) /
                                      static_cast<double>(std::max<std::int64_t>(state_.max_steps, 1)),
                                  static_cast<double>(steps_trained));
  metrics["total_flos"] = state_.total_flos;
  metrics["train_loss"] = train_loss;
  return TrainOutput{state_.global_step, train_loss, metrics};
}

template <class Model, class P>
void Trainer<Model, P>::maybe_log_save_evaluate(torch::Tensor& tr_loss, const torch::Tensor& grad_norm,
                                                double learning_rate) {
  // Every process reaches this point with the same flags: the token and flop counts are summed here,
  // once for whatever the log, the evaluation or the checkpoint below reads (HF's store_flos).
  if (control_.should_log || control_.should_evaluate || control_.should_save) store_counts();
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
    log(logs, train_start_time_);
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
    control_.should_save = false;
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

}  // namespace trainpp
