#pragma once
// Checkpoint files: what {output_dir}/checkpoint-{step}/ holds besides the model, how checkpoints are
// found, ordered and rotated, and the strict readers that resume relies on.
//
// A checkpoint directory (HF's names where HF defines the content; our own, pickle-free formats for
// what HF pickles):
//   model.safetensors          the weights (io/model_io.hpp)
//   trainer_state.json         TrainerState, HF's schema
//   training_args.json         the arguments in force, one key per TrainingArguments field
//   optimizer.safetensors      optimizer state: "state.<i>.<key>" tensors for parameter i of the
//                              optimizer's flat parameter list, and the parameter groups as JSON in the
//                              metadata key "trainpp.optimizer"                     (HF: optimizer.pt)
//   scheduler.json             the learning-rate schedule's state                   (HF: scheduler.pt)
//   scaler.json                the loss scaler's state, when the precision policy has one (HF: scaler.pt)
//   process_state.safetensors  per process (process_state_<rank>.safetensors when world_size > 1):
//                              the random generators ("rng.cpu", "rng.cuda:<i>") and the loop's
//                              running sums ("loop.*"), so a resumed run continues exactly
//                                                                                    (HF: rng_state.pth)
// Every file is written into a staging directory that is renamed into place when complete
// (io/atomic_write.hpp): a directory named checkpoint-N is always whole.

#include <trainpp/detail/config.hpp>
#include <trainpp/io/atomic_write.hpp>
#include <trainpp/io/json.hpp>
#include <trainpp/io/safetensors.hpp>
#include <trainpp/logging.hpp>
#include <trainpp/optim/param_groups.hpp>
#include <trainpp/state.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace trainpp {

inline constexpr std::string_view checkpoint_prefix = "checkpoint";  ///< HF's PREFIX_CHECKPOINT_DIR
inline constexpr std::string_view trainer_state_name = "trainer_state.json";
inline constexpr std::string_view training_args_name = "training_args.json";
inline constexpr std::string_view optimizer_state_name = "optimizer.safetensors";
inline constexpr std::string_view scheduler_state_name = "scheduler.json";
inline constexpr std::string_view scaler_state_name = "scaler.json";
/// The index of a model saved in pieces by a sharded policy (SHARDED_STATE_DICT; io/sharded_model.hpp).
inline constexpr std::string_view model_shards_index_name = "model_shards.json";

/// "process_state.safetensors" for a single process, "process_state_<rank>.safetensors" otherwise
/// (HF's rng_state.pth / rng_state_<rank>.pth).
[[nodiscard]] inline std::string process_state_name(std::int64_t rank, std::int64_t world_size) {
  return world_size <= 1 ? std::string("process_state.safetensors")
                         : fmt::format("process_state_{}.safetensors", rank);
}

/// "checkpoint-<step>".
[[nodiscard]] inline std::string checkpoint_dir_name(std::int64_t global_step) {
  return fmt::format("{}-{}", checkpoint_prefix, global_step);
}

