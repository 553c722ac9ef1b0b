#pragma once
// The training loop: the one place that orders a step and an epoch. Every hook call site is here.
// Semantics follow transformers 5.x's Trainer._inner_training_loop / _run_epoch.

#include <trainpp/trainer.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>

namespace trainpp {

template <class Model, class P>
TrainOutput Trainer<Model, P>::train() {
  static_assert(has_train_dataset, "trainpp: train() needs the train_dataset slot (trainpp::train_dataset = ...)");
  const auto& dataset = detail::unwrap(train_dataset_);
  auto loader = data_loader_.train_loader(dataset, args_, device_);

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
  state_.is_world_process_zero = state_.is_local_process_zero = sharding_.rank() == 0;
  state_.compute_steps(args_, max_steps);
  state_.train_batch_size = args_.per_device_train_batch_size;
  state_.num_train_epochs = num_train_epochs;
  state_.epoch = 0.0;

  // ---- optimizer and schedule (HF rebuilds them on each train()) ---------------------------------
  optimizer_.reset();
  scheduler_.reset();
  optimizer_.emplace(optimizer_policy_.create(module(), args_));
  scheduler_.emplace(scheduler_policy_.create(args_, max_steps));
  auto& optimizer = *optimizer_;
  auto& scheduler = *scheduler_;
  std::int64_t scheduler_steps = 0;  // advances with each optimizer step that was not skipped
  scheduler.apply(optimizer.param_groups(), scheduler_steps);
  const auto parameters = optimizer.parameters();

  module().train();
  optimizer.zero_grad();
  // The running training loss lives on the device; it reaches the host only on logging steps.
  auto tr_loss = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat32).device(device_));
  torch::Tensor grad_norm;
  double learning_rate = optimizer.param_groups().begin()->lr;
  total_loss_scalar_ = 0;
  globalstep_last_logged_ = 0;
  const auto start_time = std::chrono::steady_clock::now();

  fire(hooks::on_train_begin);
  if (args_.eval_on_start) evaluate_during_training();

  for (std::int64_t epoch = 0; epoch < num_train_epochs; ++epoch) {
    loader.set_epoch(epoch);
    fire(hooks::on_epoch_begin);

    // Windows of gradient_accumulation_steps micro-batches; the last window of an epoch holds the
    // remainder, and each of its losses is divided by that smaller count (HF's rule).
    std::int64_t remainder = steps_in_epoch % ga;
    if (remainder == 0) remainder = ga;
    std::int64_t step = -1;
    std::vector<typename std::remove_cvref_t<decltype(*loader.next())>> window;
    window.reserve(static_cast<std::size_t>(ga));

    for (std::int64_t update = 0; update < updates_per_epoch; ++update) {
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
            scheduler.apply(optimizer.param_groups(), ++scheduler_steps);

          optimizer.zero_grad();
          state_.global_step += 1;
          state_.epoch = static_cast<double>(epoch) + static_cast<double>(step + 1) / static_cast<double>(steps_in_epoch);
          fire(hooks::on_step_end);
          maybe_log_save_evaluate(tr_loss, grad_norm, learning_rate);
        } else {
          fire(hooks::on_substep_end);
        }
        if (control_.should_epoch_stop || control_.should_training_stop) break;
      }
      if (control_.should_epoch_stop || control_.should_training_stop) break;
    }

    if (step < 0) {
      std::fprintf(stderr, "trainpp: warning: the epoch yielded no batch; stopping training at step %lld\n",
                   static_cast<long long>(state_.global_step));
      control_.should_training_stop = true;
    }
    fire(hooks::on_epoch_end);
    maybe_log_save_evaluate(tr_loss, grad_norm, learning_rate);
    if (control_.should_training_stop) break;
  }

  // ---- the end, as HF's _finalize_training ---------------------------------------------------------
  total_loss_scalar_ += tr_loss.item<double>();
  const auto steps_trained = state_.global_step;
  const double train_loss = total_loss_scalar_ / std::max<double>(static_cast<double>(steps_trained), 0.001);
  Metrics metrics = speed_metrics("train", start_time,
                                  num_train_samples * static_cast<double>(steps_trained) /
                                      static_cast<double>(std::max<std::int64_t>(state_.max_steps, 1)),
                                  static_cast<double>(steps_trained));
  metrics["total_flos"] = state_.total_flos;
  metrics["train_loss"] = train_loss;
  log(metrics);
  fire(hooks::on_train_end);
  return TrainOutput{state_.global_step, train_loss, metrics};
}

template <class Model, class P>
void Trainer<Model, P>::maybe_log_save_evaluate(torch::Tensor& tr_loss, const torch::Tensor& grad_norm,
                                                double learning_rate) {
  if (control_.should_log && state_.global_step > globalstep_last_logged_) {
    // The host syncs of a logging step: the user asked for these numbers.
    const double tr_loss_scalar = tr_loss.item<double>();
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
        state_.best_global_step = state_.global_step;
        is_new_best = true;
      }
    }
    if (args_.save_strategy == SaveStrategy::best) control_.should_save = is_new_best;
  }
  if (control_.should_save) {
    save_checkpoint();
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

/// {output_dir}/checkpoint-{global_step}/ with the model weights, trainer_state.json and
/// training_args.json, published atomically: a crash leaves earlier checkpoints intact.
template <class Model, class P>
void Trainer<Model, P>::save_checkpoint() {
  if (!state_.is_world_process_zero) return;
  const std::filesystem::path out = args_.output_dir;
  std::filesystem::create_directories(out);
  const auto final_dir = out / fmt::format("checkpoint-{}", state_.global_step);
  const auto staging = make_staging_dir(final_dir);
  trainpp::save_model(module(), staging);
  write_file_atomic(staging / "trainer_state.json", state_json().dump(2) + "\n");
  write_file_atomic(staging / "training_args.json", args_json(args_).dump(2) + "\n");
  commit_dir(staging, final_dir);
}

}  // namespace trainpp
