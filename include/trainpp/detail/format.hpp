#pragma once
// Numbers as HF's Python prints them, for the log lines, the console and the metrics files: kept apart
// from those users so that each can include it without including the others.

#include <trainpp/detail/config.hpp>

#include <fmt/format.h>

#include <cmath>
#include <string>

namespace trainpp::detail {

/// 60000 as "60,000" (Python's f"{n:,}", which HF's log lines use).
std::string thousands(long long n);

/// A float as Python's str() prints it: shortest round-trip form, "1.0" rather than "1".
std::string python_float(double v);

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE std::string thousands(long long n) {
  // The magnitude as unsigned: -n overflows for the most negative long long.
  const unsigned long long magnitude = n < 0 ? 0ULL - static_cast<unsigned long long>(n) : static_cast<unsigned long long>(n);
  const std::string digits = fmt::format("{}", magnitude);
  std::string out = n < 0 ? "-" : "";
  // Appending, not inserting: GCC 12 warns falsely about string::insert here (-Wstringop-overflow).
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

TRAINPP_INLINE std::string python_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp::detail
