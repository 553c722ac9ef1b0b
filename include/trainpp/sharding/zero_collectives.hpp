#pragma once
// The collectives of ZeroSharding (sharding/zero.hpp) over its layout (sharding/zero_layout.hpp):
// gathering a unit's flat buffers from every process's shard and freeing them again, prefetching the
// next unit, and reduce-scattering a unit's gradients once backward has produced them all.

#include <trainpp/detail/config.hpp>
#include <trainpp/sharding/zero_layout.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>

#if TRAINPP_DEFINITIONS
#include <c10/core/StorageImpl.h>
#endif

namespace trainpp::detail {

struct ZeroCollectives : ZeroLayout {
  static void wait(State& s, CollectiveHandle& handle, const char* what) {
    if (s.group && handle.valid()) s.group->wait(handle, what);
    handle = CollectiveHandle();
  }

  /// Allocates the unit's flat buffer again and starts filling it from every process's shard.
  /// `again`: gather even though the buffer holds parameters (ShardGradOp after a step).
  static void start_gather(State& s, std::size_t fi, bool again = false);
  static void finish_gather(State& s, Flat& f) { wait(s, f.gathering, "parameter all-gather"); }

  static void gather(State& s, std::size_t u, bool wait_for_it) {
    for (auto fi : s.units[u].flats) start_gather(s, fi);
    if (wait_for_it)
      for (auto fi : s.units[u].flats) finish_gather(s, s.flats[fi]);
  }
  static std::size_t gathered_units(const State& s);
  /// Starts gathering unit u ahead of its use, unless limit_all_gathers says two are gathered already.
  static void prefetch(State& s, std::size_t u) {
    if (s.strategy != ShardingStrategy::full_shard || s.probing) return;
    if (s.options.limit_all_gathers && gathered_units(s) >= 2) return;
    gather(s, u, false);
  }
  static void free_unit(State& s, std::size_t u);
  /// The unit that runs after (+1) or before (-1) `u` in the forward, if the first forward saw one.
  static std::optional<std::size_t> neighbour(const State& s, std::size_t u, int direction);

  // ---- backward ---------------------------------------------------------------------------------

  /// Copies the unit's gradients into one padded buffer, frees them, and starts its reduce-scatter.
  static void launch_reduce(State& s, std::size_t u);
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE void ZeroCollectives::start_gather(State& s, std::size_t fi, bool again) {
  Flat& f = s.flats[fi];
  if (f.gathered && !again) return;
  torch::NoGradGuard no_grad;
  auto* storage = f.full.storage().unsafeGetStorageImpl();
  const auto bytes = static_cast<std::size_t>(f.padded * f.full.element_size());
  if (storage->nbytes() != bytes) {
    storage->set_data_ptr_noswap(storage->allocator()->allocate(bytes));
    storage->set_nbytes(bytes);
  }
  auto mine = f.full.narrow(0, s.rank * f.shard_numel, f.shard_numel);
  if (!f.shard_is_view) mine.copy_(f.shard);
  if (s.group) f.gathering = s.group->all_gather_into_async(f.full, mine);
  f.gathered = true;
}

TRAINPP_INLINE std::size_t ZeroCollectives::gathered_units(const State& s) {
  std::size_t n = 0;
  for (std::size_t u = 0; u < s.units.size(); ++u)
    if (u != s.root && !s.units[u].flats.empty() && s.flats[s.units[u].flats.front()].gathered) ++n;
  return n;
}

TRAINPP_INLINE void ZeroCollectives::free_unit(State& s, std::size_t u) {
  if (s.strategy != ShardingStrategy::full_shard || s.probing) return;
  for (auto fi : s.units[u].flats) {
    Flat& f = s.flats[fi];
    if (!f.gathered) continue;
    finish_gather(s, f);
    auto* storage = f.full.storage().unsafeGetStorageImpl();
    storage->set_data_ptr_noswap(at::DataPtr(nullptr, f.full.device()));
    storage->set_nbytes(0);
    f.gathered = false;
  }
}

TRAINPP_INLINE std::optional<std::size_t> ZeroCollectives::neighbour(const State& s, std::size_t u, int direction) {
  const auto it = std::ranges::find(s.forward_order, u);
  if (it == s.forward_order.end()) return std::nullopt;
  const auto at = (it - s.forward_order.begin()) + direction;
  if (at < 0 || at >= static_cast<std::ptrdiff_t>(s.forward_order.size())) return std::nullopt;
  return s.forward_order[static_cast<std::size_t>(at)];
}

TRAINPP_INLINE void ZeroCollectives::launch_reduce(State& s, std::size_t u) {
  Unit& unit = s.units[u];
  if (unit.launched) return;
  unit.launched = true;
  torch::NoGradGuard no_grad;
  for (auto fi : unit.flats) {
    Flat& f = s.flats[fi];
    auto flat = torch::zeros({f.padded}, f.full.options());
    for (std::size_t i = 0; i < f.params.size(); ++i) {
      auto& p = s.params[f.params[i]];
      if (!p.grad().defined()) continue;
      flat.narrow(0, f.offsets[i], p.numel()).copy_(p.grad().reshape(-1));
      p.mutable_grad().reset();
    }
    f.reducing_flat = flat;
    f.reducing_part = torch::empty({f.shard_numel}, flat.options());
    if (s.group) f.reducing = s.group->reduce_scatter_sum_async(f.reducing_part, flat);
    else f.reducing_part.copy_(flat);
  }
  if (s.options.backward_prefetch == BackwardPrefetch::backward_post)
    if (auto next = neighbour(s, u, -1)) prefetch(s, *next);
  if (u != s.root) free_unit(s, u);
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp::detail