/// The step of a directory named exactly "checkpoint-<digits>" (HF's _re_checkpoint), else nullopt.
[[nodiscard]] inline std::optional<std::int64_t> checkpoint_step(std::string_view name) {
  const std::string prefix = fmt::format("{}-", checkpoint_prefix);
  if (!name.starts_with(prefix) || name.size() == prefix.size()) return std::nullopt;
  const auto digits = name.substr(prefix.size());
  if (!std::ranges::all_of(digits, [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
  std::int64_t step = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), step);
  if (ec != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
  return step;
}

/// True when `dir` is a checkpoint a run can resume from or load: a directory holding trainer_state.json
/// and the model (model.safetensors, or a sharded model's index). (Directories are published whole;
/// this guards against ones assembled by hand.)
[[nodiscard]] inline bool is_complete_checkpoint(const std::filesystem::path& dir) {
  std::error_code ec;
  return std::filesystem::is_directory(dir, ec) && std::filesystem::is_regular_file(dir / trainer_state_name, ec) &&
         (std::filesystem::is_regular_file(dir / "model.safetensors", ec) ||
          std::filesystem::is_regular_file(dir / model_shards_index_name, ec));
}

/// The checkpoint directories in `output_dir`, oldest first by step number. When `best` names one of
/// them and it is not the newest, it moves to the second-to-last place, so that rotation, which deletes
/// from the front, keeps it (HF's sort_checkpoints). HF orders by modification time when it can; the
/// step number in the name is the order that cannot be fooled by a file system or a copy, so we use it.
[[nodiscard]] inline std::vector<std::filesystem::path> sorted_checkpoints(
    const std::filesystem::path& output_dir, const std::optional<std::string>& best = std::nullopt) {
  namespace fs = std::filesystem;
  std::vector<std::pair<std::int64_t, fs::path>> found;
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) return {};
  for (auto it = fs::directory_iterator(output_dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const auto step = checkpoint_step(it->path().filename().string());
    if (step && it->is_directory(ec)) found.emplace_back(*step, it->path());
  }
  if (ec) throw error("cannot list {}: {}", output_dir.string(), ec.message());
  std::ranges::sort(found);
  std::vector<fs::path> out;
  for (auto& [step, path] : found) out.push_back(std::move(path));
  if (best && !out.empty()) {
    const fs::path best_path = fs::path(*best).lexically_normal();
    const auto it = std::ranges::find_if(out, [&](const fs::path& p) { return p.lexically_normal() == best_path; });
    if (it != out.end() && it != out.end() - 1) {
      fs::path kept = *it;
      out.erase(it);
      out.insert(out.end() - 1, std::move(kept));
    }
  }
  return out;
}

/// The newest complete checkpoint in `output_dir` (HF's get_last_checkpoint), or nullopt. Incomplete
/// directories are skipped with a warning.
[[nodiscard]] inline std::optional<std::filesystem::path> last_checkpoint(const std::filesystem::path& output_dir) {
  auto all = sorted_checkpoints(output_dir);
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (is_complete_checkpoint(*it)) return *it;
    warn("{} is not a complete checkpoint (it lacks {} or model.safetensors); skipping it", it->string(),
         trainer_state_name);
  }
  return std::nullopt;
}

/// Removes a directory so that it never appears half-deleted under its name: it is first renamed to a
/// ".tmp-" name (which no reader looks at), then removed. A crash in between leaves only the ".tmp-"
/// directory, which remove_stale_staging cleans up later.
inline void remove_dir_atomic(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  const auto path = detail::without_trailing_separator(dir);
  const auto aside = detail::parent_or_dot(path) / fmt::format(".tmp-{}-deleted-{}-{}", path.filename().string(),
                                                                 ::getpid(), detail::random_suffix());
  detail::rename_or_throw(path, aside);
  std::error_code ec;
  fs::remove_all(aside, ec);
  if (ec) warn("cannot remove {} (the renamed {}): {}", aside.string(), path.string(), ec.message());
}

/// Deletes the ".tmp-checkpoint-*" directories an interrupted save or deletion left in `output_dir`.
/// Returns how many it removed. Call it only when no other process is saving into `output_dir`.
inline std::size_t remove_stale_staging(const std::filesystem::path& output_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) return 0;
  const std::string prefix = fmt::format(".tmp-{}-", checkpoint_prefix);
  std::vector<fs::path> stale;
  for (auto it = fs::directory_iterator(output_dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    if (it->path().filename().string().starts_with(prefix) && it->is_directory(ec)) stale.push_back(it->path());
  for (const auto& path : stale) {
    fs::remove_all(path, ec);
    if (ec) warn("cannot remove {}, left by an interrupted save: {}", path.string(), ec.message());
    else note("removed {}, left by an interrupted save", path.string());
  }
  return stale.size();
}

/// HF's rotate_checkpoints: with a positive `save_total_limit`, deletes the oldest checkpoints until
/// that many remain, never the newest (needed to resume) nor `best` (so with a limit of 1 the best and
/// the newest both stay). Returns the deleted directories.
inline std::vector<std::filesystem::path> rotate_checkpoints(const std::filesystem::path& output_dir,
                                                             std::optional<std::int64_t> save_total_limit,
                                                             const std::optional<std::string>& best) {
  if (!save_total_limit || *save_total_limit <= 0) return {};
  const auto checkpoints = sorted_checkpoints(output_dir);
  const auto limit = static_cast<std::size_t>(*save_total_limit);
  if (checkpoints.size() <= limit) return {};
  std::vector<std::filesystem::path> protect{checkpoints.back()};
  if (best) {
    const auto best_path = std::filesystem::path(*best).lexically_normal();
    if (best_path != checkpoints.back().lexically_normal()) protect.push_back(best_path);
  }
  const auto keep = std::max(limit, protect.size());
  std::size_t remaining = checkpoints.size();
  std::vector<std::filesystem::path> deleted;
  for (const auto& path : checkpoints) {
    if (remaining <= keep) break;
    if (std::ranges::find(protect, path.lexically_normal()) != protect.end() || path == checkpoints.back()) continue;
    note("deleting older checkpoint {} (save_total_limit {})", path.string(), *save_total_limit);
    remove_dir_atomic(path);
    deleted.push_back(path);
    --remaining;
  }
  return deleted;
}

// ---- typed JSON fields ------------------------------------------------------------------------------

namespace detail {

/// A typed view of one JSON object read from a file: each accessor names the file and the key when
/// the value is missing or of the wrong type.
class JsonFields {
 public:
  JsonFields(const nlohmann::json& object, std::string source, std::string what)
      : object_(object), source_(std::move(source)), what_(std::move(what)) {
    if (!object_.is_object()) throw error("{}: {} must be a JSON object, got {}", source_, what_, object_.type_name());
  }
  [[nodiscard]] bool has(const char* key) const { return object_.contains(key); }
  [[nodiscard]] bool is_null(const char* key) const { return !has(key) || object_.at(key).is_null(); }
  [[nodiscard]] const nlohmann::json& at(const char* key) const {
    if (!has(key)) throw error("{}: {} lacks the key \"{}\"", source_, what_, key);
    return object_.at(key);
  }

  [[nodiscard]] std::int64_t integer(const char* key, std::int64_t min = 0) const {
    const auto& v = at(key);
    if (v.is_number_unsigned()) {
      const auto u = v.get<std::uint64_t>();
      if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) &&
          static_cast<std::int64_t>(u) >= min)
        return static_cast<std::int64_t>(u);
    } else if (v.is_number_integer() && v.get<std::int64_t>() >= min) {
      return v.get<std::int64_t>();
    }
    throw fail(key, fmt::format("an integer of at least {}", min), v);
  }
  [[nodiscard]] double number(const char* key) const {
    const auto& v = at(key);
    if (!v.is_number()) throw fail(key, "a number", v);
    return v.get<double>();
  }
  [[nodiscard]] bool boolean(const char* key) const {
    const auto& v = at(key);
    if (!v.is_boolean()) throw fail(key, "true or false", v);
    return v.get<bool>();
  }
  [[nodiscard]] std::string string(const char* key) const {
    const auto& v = at(key);
    if (!v.is_string()) throw fail(key, "a string", v);
    return v.get<std::string>();
  }
  template <class F>
  [[nodiscard]] auto optional(const char* key, F get) const -> std::optional<decltype((this->*get)(key))> {
    if (is_null(key)) return std::nullopt;
    return (this->*get)(key);
  }

  [[nodiscard]] Error fail(const char* key, std::string_view expected, const nlohmann::json& got) const {
    auto shown = got.dump();
    if (shown.size() > 80) shown = shown.substr(0, 77) + "...";
    return error("{}: {} \"{}\" must be {}, got {}", source_, what_, key, expected, shown);
  }

 private:
  const nlohmann::json& object_;
  std::string source_;
  std::string what_;
};

}  // namespace detail

