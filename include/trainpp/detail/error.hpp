#pragma once
// trainpp::Error and trainpp::error(): here, apart from config.hpp, so that headers below LibTorch's
// (the logger, the launch environment) can throw them too.

#include <fmt/format.h>

#include <stdexcept>
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

}  // namespace trainpp
