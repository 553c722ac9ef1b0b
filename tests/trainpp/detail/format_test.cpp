// detail/format.hpp: thousands() against Python's f"{n:,}" and python_float() against Python's
// str(float), the forms HF's log lines and metrics files use.

#include <trainpp/detail/format.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>

namespace format_test {

using trainpp::detail::python_float;
using trainpp::detail::thousands;

TEST_CASE("format: thousands groups digits by three at every length, negatives included") {
  // Each expected value is Python's f"{n:,}".
  CHECK(thousands(1) == "1");
  CHECK(thousands(12) == "12");
  CHECK(thousands(100) == "100");
  CHECK(thousands(1000) == "1,000");
  CHECK(thousands(12345) == "12,345");
  CHECK(thousands(100000) == "100,000");
  CHECK(thousands(9999999) == "9,999,999");
  CHECK(thousands(-1) == "-1");
  CHECK(thousands(-999) == "-999");
  CHECK(thousands(-100000) == "-100,000");
  CHECK(thousands(std::numeric_limits<long long>::max()) == "9,223,372,036,854,775,807");
}

// Its magnitude does not fit a long long: negating it would overflow (the result once started "--9,").
TEST_CASE("format: thousands of the most negative long long is Python's") {
  CHECK(thousands(std::numeric_limits<long long>::min()) == "-9,223,372,036,854,775,808");
}

TEST_CASE("format: python_float prints whole numbers with .0 and the shortest round-trip digits") {
  // Each expected value is Python's str(float).
  CHECK(python_float(1.0) == "1.0");
  CHECK(python_float(0.0) == "0.0");
  CHECK(python_float(-0.0) == "-0.0");
  CHECK(python_float(-3.25) == "-3.25");
  CHECK(python_float(0.1) == "0.1");
  CHECK(python_float(0.1 + 0.2) == "0.30000000000000004");
  CHECK(python_float(123456789.0) == "123456789.0");
  CHECK(python_float(1e15) == "1000000000000000.0");
  CHECK(python_float(0.0001) == "0.0001");
}

TEST_CASE("format: python_float switches to exponent form where Python does, without adding .0") {
  CHECK(python_float(1e16) == "1e+16");
  CHECK(python_float(1e-05) == "1e-05");
  CHECK(python_float(2.5e-7) == "2.5e-07");
  CHECK(python_float(1.5e300) == "1.5e+300");
  CHECK(python_float(5e-324) == "5e-324");
  // Every printed form reads back as the same double.
  for (const double v : {0.1, 1.0 / 3.0, 2.0 / 3.0 * 1e-9, 6.02214076e23, 1e16, 5e-324})
    CHECK(std::strtod(python_float(v).c_str(), nullptr) == v);
}

TEST_CASE("format: python_float spells the non-finite values as Python does") {
  CHECK(python_float(std::numeric_limits<double>::quiet_NaN()) == "nan");
  CHECK(python_float(-std::numeric_limits<double>::quiet_NaN()) == "nan");
  CHECK(python_float(std::numeric_limits<double>::infinity()) == "inf");
  CHECK(python_float(-std::numeric_limits<double>::infinity()) == "-inf");
}

}  // namespace format_test
