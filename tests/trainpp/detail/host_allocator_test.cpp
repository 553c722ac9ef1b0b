// Freed host memory stays in the process: a block the size of a layer's activations comes from the
// heap, not from a fresh mmap that would be page-faulted in on every training step.

#include <trainpp/detail/host_allocator.hpp>
#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include "skip.hpp"

#include <cstdlib>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace host_allocator_test {

TEST_CASE("after keep_freed_host_memory, a 48 MiB block is not a separate mapping") {
#if defined(__GLIBC__)
  const bool env_overrides = std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_") ||
                             std::getenv("TRAINPP_KEEP_MALLOC_SETTINGS");
  if (env_overrides) TRAINPP_SKIP_TEST("the environment sets malloc's thresholds; nothing to check");
  trainpp::detail::keep_freed_host_memory();
  CHECK(trainpp::detail::keep_freed_host_memory());  // once per process, and it took effect
  const auto mapped_before = mallinfo2().hblkhd;
  // Above glibc's largest dynamic mmap threshold (32 MiB): with its defaults this block is always a
  // mapping of its own, whatever the process freed before.
  void* block = std::malloc(48 << 20);
  REQUIRE(block != nullptr);
  const auto mapped_with_block = mallinfo2().hblkhd;
  std::free(block);
  CHECK(mapped_with_block == mapped_before);  // from the heap: freeing it keeps it for the next step
#endif
}

}  // namespace host_allocator_test
