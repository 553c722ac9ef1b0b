// detail/error.hpp: trainpp::Error, the fmt-formatting error() builder, and first_line() for c10
// messages that carry a stack trace after their first line.

#include <trainpp/detail/error.hpp>

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <type_traits>

namespace error_test {

TEST_CASE("error: error() formats its arguments with fmt into an Error") {
  const trainpp::Error e = trainpp::error("bad {} at step {}: {:.2f}", "learning_rate", 7, 0.125);
  CHECK(std::string(e.what()) == "bad learning_rate at step 7: 0.12");
  // A format string without replacement fields is taken verbatim.
  CHECK(std::string(trainpp::error("no arguments").what()) == "no arguments");
  // Braces are escaped as fmt escapes them, so a literal {} in a message survives.
  CHECK(std::string(trainpp::error("a map {{}} of {}", 3).what()) == "a map {} of 3");
}

TEST_CASE("error: Error is a std::runtime_error, so callers that catch std::exception see it") {
  static_assert(std::is_base_of_v<std::runtime_error, trainpp::Error>);
  // The example mains catch trainpp::Error; generic code catches std::exception. Both must work.
  try {
    throw trainpp::error("file {} does not exist", "x.json");
  } catch (const std::exception& e) {
    CHECK(std::string(e.what()) == "file x.json does not exist");
    CHECK(dynamic_cast<const trainpp::Error*>(&e) != nullptr);
  }
  CHECK_THROWS_WITH_AS(throw trainpp::error("step {} < 0", -1), doctest::Contains("step -1 < 0"), trainpp::Error);
}

TEST_CASE("error: first_line keeps the text before the first newline") {
  CHECK(trainpp::detail::first_line("Expected a tensor\nException raised from foo at bar.cpp:12\nframe #0") ==
        "Expected a tensor");
  CHECK(trainpp::detail::first_line("one line only") == "one line only");
  CHECK(trainpp::detail::first_line("") == "");
  CHECK(trainpp::detail::first_line("\nthe trace") == "");
  CHECK(trainpp::detail::first_line("trailing newline\n") == "trailing newline");
  // Only '\n' ends a line: a '\r' before it stays, as the message had it.
  CHECK(trainpp::detail::first_line("windows\r\nnext") == "windows\r");
}

}  // namespace error_test
