#pragma once
// Everything every trainpp header needs first: LibTorch, fmt (exactly one version), and the error type.
// Not the logger: warn() and note() are in logging.hpp, which sits above the launch environment.

#include <fmt/format.h>
#include <fmt/ranges.h>

// LibTorch ships its own fmt headers (a newer major version) in its include directory. trainpp uses the
// fmt that the build found (Debian's libfmt-dev here) and places it ahead of LibTorch's, so that every
// <fmt/...> in a translation unit, LibTorch's own included, resolves to the same copy. If the include
// order is ever wrong, the two versions would mix silently; this check makes that loud instead.
#if defined(TRAINPP_FMT_VERSION) && (FMT_VERSION != TRAINPP_FMT_VERSION)
#error "trainpp: <fmt/format.h> resolved to a different fmt than the one CMake found (TRAINPP_FMT_VERSION). LibTorch's bundled fmt is shadowing it: put the fmt include directory before LibTorch's (trainpp's CMake target does this)."
#endif

#include <torch/torch.h>

#include <trainpp/detail/error.hpp>

#include <stdexcept>
#include <string>

// Two ways to build trainpp's code that does not depend on user types (file formats, argument parsing,
// the optimizers' arithmetic, logging):
//  - header-only (the default): each header defines it `inline`, and every translation unit that uses it
//    compiles it again;
//  - compiled (link trainpp::compiled, which defines TRAINPP_COMPILED_LIB for its users): the headers only
//    declare it, and one library (src/compiled.cpp) defines it once, so a user's translation unit neither
//    parses nor generates that code again.
// A header marks such a definition `TRAINPP_INLINE` and puts it in an `#if TRAINPP_DEFINITIONS` block after
// the declarations. Templates and the code that depends on user types stay in the headers in both modes.
#if defined(TRAINPP_COMPILED_LIB)
#define TRAINPP_INLINE
#if defined(TRAINPP_BUILDING_COMPILED_LIB)
#define TRAINPP_DEFINITIONS 1
#else
#define TRAINPP_DEFINITIONS 0
#endif
#else
#define TRAINPP_INLINE inline
#define TRAINPP_DEFINITIONS 1
#endif

namespace trainpp {

namespace detail {
/// False, but only once instantiated: the condition of a static_assert in a discarded branch.
template <class...> inline constexpr bool always_false = false;
}  // namespace detail

}  // namespace trainpp