/// A TrainerState from trainer_state.json's object. Keys HF's schema does not have are ignored (a
/// newer writer may add some); a missing key keeps its default, as HF's dataclass does; a key with
/// the wrong type is an Error naming `source` and the key.
[[nodiscard]] inline TrainerState trainer_state_from_json(const nlohmann::json& j, std::string_view source) {
  const detail::JsonFields f(j, std::string(source), "trainer state");
  TrainerState s;
  using F = detail::JsonFields;
  auto integer = [&](const char* key, std::int64_t fallback, std::int64_t min = 0) {
    return f.is_null(key) ? fallback : f.integer(key, min);
  };
  s.epoch = f.optional("epoch", &F::number);
  s.global_step = integer("global_step", 0);
  s.max_steps = integer("max_steps", 0);
  s.logging_steps = integer("logging_steps", 500);
  s.eval_steps = integer("eval_steps", 500);
  s.save_steps = integer("save_steps", 500);
  s.train_batch_size = integer("train_batch_size", 0);
  s.num_train_epochs = integer("num_train_epochs", 0);
  s.num_input_tokens_seen = integer("num_input_tokens_seen", 0);
  s.total_flos = f.is_null("total_flos") ? 0.0 : f.number("total_flos");
  if (f.has("log_history")) {
    const auto& history = f.at("log_history");
    if (!history.is_array()) throw f.fail("log_history", "an array of objects", history);
    for (std::size_t i = 0; i < history.size(); ++i) {
      const auto& entry = history[i];
      const detail::JsonFields e(entry, std::string(source), fmt::format("log_history[{}]", i));
      for (const auto& [key, value] : entry.items())
        if (!value.is_number() && !value.is_string() && !value.is_null() && !value.is_boolean())
          throw e.fail(key.c_str(), "a number, string, boolean or null", value);
      if (e.has("step")) (void)e.integer("step");
    }
    s.log_history = history;
  }
  s.best_metric = f.optional("best_metric", &F::number);
  s.best_global_step = f.is_null("best_global_step") ? std::nullopt : std::optional(f.integer("best_global_step"));
  s.best_model_checkpoint = f.optional("best_model_checkpoint", &F::string);
  s.is_local_process_zero = f.has("is_local_process_zero") ? f.boolean("is_local_process_zero") : true;
  s.is_world_process_zero = f.has("is_world_process_zero") ? f.boolean("is_world_process_zero") : true;
  s.is_hyper_param_search = f.has("is_hyper_param_search") ? f.boolean("is_hyper_param_search") : false;
  s.trial_name = f.optional("trial_name", &F::string);
  if (f.has("trial_params")) {
    const auto& tp = f.at("trial_params");
    if (!tp.is_null() && !tp.is_object()) throw f.fail("trial_params", "an object or null", tp);
    s.trial_params = tp;
  }
  if (f.has("stateful_callbacks")) {
    const auto& sc = f.at("stateful_callbacks");
    if (!sc.is_object()) throw f.fail("stateful_callbacks", "an object", sc);
    s.stateful_callbacks = sc;
  }
  return s;
}

