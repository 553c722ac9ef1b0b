#pragma once
// Skipping a test case that cannot run here (no CUDA build, no Python module, an environment that
// decides for the test), so that ctest reports it as Skipped rather than Passed.
//
//   TRAINPP_SKIP_TEST("needs a CUDA build");   // records the reason and returns from the test case
//   TRAINPP_SKIPPED("no interpreter");         // records the reason only (for a helper the test calls)
//
// The runner (tests/main.cpp) prints TRAINPP_TEST_SKIP_MARKER and the reason at the end of a test case
// that recorded one, unless a check of that case failed: a failure is never hidden behind a skip.
// CMake gives the discovered tests SKIP_REGULAR_EXPRESSION on the marker (tests/CMakeLists.txt).

#include <sstream>
#include <string>

// Printed on a line of its own; ctest matches it. Keep it in step with TRAINPP_TEST_SKIP_REGEX in
// tests/CMakeLists.txt.
#define TRAINPP_TEST_SKIP_MARKER "trainpp-test-skipped: "

namespace trainpp_test {
// The reason the current test case is skipped; empty while it is not.
inline std::string& skip_reason() {
  static std::string reason;
  return reason;
}
}  // namespace trainpp_test

// `reason` is streamed, as in doctest's MESSAGE: TRAINPP_SKIPPED("cannot import " << name).
#define TRAINPP_SKIPPED(reason)                  \
  do {                                           \
    std::ostringstream trainpp_skip_stream;      \
    trainpp_skip_stream << reason;               \
    ::trainpp_test::skip_reason() = trainpp_skip_stream.str(); \
  } while (false)

#define TRAINPP_SKIP_TEST(reason) \
  do {                            \
    TRAINPP_SKIPPED(reason);      \
    return;                       \
  } while (false)
