#pragma once
// The Trainer's checkpoints: where a run resumes from, what a resumed run reads back (weights,
// trainer_state.json, optimizer, schedule, loss scaler, random states, the loop's running sums), and
// the atomic writing and rotation of checkpoint-N directories. loop.hpp decides when; this file how.
// The files themselves are read and written by the headers io/checkpoint.hpp includes.

#include <trainpp/detail/config.hpp>
#include <trainpp/detail/crash_point.hpp>
#include <trainpp/detail/format.hpp>
#include <trainpp/io/checkpoint.hpp>
#include <trainpp/logging.hpp>
#include <trainpp/trainer.hpp>

namespace trainpp {

// What the Trainer's checkpoint members do that depends on neither the model nor the policies: declared
// here, defined once (in trainpp::compiled, or inline below in header-only mode).
namespace detail {

/// See Trainer::resolve_checkpoint.
[[nodiscard]] std::optional<std::filesystem::path> resolve_checkpoint(const std::optional<std::string>& value,
                                                                     const std::string& output_dir);
/// See Trainer::prepare_output_dir; called on the world's process zero only.
void prepare_output_dir(const TrainingArguments& args, bool resuming);
/// Forgets a best checkpoint that no longer exists, and says which step intervals and batch size of
/// `args` differ from the checkpoint's (HF's compare_trainer_and_checkpoint_args: allowed, but said).
void check_resumed_state(const TrainingArguments& args, TrainerState& loaded, const std::filesystem::path& path);
/// See Trainer::process_state_of_other_world_size.
[[nodiscard]] ProcessState process_state_of_other_world_size(const std::filesystem::path& checkpoint,
                                                             const std::filesystem::path& optimizer_path, int rank,
                                                             int world, bool is_world_process_zero);
/// With save_total_limit 1 at the end of training: deletes every checkpoint but the best one.
void keep_only_best_checkpoint(const std::string& output_dir, const std::string& best_model_checkpoint);

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE std::optional<std::filesystem::path> resolve_checkpoint(const std::optional<std::string>& value,
                                                                      const std::string& output_dir) {
  if (!value || value->empty() || *value == "false" || *value == "False") return std::nullopt;
  if (*value == "true" || *value == "True") {
    auto last = last_checkpoint(output_dir);
    if (!last)
      throw error("No valid checkpoint found in output directory ({}) to resume from (resume_from_checkpoint "
                  "true)", output_dir);
    verify_checkpoint_manifest(*last);
    return last;
  }
  const std::filesystem::path dir = *value;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw error("Can't find a valid checkpoint at {}: it is not a directory", dir.string());
  if (!is_complete_checkpoint(dir))
    throw error("Can't find a valid checkpoint at {}: it lacks {} or {}", dir.string(), trainer_state_name,
                model_weights_name);
  verify_checkpoint_manifest(dir);
  return dir;
}

TRAINPP_INLINE void prepare_output_dir(const TrainingArguments& args, bool resuming) {
  // Created up front, as HF's Trainer does: an output_dir that cannot exist fails now, not at the first
  // checkpoint after an hour of training.
  std::error_code ec;
  std::filesystem::create_directories(args.output_dir, ec);
  if (ec) throw error("cannot create output_dir {}: {}", args.output_dir, ec.message());
  if (args.save_strategy == SaveStrategy::no) return;
  remove_stale_staging(args.output_dir);
  if (resuming) return;
  const auto existing = sorted_checkpoints(args.output_dir);
  if (existing.empty()) return;
  if (!args.overwrite_output_dir)
    throw error("Output directory ({}) already holds checkpoints ({} ... {}). Use --resume_from_checkpoint true "
                "to continue that run, or --overwrite_output_dir to delete them and start over.",
                args.output_dir, existing.front().filename().string(), existing.back().filename().string());
  for (const auto& dir : existing) {
    note("overwrite_output_dir: deleting {}", dir.string());
    remove_dir_atomic(dir);
  }
}

TRAINPP_INLINE void check_resumed_state(const TrainingArguments& args, TrainerState& loaded,
                                        const std::filesystem::path& path) {
  if (loaded.best_model_checkpoint && !std::filesystem::is_directory(*loaded.best_model_checkpoint)) {
    warn("The best checkpoint {} recorded in the resumed state does not exist anymore. Ignoring it for this run.",
         *loaded.best_model_checkpoint);
    loaded.best_model_checkpoint.reset();
  }
  std::vector<std::string> differences;
  auto compare = [&](const char* name, std::int64_t now, std::int64_t saved) {
    if (now != saved) differences.push_back(fmt::format("{}: {} (from args) != {} (from {})", name, now, saved, path.string()));
  };
  TrainerState now;
  now.compute_steps(args, loaded.max_steps);
  compare("logging_steps", now.logging_steps, loaded.logging_steps);
  compare("eval_steps", now.eval_steps, loaded.eval_steps);
  compare("save_steps", now.save_steps, loaded.save_steps);
  compare("per_device_train_batch_size", args.per_device_train_batch_size, loaded.train_batch_size);
  if (!differences.empty())
    warn("The following arguments do not match the ones in the checkpoint's trainer_state.json (the checkpoint's "
         "logging/eval/save steps stay in force, as in HF):\n\t{}", fmt::join(differences, "\n\t"));
}

TRAINPP_INLINE ProcessState process_state_of_other_world_size(const std::filesystem::path& checkpoint,
                                                              const std::filesystem::path& optimizer_path, int rank,
                                                              int world, bool is_world_process_zero) {
  const auto own_name = process_state_name(rank, world);
  std::int64_t saved_world = 0;
  if (std::filesystem::exists(checkpoint / process_state_name(0, 1))) {
    saved_world = 1;
  } else {
    while (std::filesystem::exists(checkpoint / process_state_name(saved_world, 2))) ++saved_world;
    // A file of rank r < N does not say N: the states themselves do.
    if (saved_world > 0) saved_world = load_process_state(checkpoint / process_state_name(0, 2)).world_size;
  }
  if (saved_world == 0 || saved_world == world || optimizer_path.filename() != optimizer_state_name ||
      !std::filesystem::exists(optimizer_path))
    throw error("{} lacks {}: it was saved by a run with a different number of processes than this one ({}), and "
                "its optimizer is sharded per process (or missing), so it cannot be resumed by {} processes",
                checkpoint.string(), own_name, world, world);
  std::vector<ProcessState> saved;
  for (std::int64_t r = 0; r < saved_world; ++r) {
    const auto path = checkpoint / process_state_name(r, saved_world);
    saved.push_back(load_process_state(path));
    if (saved.back().world_size != saved_world || saved.back().rank != r)
      throw error("{} is rank {} of {} processes, but the checkpoint holds the states of {} processes", path.string(),
                  saved.back().rank, saved.back().world_size, saved_world);
  }
  ProcessState merged;
  if (rank < saved_world) {
    merged.cpu_rng = saved[static_cast<std::size_t>(rank)].cpu_rng;
    merged.cuda_rng = saved[static_cast<std::size_t>(rank)].cuda_rng;
  }
  auto sum = torch::zeros({}, torch::kFloat32);
  for (const auto& s : saved) sum += s.tr_loss.to(torch::kCPU, torch::kFloat32);
  merged.tr_loss = sum / static_cast<double>(saved_world);
  merged.total_loss_scalar = saved[0].total_loss_scalar;
  merged.globalstep_last_logged = saved[0].globalstep_last_logged;
  merged.scheduler_steps = saved[0].scheduler_steps;
  merged.rank = rank;
  merged.world_size = world;
  if (is_world_process_zero)
    warn("{} was saved by {} process(es) and is resumed by {}: the model, optimizer and schedule continue exactly, "
         "but the random generators{} and the batches each process draws may differ from an uninterrupted run's",
         checkpoint.string(), saved_world, world, world > saved_world ? " (fresh on the added processes)" : "");
  return merged;
}

TRAINPP_INLINE void keep_only_best_checkpoint(const std::string& output_dir, const std::string& best_model_checkpoint) {
  const auto best = std::filesystem::path(best_model_checkpoint).lexically_normal();
  for (const auto& dir : sorted_checkpoints(output_dir, best_model_checkpoint))
    if (dir.lexically_normal() != best) {
      note("Deleting older checkpoint [{}] due to args.save_total_limit", dir.string());
      remove_dir_atomic(dir);
    }
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace detail

/// The checkpoint directory train() resumes from: nullopt for none ("false", or nothing given), the
/// newest complete checkpoint in output_dir for "true", else the path given, which must hold a
/// complete checkpoint. Either way its files must match the sizes and checksums of its manifest: a
/// damaged checkpoint is refused, naming the file, before anything is read from it.
template <class Model, class P>
std::optional<std::filesystem::path> Trainer<Model, P>::resolve_checkpoint(const std::optional<std::string>& value) const {
  return detail::resolve_checkpoint(value, args_.output_dir);
}

/// Before a run writes into output_dir: removes what interrupted saves left there, and refuses to
/// start a fresh run on top of another run's checkpoints unless told to overwrite them (HF's example
/// scripts refuse the same way; the Trainer itself would mix the two runs' checkpoints).
template <class Model, class P>
void Trainer<Model, P>::prepare_output_dir(bool resuming) {
  if (state_.is_world_process_zero) detail::prepare_output_dir(args_, resuming);
}

/// trainer_state.json of the checkpoint, checked against this run (HF's _init_training_state).
template <class Model, class P>
TrainerState Trainer<Model, P>::resumed_state(const std::filesystem::path& checkpoint) {
  const auto path = checkpoint / trainer_state_name;
  TrainerState loaded = read_trainer_state(path);
  detail::check_resumed_state(args_, loaded, path);
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
// Long on purpose: the resume reads each file of a checkpoint in turn; the order (optimizer before scheduler before RNG) matters.
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

  // This process's state first: a checkpoint of another number of processes is checked before any
  // optimizer piece is read (a sharded optimizer's pieces would not fit).
  // (process_state_<r> names a rank of any number of processes above one: its world_size says which.)
  ProcessState process = std::filesystem::exists(process_file)
                             ? load_process_state(process_file)
                             : process_state_of_other_world_size(checkpoint, optimizer_path);
  if (process.world_size != sharding_.world_size())
    process = process_state_of_other_world_size(checkpoint, optimizer_path);
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
      scheduler_->load_state(load_component_state(path));
    } catch (const Error& e) {
      throw error("{}: {}", path.string(), e.what());
    }
  }
  if constexpr (requires(precision_type& p, const nlohmann::json& j) { p.load_state(j); }) {
    const auto path = checkpoint / scaler_state_name;
    if (std::filesystem::exists(path)) {
      try {
        precision_.load_state(load_component_state(path));
      } catch (const Error& e) {
        throw error("{}: {}", path.string(), e.what());
      }
    } else if (!precision_.state().is_null()) {
      warn("{} has no {} (it was not saved by an fp16 run): the loss scale starts from its initial value",
           checkpoint.string(), scaler_state_name);
    }
  }

