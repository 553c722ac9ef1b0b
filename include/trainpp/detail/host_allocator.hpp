#pragma once
// Keeping freed host memory in the process across training steps.
//
// glibc's malloc hands every freed block above its mmap threshold (128 KiB at start) back to the
// kernel. A training step allocates and frees the same activation and gradient buffers every step, so
// on the CPU each of them is mapped, page-faulted in and unmapped again, step after step: a measured
// 15% of a small transformer's step (bench/README.md). Python processes rarely show it because their
// heap churn raises glibc's dynamic threshold early. Fixing the thresholds makes freed blocks reusable.

#include <trainpp/detail/config.hpp>

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace trainpp::detail {

/// Raises glibc's mmap threshold to 64 MiB and its trim threshold to 256 MiB, once per process, unless
/// the environment already sets either (MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_, which glibc
/// has applied) or TRAINPP_KEEP_MALLOC_SETTINGS is set. Returns whether it changed anything. The
/// cost: up to 256 MiB of freed memory may stay mapped instead of going back to the kernel.
bool keep_freed_host_memory();

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE bool keep_freed_host_memory() {
#if defined(__GLIBC__)
  static const bool changed = [] {
    if (std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr || std::getenv("MALLOC_TRIM_THRESHOLD_") != nullptr ||
        std::getenv("TRAINPP_KEEP_MALLOC_SETTINGS") != nullptr)
      return false;
    return ::mallopt(M_MMAP_THRESHOLD, 64 << 20) == 1 && ::mallopt(M_TRIM_THRESHOLD, 256 << 20) == 1;
  }();
  return changed;
#else
  return false;
#endif
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp::detail
