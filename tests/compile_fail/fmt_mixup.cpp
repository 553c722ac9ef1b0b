// expect-error: resolved to a different fmt than the one CMake found
// Pins the check in <trainpp/detail/config.hpp> against two fmt versions in one translation unit.
// LibTorch's include directory bundles its own, newer fmt; trainpp's target puts a shim holding
// only the fmt CMake found ahead of it. The failing variant is compiled with LibTorch's directory
// first (tests/CMakeLists.txt arranges that for this case: only the include path can reorder the
// search), so <fmt/format.h> is LibTorch's copy and config.hpp must refuse it.

#include <trainpp/detail/config.hpp>

#ifndef TRAINPP_COMPILE_FAIL
// The twin, compiled with the target's own include path: the fmt seen is the one CMake found.
static_assert(FMT_VERSION == TRAINPP_FMT_VERSION);
#endif