/// Reads trainer_state.json (see trainer_state_from_json).
[[nodiscard]] inline TrainerState read_trainer_state(const std::filesystem::path& path) {
  return trainer_state_from_json(read_json_file(path), path.string());
}

/// The TrainerControl flags stored in trainer_state.json's stateful_callbacks, if any.
[[nodiscard]] inline std::optional<TrainerControl> control_from_state(const TrainerState& state, std::string_view source) {
  if (!state.stateful_callbacks.contains("TrainerControl")) return std::nullopt;
  const auto& stored = state.stateful_callbacks.at("TrainerControl");
  const detail::JsonFields entry(stored, std::string(source), "stateful_callbacks.TrainerControl");
  if (!entry.has("args")) return TrainerControl{};
  const detail::JsonFields f(entry.at("args"), std::string(source), "stateful_callbacks.TrainerControl.args");
  TrainerControl c;
  auto flag = [&](const char* key) { return f.has(key) ? f.boolean(key) : false; };
  c.should_training_stop = flag("should_training_stop");
  c.should_epoch_stop = flag("should_epoch_stop");
  c.should_save = flag("should_save");
  c.should_evaluate = flag("should_evaluate");
  c.should_log = flag("should_log");
  return c;
}

// ---- optimizer state -----------------------------------------------------------------------------------

