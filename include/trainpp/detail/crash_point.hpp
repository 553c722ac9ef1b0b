#pragma once
// Crash injection for testing resume: the environment variable TRAINPP_CRASH_AT=<point>:<step> makes
// the process kill itself with SIGKILL (no destructors, no flushing: as if the machine died) when the
// training loop reaches <point> with global_step == <step>. The points:
//   substep      after a micro-batch's backward that does not end its accumulation window
//   step         right after optimizer step <step>, before it is logged, evaluated or saved
//   checkpoint   while checkpoint-<step> is being written: some files are in its staging directory,
//                the directory is not yet published
//   rotate       after checkpoint-<step> is published, before older checkpoints are rotated away
// Without the variable, each point costs one comparison of a static.

#include <trainpp/detail/config.hpp>

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace trainpp::detail {

struct CrashPlan {
  std::string point;
  std::int64_t step = -1;
};

/// TRAINPP_CRASH_AT parsed once; a malformed value is an Error (a test asking for a crash that
/// silently never happens would pass for the wrong reason).
[[nodiscard]] const CrashPlan& crash_plan();

/// Kills the process with SIGKILL if TRAINPP_CRASH_AT names this point and step.
inline void crash_point(std::string_view point, std::int64_t global_step) {
  const auto& plan = crash_plan();
  if (plan.step == global_step && plan.point == point) {
    std::fflush(nullptr);  // what was printed so far stays visible to the test that reads it
    std::raise(SIGKILL);
  }
}

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE const CrashPlan& crash_plan() {
  static const CrashPlan plan = [] {
    CrashPlan p;
    const char* value = std::getenv("TRAINPP_CRASH_AT");
    if (value == nullptr || *value == '\0') return p;
    const std::string_view text(value);
    const auto colon = text.rfind(':');
    const auto point = text.substr(0, colon == std::string_view::npos ? 0 : colon);
    const bool known = point == "substep" || point == "step" || point == "checkpoint" || point == "rotate";
    std::int64_t step = -1;
    if (colon != std::string_view::npos) {
      try {
        std::size_t used = 0;
        const std::string digits(text.substr(colon + 1));
        step = std::stoll(digits, &used);
        if (used != digits.size()) step = -1;
      } catch (const std::exception&) {
        step = -1;
      }
    }
    if (!known || step < 0)
      throw error("TRAINPP_CRASH_AT must be <point>:<step> with point substep, step, checkpoint or rotate and a "
                  "step >= 0, got '{}'", text);
    p.point = std::string(point);
    p.step = step;
    return p;
  }();
  return plan;
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp::detail
