#pragma once
// The parameter layout of ZeroSharding (sharding/zero.hpp): the units auto-wrap picks, each unit's
// parameters of one dtype laid end to end in one flat buffer padded to a multiple of the number of
// processes N, and which piece of every parameter each process owns. No communication here: the
// collectives that move these buffers are sharding/zero_collectives.hpp's.

#include <trainpp/detail/config.hpp>
#include <trainpp/args.hpp>
#include <trainpp/distributed/process_group.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#if TRAINPP_DEFINITIONS
#include <functional>
#include <map>
#include <set>
#endif

namespace trainpp::detail {

/// ZeroSharding's state and layout: process r owns elements [r·S, (r+1)·S) of every flat buffer
/// (S = padded size / N).
struct ZeroLayout {
  struct Flat {  ///< one unit's parameters of one dtype, end to end
    std::size_t unit = 0;
    std::vector<std::size_t> params;     ///< indices into State::params
    std::vector<std::int64_t> offsets;   ///< where each starts in the flat buffer
    std::int64_t numel = 0, padded = 0, shard_numel = 0;
    torch::Tensor full;        ///< padded; its storage is released while a FullShard unit is freed
    torch::Tensor shard;       ///< this process's part: a view of `full`, or its own (FullShard, offload)
    bool shard_is_view = false;
    torch::Tensor grad_shard;  ///< summed reduced gradients of this process's part
    bool gathered = true;
    CollectiveHandle gathering;
    torch::Tensor reducing_flat, reducing_part;
    CollectiveHandle reducing;
  };
  struct Unit {
    std::string name, type;
    const torch::nn::Module* module = nullptr;  ///< null for the root unit
    std::vector<std::size_t> params, flats;
    std::int64_t pending = 0;
    bool launched = false;
    bool entered = false;  ///< called through trainpp::call during the first forward
  };
  struct Piece {
    torch::Tensor data;  ///< the optimizer's parameter
    std::size_t flat = 0;
    std::int64_t begin = 0;  ///< where it starts in the flat buffer's shard
  };
  struct State {
    ShardingStrategy strategy{};
    FsdpOptions options;
    std::shared_ptr<ProcessGroup> group;  ///< the processes that share the flat buffers (a node's, when hybrid)
    /// Hybrid sharding: the processes holding the same shard on the other nodes (null otherwise).
    std::shared_ptr<ProcessGroup> replicas;
    int rank = 0, world = 1;  ///< within `group`: the shard this process owns, and how many there are
    int data_parallel_world = 1;  ///< every process of the job: the gradients are averaged over them
    torch::Device device{torch::kCPU}, offload{torch::kCPU};
    std::vector<torch::Tensor> params;
    std::vector<std::string> names;
    std::unordered_map<std::string, std::size_t> index_of_name;
    std::vector<std::size_t> unit_of;
    std::vector<Unit> units;
    std::size_t root = 0;
    std::vector<Flat> flats;
    std::vector<Piece> pieces;
    bool validated = false, probing = false;
    std::vector<std::size_t> forward_order;  ///< units in the order the first forward called them
  };


  /// A module's class name as users write it: no namespaces, no TORCH_MODULE "Impl" suffix.
  static std::string short_type(const std::string& full);

  /// Auto-wrap: modules whose class is listed, or (size-based) the deepest modules that still hold at
  /// least min_num_params parameters not wrapped below them, as torch's size_based_auto_wrap_policy.
  static void build_units(State& s, torch::nn::Module& model);

  /// Lays each unit's parameters of one dtype end to end in a flat buffer padded to a multiple of the
  /// number of processes, and makes the parameters views of it; this process's part becomes its shard.
  static void build_flats(State& s);