/// What optimizer.safetensors holds: per-parameter state and the groups' hyperparameters.
struct SavedOptimizer {
  OptimizerState state;            ///< one map per parameter of the flat list, as the optimizer's state()
  std::vector<ParamGroup> groups;  ///< lr, initial_lr, weight_decay and names (params left empty)
  std::vector<std::size_t> group_sizes;
};

/// Writes an optimizer's state and its groups' hyperparameters (and parameter names, which the loader
/// checks) to `path`, atomically.
inline void save_optimizer_state(const std::filesystem::path& path, const OptimizerState& state,
                                 const std::vector<ParamGroup>& groups) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (std::size_t i = 0; i < state.size(); ++i)
    for (const auto& [key, value] : state[i]) tensors.emplace_back(fmt::format("state.{}.{}", i, key), value);
  nlohmann::json meta = {{"version", 1}, {"num_parameters", state.size()}, {"param_groups", nlohmann::json::array()}};
  for (const auto& g : groups)
    meta["param_groups"].push_back({{"lr", g.lr},
                                    {"initial_lr", g.initial_lr},
                                    {"weight_decay", g.weight_decay},
                                    {"num_parameters", g.params.size()},
                                    {"names", g.names}});
  save_safetensors(path, tensors, {{"format", "pt"}, {"trainpp.optimizer", meta.dump()}});
}

/// Reads optimizer.safetensors back. Every tensor name must be "state.<i>.<key>" with i below the
/// recorded parameter count, and the groups must add up to that count; errors name the file.
[[nodiscard]] inline SavedOptimizer load_optimizer_state(const std::filesystem::path& path) {
  const auto source = path.string();
  auto file = load_safetensors(path);
  const auto meta_it = file.metadata.find("trainpp.optimizer");
  if (meta_it == file.metadata.end())
    throw error("{}: not a trainpp optimizer state: the metadata lacks \"trainpp.optimizer\"", source);
  const auto meta = detail::parse_json_strict(meta_it->second, source + " (metadata trainpp.optimizer)");
  const detail::JsonFields f(meta, source, "the optimizer metadata");
  if (f.integer("version") != 1) throw error("{}: unsupported optimizer state version {}", source, f.integer("version"));
  const auto count = static_cast<std::size_t>(f.integer("num_parameters"));
  // The state holds an entry per parameter, tensors or not: a count no model has would exhaust memory.
  if (constexpr std::size_t max_parameters = std::size_t{1} << 20; count > max_parameters)
    throw error("{}: num_parameters {} is more than any model has (at most {})", source, count, max_parameters);
  const auto& groups = f.at("param_groups");
  if (!groups.is_array()) throw f.fail("param_groups", "an array", groups);

  SavedOptimizer out;
  std::size_t total = 0;
  for (std::size_t i = 0; i < groups.size(); ++i) {
    const detail::JsonFields g(groups[i], source, fmt::format("param_groups[{}]", i));
    ParamGroup group;
    // The loop applies these rates as they are: a negative or non-finite one is corruption.
    auto rate = [&](const char* key) {
      const double v = g.number(key);
      if (!std::isfinite(v) || v < 0) throw g.fail(key, "a finite non-negative number", g.at(key));
      return v;
    };
    group.lr = rate("lr");
    group.initial_lr = rate("initial_lr");
    group.weight_decay = rate("weight_decay");
    const auto n = static_cast<std::size_t>(g.integer("num_parameters"));
    const auto& names = g.at("names");
    if (!names.is_array() || !std::ranges::all_of(names, [](const auto& v) { return v.is_string(); }))
      throw g.fail("names", "an array of strings", names);
    if (!names.empty() && names.size() != n)
      throw error("{}: param_groups[{}] has {} parameters but {} names", source, i, n, names.size());
    for (const auto& name : names) group.names.push_back(name.template get<std::string>());
    if (n > count || total > count - n)
      throw error("{}: the parameter groups hold more parameters than num_parameters ({})", source, count);
    total += n;
    out.group_sizes.push_back(n);
    out.groups.push_back(std::move(group));
  }
  if (total != count)
    throw error("{}: the parameter groups hold {} parameters, num_parameters says {}", source, total, count);

  out.state.resize(count);
  for (auto& [name, tensor] : file.tensors) {
    // "state.<index>.<key>", the index in plain decimal (no leading zero: "state.01.x" would alias "state.1.x")
    const std::string_view n = name;
    const auto dot = n.find('.', 6);
    std::size_t index = 0;
    const bool shaped = n.starts_with("state.") && dot != std::string_view::npos && dot > 6 && dot + 1 < n.size();
    const auto digits = shaped ? n.substr(6, dot - 6) : std::string_view{};
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (!shaped || ec != std::errc{} || end != digits.data() + digits.size() || (digits.size() > 1 && digits[0] == '0'))
      throw error("{}: unexpected tensor \"{}\" (optimizer state tensors are named state.<index>.<key>)", source, name);
    if (index >= count)
      throw error("{}: tensor \"{}\" is for parameter #{}, but the optimizer state has {} parameters", source, name,
                  index, count);
    out.state[index][std::string(n.substr(dot + 1))] = std::move(tensor);
  }
  return out;
}