  if (process.cpu_rng.defined()) restore_rng_state(process, process_file.string());
  tr_loss.copy_(process.tr_loss);
  total_loss_scalar_ = process.total_loss_scalar;
  globalstep_last_logged_ = process.globalstep_last_logged;
  scheduler_steps_ = process.scheduler_steps;
  if (globalstep_last_logged_ > state_.global_step || scheduler_steps_ > state_.global_step)
    throw error("{}: its loop counters (last logged step {}, scheduler steps {}) are past the checkpoint's global "
                "step {}", process_file.string(), globalstep_last_logged_, scheduler_steps_, state_.global_step);
  return true;
}

/// A data-parallel checkpoint resumed by another number of processes (HF allows it, with a warning
/// about random states): every process holds the whole model and optimizer, so those resume exactly.
/// Process r takes the random generators of the saved process r (none when the checkpoint had fewer),
/// and every process the mean of the saved loss sums, so the next logged loss, a mean over processes,
/// is the one an uninterrupted run logs. A sharded optimizer (one file per process) is refused: its
/// pieces are laid out for the saved number of processes.
template <class Model, class P>
ProcessState Trainer<Model, P>::process_state_of_other_world_size(const std::filesystem::path& checkpoint,
                                                                  const std::filesystem::path& optimizer_path) {
  return detail::process_state_of_other_world_size(checkpoint, optimizer_path, sharding_.rank(),
                                                   sharding_.world_size(), state_.is_world_process_zero);
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
// Long on purpose: the save's ordering across processes (writes, barriers, rename, rotation) must read as one sequence.
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
    // A model save_pretrained can write gets its config.json (and generation_config.json) beside the
    // weights, so that transformers' from_pretrained("checkpoint-N") loads the checkpoint.
    if constexpr (saves_pretrained)
      if (main_process) write_pretrained_files(dir, /*with_weights=*/false);
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
        save_component_state(staging / scheduler_state_name, scheduler_->state());
      detail::crash_point("checkpoint", state_.global_step);
      if constexpr (requires(const precision_type& p) { { p.state() } -> std::convertible_to<nlohmann::json>; }) {
        const nlohmann::json scaler = precision_.state();
        if (!scaler.is_null()) save_component_state(staging / scaler_state_name, scaler);
      }
    }
    write_json_file(staging / trainer_state_name, state_json());
    write_json_file(staging / training_args_name, saved_arguments_);
    synchronize_processes();
    for (int rank = 1; rank < world; ++rank) {
      const auto from = rank_dir(rank);
      if (!std::filesystem::is_directory(from) ||
          (!args_.save_only_model && !std::filesystem::exists(from / process_state_name(rank, world))))
        throw error("checkpoint {}: rank {} did not write its state into {}", final_dir.string(), rank, from.string());
      for (const auto& entry : std::filesystem::directory_iterator(from)) {
        // Each file has one writer (per-rank names, or the one process that writes a shared file):
        // a second one means two processes claimed the same part of the checkpoint.
        if (std::filesystem::exists(staging / entry.path().filename()))
          throw error("checkpoint {}: rank {} wrote {}, which another process wrote too", final_dir.string(), rank,
                      entry.path().filename().string());
        std::filesystem::rename(entry.path(), staging / entry.path().filename());
      }
      std::filesystem::remove(from);
    }
    write_checkpoint_manifest(staging);  // last: it covers every file above
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
  if (state_.is_world_process_zero && state_.best_model_checkpoint && args_.save_total_limit == 1)
    detail::keep_only_best_checkpoint(args_.output_dir, *state_.best_model_checkpoint);
}

}  // namespace trainpp