  /// Parameter k's elements in rank r's part of its flat buffer: (start within the shard, length).
  static std::pair<std::int64_t, std::int64_t> piece_range(const State& s, std::size_t k, int r);
  /// Parameter k's piece in this process's shard, as the optimizer holds it.
  static Piece piece_of(State& s, std::size_t k);
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE std::string ZeroLayout::short_type(const std::string& full) {
  const auto at = full.rfind("::");
  std::string name = at == std::string::npos ? full : full.substr(at + 2);
  if (name.size() > 4 && name.ends_with("Impl")) name.resize(name.size() - 4);
  return name;
}

TRAINPP_INLINE void ZeroLayout::build_units(State& s, torch::nn::Module& model) {
  std::unordered_map<const void*, std::size_t> seen;
  for (const auto& item : model.named_parameters(true)) {
    const auto& p = item.value();
    if (!p.requires_grad() || seen.contains(p.unsafeGetTensorImpl())) continue;
    seen.emplace(p.unsafeGetTensorImpl(), s.params.size());
    s.index_of_name.emplace(item.key(), s.params.size());
    s.params.push_back(p);
    s.names.push_back(item.key());
  }
  s.unit_of.assign(s.params.size(), static_cast<std::size_t>(-1));
  std::vector<Unit> wrapped;
  auto params_of = [&](const torch::nn::Module& m) {
    std::vector<std::size_t> out;
    for (const auto& p : m.parameters(true)) {
      const auto it = seen.find(p.unsafeGetTensorImpl());
      if (it != seen.end() && s.unit_of[it->second] == static_cast<std::size_t>(-1)) out.push_back(it->second);
    }
    std::ranges::sort(out);
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  };
  auto claim = [&](const std::string& name, const torch::nn::Module& m) {
    Unit unit;
    unit.name = name;
    unit.type = short_type(m.name());
    unit.module = &m;
    unit.params = params_of(m);
    if (unit.params.empty()) return;
    for (auto k : unit.params) s.unit_of[k] = wrapped.size();
    wrapped.push_back(std::move(unit));
  };
  const auto& classes = s.options.transformer_layer_cls_to_wrap;
  if (!classes.empty()) {
    std::set<std::string> found;
    for (const auto& item : model.named_modules("", /*include_self=*/false)) {
      const std::string type = item.value()->name();
      const bool listed = std::ranges::any_of(classes, [&](const std::string& c) { return c == type || c == short_type(type); });
      if (!listed) continue;
      found.insert(type);
      claim(item.key(), *item.value());
    }
    if (found.empty())
      throw error("fsdp_transformer_layer_cls_to_wrap: no module of class {} in the model (its module classes: {})",
                  fmt::join(classes, ", "), [&] {
                  std::set<std::string> types;
                  for (const auto& item : model.named_modules("", false)) types.insert(short_type(item.value()->name()));
                  return fmt::format("{}", fmt::join(types, ", "));
                  }());
  } else if (s.options.min_num_params > 0) {
    // Post-order: children decide first; a module is wrapped when what is left unwrapped below it
    // reaches the threshold (the root never: it is the root unit).
    std::function<void(const std::string&, const torch::nn::Module&, bool)> visit =
        [&](const std::string& name, const torch::nn::Module& m, bool is_root) {
          for (const auto& child : m.named_children())
            visit(name.empty() ? child.key() : name + "." + child.key(), *child.value(), false);
          if (is_root) return;
          std::int64_t n = 0;
          for (auto k : params_of(m)) n += s.params[k].numel();
          if (n >= s.options.min_num_params) claim(name, m);
        };
    visit("", model, true);
  }
  // Launch order does not matter for correctness; units stay in module order, the root last.
  s.units = std::move(wrapped);
  Unit root;
  root.type = short_type(model.name());
  for (std::size_t k = 0; k < s.params.size(); ++k)
    if (s.unit_of[k] == static_cast<std::size_t>(-1)) {
      s.unit_of[k] = s.units.size();
      root.params.push_back(k);
    }
  s.root = s.units.size();
  s.units.push_back(std::move(root));
  for (auto& unit : s.units) unit.pending = static_cast<std::int64_t>(unit.params.size());
}

TRAINPP_INLINE void ZeroLayout::build_flats(State& s) {
  for (std::size_t u = 0; u < s.units.size(); ++u) {
    std::map<c10::ScalarType, std::size_t> by_dtype;
    for (auto k : s.units[u].params) {
      const auto dtype = s.params[k].scalar_type();
      if (!by_dtype.contains(dtype)) {
        by_dtype[dtype] = s.flats.size();
        s.units[u].flats.push_back(s.flats.size());
        s.flats.emplace_back().unit = u;
      }
      Flat& f = s.flats[by_dtype[dtype]];
      f.params.push_back(k);
      f.offsets.push_back(f.numel);
      f.numel += s.params[k].numel();
    }
  }
  for (auto& f : s.flats) {
    f.padded = (f.numel + s.world - 1) / s.world * s.world;
    f.shard_numel = f.padded / s.world;
    const auto options = s.params[f.params.front()].options().requires_grad(false);
    f.full = torch::zeros({f.padded}, options);
    for (std::size_t i = 0; i < f.params.size(); ++i) {
      auto& p = s.params[f.params[i]];
      auto view = f.full.narrow(0, f.offsets[i], p.numel());
      view.copy_(p.detach().reshape(-1));
      p.set_data(view.view(p.sizes()));
    }
    f.shard_is_view = s.strategy == ShardingStrategy::shard_grad_op && !s.options.offload;
    auto mine = f.full.narrow(0, s.rank * f.shard_numel, f.shard_numel);
    f.shard = f.shard_is_view ? mine : mine.to(s.offload, /*non_blocking=*/false, /*copy=*/true);
    f.grad_shard = torch::zeros({f.shard_numel}, options.device(s.offload));
    f.gathered = true;
  }
}

TRAINPP_INLINE std::pair<std::int64_t, std::int64_t> ZeroLayout::piece_range(const State& s, std::size_t k, int r) {
  const auto& unit = s.units[s.unit_of[k]];
  for (auto fi : unit.flats) {
    const Flat& f = s.flats[fi];
    for (std::size_t i = 0; i < f.params.size(); ++i)
      if (f.params[i] == k) {
        const auto lo = std::max(f.offsets[i], r * f.shard_numel);
        const auto hi = std::min(f.offsets[i] + s.params[k].numel(), (r + 1) * f.shard_numel);
        if (hi <= lo) return {0, 0};  // wholly in other processes' parts
        return {lo - r * f.shard_numel, hi - lo};
      }
  }
  return {0, 0};
}

TRAINPP_INLINE ZeroLayout::Piece ZeroLayout::piece_of(State& s, std::size_t k) {
  const auto& unit = s.units[s.unit_of[k]];
  Piece piece;
  for (auto fi : unit.flats)
    if (std::ranges::find(s.flats[fi].params, k) != s.flats[fi].params.end()) piece.flat = fi;
  const auto [begin, length] = piece_range(s, k, s.rank);
  piece.begin = begin;
  piece.data = s.flats[piece.flat].shard.narrow(0, begin, length).detach().requires_grad_(true);
  return piece;
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp::detail