// ---- per-process state ---------------------------------------------------------------------------------

/// The state of one process that a resumed run needs to continue exactly: its random generators and
/// the training loop's running sums.
struct ProcessState {
  torch::Tensor cpu_rng;                ///< the default CPU generator's state
  std::vector<torch::Tensor> cuda_rng;  ///< each CUDA device's default generator state, by index
  torch::Tensor tr_loss;                ///< the loss summed since the last log (float32 scalar, CPU)
  double total_loss_scalar = 0;         ///< the loss summed over the logged steps
  std::int64_t globalstep_last_logged = 0;
  std::int64_t scheduler_steps = 0;     ///< scheduler advances (fewer than global_step when steps were skipped)
  std::int64_t rank = 0;
  std::int64_t world_size = 1;
};

/// The generator states of this process (CPU and every visible CUDA device).
[[nodiscard]] inline ProcessState capture_rng_state() {
  ProcessState s;
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    s.cpu_rng = gen.get_state();
  }
  if (torch::cuda::is_available()) {
    for (std::size_t i = 0; i < static_cast<std::size_t>(torch::cuda::device_count()); ++i) {
      auto gen = at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(i)));
      std::lock_guard<std::mutex> lock(gen.mutex());
      s.cuda_rng.push_back(gen.get_state());
    }
  }
  return s;
}

/// Sets this process's generators from `s`. A generator state of the wrong size, or one the generator
/// refuses, is an Error; CUDA
/// states for devices this machine lacks (or a checkpoint without them) get a warning, since the run
/// then continues, but not bit for bit.
inline void restore_rng_state(const ProcessState& s, std::string_view source) {
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    if (s.cpu_rng.numel() != gen.get_state().numel())
      throw error("{}: rng.cpu holds {} bytes, a CPU generator state has {}", source, s.cpu_rng.numel(),
                  gen.get_state().numel());
    try {
      gen.set_state(s.cpu_rng);
    } catch (const c10::Error& e) {  // the right size, but not a state the generator accepts
      throw error("{}: rng.cpu is not a valid CPU generator state: {}", source, e.what_without_backtrace());
    }
  }
  const std::size_t devices = torch::cuda::is_available() ? torch::cuda::device_count() : 0;
  if (s.cuda_rng.size() != devices)
    warn("{} holds the generator states of {} CUDA device(s), this machine has {}: the resumed run will not "
         "repeat the interrupted one's random numbers on the GPU", source, s.cuda_rng.size(), devices);
  for (std::size_t i = 0; i < std::min(devices, s.cuda_rng.size()); ++i) {
    auto gen = at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(i)));
    std::lock_guard<std::mutex> lock(gen.mutex());
    if (s.cuda_rng[i].numel() != gen.get_state().numel())
      throw error("{}: rng.cuda:{} holds {} bytes, a CUDA generator state has {}", source, i, s.cuda_rng[i].numel(),
                  gen.get_state().numel());
    try {
      gen.set_state(s.cuda_rng[i]);
    } catch (const c10::Error& e) {
      throw error("{}: rng.cuda:{} is not a valid CUDA generator state: {}", source, i, e.what_without_backtrace());
    }
  }
}

