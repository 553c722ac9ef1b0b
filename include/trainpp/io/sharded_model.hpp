#pragma once
// A model saved in pieces by ShardGradOp / FullShard with SHARDED_STATE_DICT: every process writes
// model_shard_<rank>.safetensors (its pieces of each parameter, flattened, under the parameter's
// name; rank 0 also the buffers), and rank 0 writes model_shards.json, the index:
//   {"format": "trainpp.sharded_model", "world_size": N, "buffers": [names],
//    "parameters": {name: {"shape": [...], "dtype": "Float", "pieces": [[rank, begin, length], ...]}}}
// where a piece is `length` elements of the flattened parameter, starting at element `begin` of that
// rank's part of the flat buffer; pieces are listed in the parameter's element order. Written by
// save_sharded_model (every process), read by consolidate_sharded_model and by the policy that wrote it.

#include <trainpp/detail/config.hpp>
#include <trainpp/io/atomic_write.hpp>
#include <trainpp/io/checkpoint_dir.hpp>
#include <trainpp/io/json.hpp>
#include <trainpp/io/model_io.hpp>
#include <trainpp/io/safetensors.hpp>

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace trainpp {

/// The per-process files of a sharded checkpoint.
[[nodiscard]] inline std::string model_shard_name(int rank) { return fmt::format("model_shard_{}.safetensors", rank); }
[[nodiscard]] inline std::string optimizer_shard_name(int rank) {
  return fmt::format("optimizer_shard_{}.safetensors", rank);
}

/// One trainable parameter of a sharded model: what the index says of it, and this process's piece.
struct ShardedParameter {
  std::string name;
  std::vector<std::int64_t> shape;
  c10::ScalarType dtype = c10::ScalarType::Float;
  torch::Tensor piece;  ///< this process's elements of it, flattened (none: empty)
  /// [rank, begin, length] of each rank's piece, in element order (needed on the main process only).
  std::vector<std::array<std::int64_t, 3>> pieces;
};

/// Writes this process's model_shard_<rank>.safetensors into `dir`: its pieces of `parameters`; the
/// main process also `whole` (buffers and frozen parameters, saved whole, listed as "buffers") and
/// the index model_shards.json. Every process calls it.
void save_sharded_model(const std::filesystem::path& dir, int rank, int world_size,
                        const std::vector<ShardedParameter>& parameters,
                        const std::vector<std::pair<std::string, torch::Tensor>>& whole, bool main_process);

/// Joins the pieces of a sharded model in `checkpoint` into one model.safetensors at `output` (a file,
/// or a directory to hold model.safetensors): the file a single-process run writes, which
/// trainpp::load_model and Python's safetensors read. Throws trainpp::Error naming what is missing or
/// inconsistent (a shard file, a piece, a size that does not add up).
std::filesystem::path consolidate_sharded_model(const std::filesystem::path& checkpoint,
                                                const std::filesystem::path& output);

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE void save_sharded_model(const std::filesystem::path& dir,
                                       int rank,
                                       int world_size,
                                       const std::vector<ShardedParameter>& parameters,
                                       const std::vector<std::pair<std::string, torch::Tensor>>& whole,
                                       bool main_process) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& p : parameters)
    if (p.piece.numel() > 0) tensors.emplace_back(p.name, p.piece.detach().to(torch::kCPU));
  nlohmann::json index = {{"format", "trainpp.sharded_model"}, {"world_size", world_size}};
  if (main_process) {
    index["buffers"] = nlohmann::json::array();
    for (const auto& [name, tensor] : whole) {
      tensors.emplace_back(name, tensor.detach().to(torch::kCPU));
      index["buffers"].push_back(name);
    }
    index["parameters"] = nlohmann::json::object();
    for (const auto& p : parameters)
      index["parameters"][p.name] = {{"shape", p.shape}, {"dtype", std::string(c10::toString(p.dtype))}, {"pieces", p.pieces}};
  }
  save_safetensors(dir / model_shard_name(rank), tensors, {{"format", "pt"}, {"trainpp.rank", std::to_string(rank)}});
  if (main_process) write_json_file(dir / model_shards_index_name, index, 1);
}

TRAINPP_INLINE std::filesystem::path consolidate_sharded_model(const std::filesystem::path& checkpoint,
                                                               const std::filesystem::path& output) {
  const auto index_path = checkpoint / model_shards_index_name;
  if (!std::filesystem::exists(index_path))
    throw error("{} is not a sharded checkpoint: it has no {}", checkpoint.string(), model_shards_index_name);
  const auto index = read_json_file(index_path);
  if (index.value("format", "") != "trainpp.sharded_model" || !index.contains("world_size") ||
      !index["world_size"].is_number_integer() || !index.contains("parameters") || !index["parameters"].is_object())
    throw error("{}: not a trainpp sharded-model index", index_path.string());
  const int world = index["world_size"].get<int>();
  if (world < 1) throw error("{}: world_size must be positive", index_path.string());
  std::vector<std::map<std::string, torch::Tensor>> shards(static_cast<std::size_t>(world));
  for (int r = 0; r < world; ++r) {
    const auto path = checkpoint / model_shard_name(r);
    if (!std::filesystem::exists(path)) throw error("{}: the shard of rank {} is missing ({})", checkpoint.string(), r, path.string());
    auto file = load_safetensors(path);
    for (auto& [name, tensor] : file.tensors) shards[static_cast<std::size_t>(r)].emplace(name, std::move(tensor));
  }
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& [name, entry] : index["parameters"].items()) {
    std::vector<std::int64_t> shape;
    std::vector<torch::Tensor> parts;
    try {
      shape = entry.at("shape").get<std::vector<std::int64_t>>();
      for (const auto& piece : entry.at("pieces")) {
        const auto rank = piece.at(0).get<int>();
        const auto length = piece.at(2).get<std::int64_t>();
        if (rank < 0 || rank >= world) throw error("rank {} out of range", rank);
        const auto& shard = shards[static_cast<std::size_t>(rank)];
        const auto it = shard.find(name);
        if (it == shard.end()) throw error("rank {}'s shard lacks it", rank);
        if (it->second.numel() != length) throw error("rank {} holds {} elements, the index says {}", rank, it->second.numel(), length);
        parts.push_back(it->second.reshape(-1));
      }
    } catch (const nlohmann::json::exception& e) {
      throw error("{}: parameter {}: malformed entry: {}", index_path.string(), name, e.what());
    } catch (const Error& e) {
      throw error("{}: parameter {}: {}", index_path.string(), name, e.what());
    }
    std::int64_t numel = 1;
    for (auto d : shape) numel *= d;
    auto whole = parts.empty() ? torch::empty({0}) : torch::cat(parts);
    if (whole.numel() != numel)
      throw error("{}: parameter {}: its pieces hold {} elements, its shape [{}] needs {}", index_path.string(), name,
                  whole.numel(), fmt::join(shape, ", "), numel);
    out.emplace_back(name, whole.view(shape));
  }
  for (const auto& name : index.value("buffers", std::vector<std::string>{})) {
    const auto it = shards[0].find(name);
    if (it == shards[0].end()) throw error("{}: buffer {} is not in rank 0's shard", index_path.string(), name);
    out.emplace_back(name, it->second);
  }
  const auto file = std::filesystem::is_directory(output) ? output / model_weights_name : output;
  save_safetensors(file, out);
  return file;
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
