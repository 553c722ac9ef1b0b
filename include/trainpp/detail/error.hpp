#pragma once
// trainpp::Error and trainpp::error(): here, apart from config.hpp, so that headers below LibTorch's
// (the logger, the launch environment) can throw them too.

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace trainpp {

/// The one exception type trainpp throws for bad input: flags, files, checkpoints, combinations of
/// arguments. Its message names the problem; examples catch it at main() and exit non-zero.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Builds an Error from a fmt format string.
template <typename... Args>
[[nodiscard]] Error error(fmt::format_string<Args...> format, Args&&... args) {
  return Error(fmt::format(format, std::forward<Args>(args)...));
}

namespace detail {
/// The first line of an exception's message: c10's messages carry a C++ stack trace after it.
inline std::string first_line(const char* what) {
  std::string text(what);
  if (const auto nl = text.find('\n'); nl != std::string::npos) text.resize(nl);
  return text;
}
}  // namespace detail

}  // namespace trainpp