inline void save_process_state(const std::filesystem::path& path, const ProcessState& s) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors{
      {"rng.cpu", s.cpu_rng},
      {"loop.tr_loss", s.tr_loss.defined() ? s.tr_loss.detach().to(torch::kCPU, torch::kFloat32).reshape({})
                                           : torch::zeros({}, torch::kFloat32)},
      {"loop.total_loss_scalar", torch::tensor(s.total_loss_scalar, torch::kFloat64)},
      {"loop.globalstep_last_logged", torch::tensor(s.globalstep_last_logged, torch::kInt64)},
      {"loop.scheduler_steps", torch::tensor(s.scheduler_steps, torch::kInt64)},
  };
  for (std::size_t i = 0; i < s.cuda_rng.size(); ++i) tensors.emplace_back(fmt::format("rng.cuda:{}", i), s.cuda_rng[i]);
  save_safetensors(path, tensors,
                   {{"format", "pt"},
                    {"trainpp.process_state", "1"},
                    {"rank", std::to_string(s.rank)},
                    {"world_size", std::to_string(s.world_size)}});
}

/// Reads a process_state file; every expected tensor must be present with its dtype and shape, and
/// nothing else may be; errors name the file.
[[nodiscard]] inline ProcessState load_process_state(const std::filesystem::path& path) {
  const auto source = path.string();
  auto file = load_safetensors(path);
  auto meta = [&](const char* key) -> std::int64_t {
    const auto it = file.metadata.find(key);
    std::int64_t value = 0;
    if (it == file.metadata.end()) throw error("{}: not a trainpp process state: the metadata lacks \"{}\"", source, key);
    const auto& text = it->second;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value < 0)
      throw error("{}: metadata \"{}\" must be a non-negative integer, got \"{}\"", source, key, text);
    return value;
  };
  if (meta("trainpp.process_state") != 1) throw error("{}: unsupported process state version", source);
  ProcessState s;
  s.rank = meta("rank");
  s.world_size = meta("world_size");
  if (s.world_size < 1 || s.rank >= s.world_size)
    throw error("{}: rank {} is not below world_size {}", source, s.rank, s.world_size);

  std::map<std::string, torch::Tensor> by_name;
  for (auto& [name, tensor] : file.tensors) by_name.emplace(name, std::move(tensor));
  auto take = [&](const std::string& name, c10::ScalarType dtype, std::int64_t dim) {
    const auto it = by_name.find(name);
    if (it == by_name.end()) throw error("{}: the process state lacks the tensor \"{}\"", source, name);
    auto t = std::move(it->second);
    by_name.erase(it);
    if (t.scalar_type() != dtype || t.dim() != dim)
      throw error("{}: tensor \"{}\" must be a {}-dimensional {}, got {} {}", source, name, dim, c10::toString(dtype),
                  t.dim(), c10::toString(t.scalar_type()));
    return t;
  };
  s.cpu_rng = take("rng.cpu", torch::kUInt8, 1);
  s.tr_loss = take("loop.tr_loss", torch::kFloat32, 0);
  s.total_loss_scalar = take("loop.total_loss_scalar", torch::kFloat64, 0).item<double>();
  s.globalstep_last_logged = take("loop.globalstep_last_logged", torch::kInt64, 0).item<std::int64_t>();
  s.scheduler_steps = take("loop.scheduler_steps", torch::kInt64, 0).item<std::int64_t>();
  if (s.globalstep_last_logged < 0 || s.scheduler_steps < 0)
    throw error("{}: loop counters must not be negative", source);
  for (std::size_t i = 0; by_name.contains(fmt::format("rng.cuda:{}", i)); ++i)
    s.cuda_rng.push_back(take(fmt::format("rng.cuda:{}", i), torch::kUInt8, 1));
  if (!by_name.empty()) throw error("{}: unexpected tensor \"{}\" in a process state", source, by_name.begin()->first);
  return s;
}

}  // namespace trainpp
