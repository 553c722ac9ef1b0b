#pragma once
// Checkpoint directories: what {output_dir}/checkpoint-{step}/ holds and under which names, how
// checkpoints are found, ordered and rotated, and how interrupted saves are cleaned up. Each file's
// format has its own header (io/checkpoint.hpp includes them all).
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
//   checkpoint_manifest.json   every other file's size and xxHash checksum, written last; resuming
//                              checks them (io/manifest.hpp)
// Every file is written into a staging directory that is renamed into place when complete
// (io/atomic_write.hpp): a directory named checkpoint-N is always whole.

#include <trainpp/detail/config.hpp>
#include <trainpp/io/atomic_write.hpp>
#include <trainpp/logging.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <optional>
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
[[nodiscard]] std::optional<std::int64_t> checkpoint_step(std::string_view name);

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
[[nodiscard]] std::vector<std::filesystem::path> sorted_checkpoints(
    const std::filesystem::path& output_dir, const std::optional<std::string>& best = std::nullopt);

/// The newest complete checkpoint in `output_dir` (HF's get_last_checkpoint), or nullopt. Incomplete
/// directories are skipped with a warning.
[[nodiscard]] std::optional<std::filesystem::path> last_checkpoint(const std::filesystem::path& output_dir);

/// Removes a directory so that it never appears half-deleted under its name: it is first renamed to a
/// ".tmp-" name (which no reader looks at), then removed. A crash in between leaves only the ".tmp-"
/// directory, which remove_stale_staging cleans up later.
void remove_dir_atomic(const std::filesystem::path& dir);

/// Deletes the ".tmp-checkpoint-*" directories an interrupted save or deletion left in `output_dir`.
/// Returns how many it removed. Call it only when no other process is saving into `output_dir`.
std::size_t remove_stale_staging(const std::filesystem::path& output_dir);

/// HF's rotate_checkpoints: with a positive `save_total_limit`, deletes the oldest checkpoints until
/// that many remain, never the newest (needed to resume) nor `best` (so with a limit of 1 the best and
/// the newest both stay). Returns the deleted directories.
std::vector<std::filesystem::path> rotate_checkpoints(const std::filesystem::path& output_dir,
                                                      std::optional<std::int64_t> save_total_limit,
                                                      const std::optional<std::string>& best);

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE std::optional<std::int64_t> checkpoint_step(std::string_view name) {
  const std::string prefix = fmt::format("{}-", checkpoint_prefix);
  if (!name.starts_with(prefix) || name.size() == prefix.size()) return std::nullopt;
  const auto digits = name.substr(prefix.size());
  if (!std::ranges::all_of(digits, [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
  std::int64_t step = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), step);
  if (ec != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
  return step;
}

TRAINPP_INLINE std::vector<std::filesystem::path> sorted_checkpoints(const std::filesystem::path& output_dir,
                                                                     const std::optional<std::string>& best) {
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

TRAINPP_INLINE std::optional<std::filesystem::path> last_checkpoint(const std::filesystem::path& output_dir) {
  auto all = sorted_checkpoints(output_dir);
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (is_complete_checkpoint(*it)) return *it;
    warn("{} is not a complete checkpoint (it lacks {} or model.safetensors); skipping it", it->string(),
         trainer_state_name);
  }
  return std::nullopt;
}

TRAINPP_INLINE void remove_dir_atomic(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  const auto path = detail::without_trailing_separator(dir);
  const auto aside = detail::parent_or_dot(path) / fmt::format(".tmp-{}-deleted-{}-{}", path.filename().string(),
                                                                 ::getpid(), detail::random_suffix());
  detail::rename_or_throw(path, aside);
  std::error_code ec;
  fs::remove_all(aside, ec);
  if (ec) warn("cannot remove {} (the renamed {}): {}", aside.string(), path.string(), ec.message());
}

TRAINPP_INLINE std::size_t remove_stale_staging(const std::filesystem::path& output_dir) {
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

TRAINPP_INLINE std::vector<std::filesystem::path> rotate_checkpoints(const std::filesystem::path& output_dir,
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

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
