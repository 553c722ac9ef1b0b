#pragma once
// HF's `--optim_args`: extra optimizer settings as "key=value,key=value" (spaces ignored), read per
// optimizer (transformers' _parse_optim_args and the _get_<optimizer> handlers).
//
// Where trainpp differs on purpose: HF ignores keys an optimizer does not read, parses a boolean as
// "true/1/yes, anything else false", and lets a later duplicate win; here each of those is an error
// naming the key, so that a misspelt setting never trains silently with the default.

#include <trainpp/detail/config.hpp>

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if TRAINPP_DEFINITIONS
#include <charconv>
#include <cmath>
#include <system_error>
#endif

namespace trainpp {

class OptimArgs {
 public:
  OptimArgs() = default;

  /// Parses `text` as HF does (spaces removed, entries split at ',', each at its one '='). Throws
  /// trainpp::Error for an entry that is not key=value, an empty key, or a key given twice.
  [[nodiscard]] static OptimArgs parse(std::string_view text);

  [[nodiscard]] bool empty() const { return entries_.empty(); }
  [[nodiscard]] const std::vector<std::pair<std::string, std::string>>& entries() const { return entries_; }

  /// Refuses every key `optim` does not read from optim_args (`keys`), naming those it does. `note`
  /// says more where HF's Trainer passes settings another way (e.g. "its betas are adam_beta1/2").
  void accept_only(std::string_view optim, std::span<const std::string_view> keys, std::string_view note = {}) const;

  /// The value of `key` as a finite number, if given; throws trainpp::Error if it is not one.
  [[nodiscard]] std::optional<double> number(std::string_view key) const;

  /// The value of `key` as a boolean (true/1/yes or false/0/no, any case), if given.
  [[nodiscard]] std::optional<bool> flag(std::string_view key) const;

 private:
  [[nodiscard]] const std::string* find(std::string_view key) const {
    for (const auto& [k, v] : entries_)
      if (k == key) return &v;
    return nullptr;
  }

  std::vector<std::pair<std::string, std::string>> entries_;
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE OptimArgs OptimArgs::parse(std::string_view text) {
  std::string compact;
  for (const char c : text)
    if (c != ' ') compact += c;
  OptimArgs out;
  if (compact.empty()) return out;
  std::string_view rest = compact;
  while (true) {
    const auto comma = rest.find(',');
    const std::string_view entry = rest.substr(0, comma);
    const auto equals = entry.find('=');
    if (equals == std::string_view::npos || equals == 0 || entry.find('=', equals + 1) != std::string_view::npos)
      throw error("optim_args: '{}' is not key=value (expected e.g. \"momentum=0.9,nesterov=true\")", entry);
    const std::string key(entry.substr(0, equals));
    if (out.find(key)) throw error("optim_args: '{}' is given twice", key);
    out.entries_.emplace_back(key, std::string(entry.substr(equals + 1)));
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return out;
}

TRAINPP_INLINE void OptimArgs::accept_only(std::string_view optim, std::span<const std::string_view> keys,
                                           std::string_view note) const {
  for (const auto& [key, value] : entries_) {
    bool known = false;
    for (const auto k : keys) known = known || k == key;
    if (known) continue;
    if (key == "weight_decay")
      throw error("optim_args: weight_decay has no effect in HF's Trainer (its parameter groups set their own); "
                  "use --weight_decay");
    if (keys.empty())
      throw error("optim_args: --optim {} reads no optim_args, got '{}'{}{}", optim, key, note.empty() ? "" : "; ", note);
    throw error("optim_args: --optim {} does not read '{}' (it reads: {}){}{}", optim, key, fmt::join(keys, ", "),
                note.empty() ? "" : "; ", note);
  }
}

TRAINPP_INLINE std::optional<double> OptimArgs::number(std::string_view key) const {
  const std::string* text = find(key);
  if (!text) return std::nullopt;
  // Python's float() takes an explicit '+', from_chars does not: skip one (a sign after it stays an error).
  const char* begin = text->data();
  const char* const last = text->data() + text->size();
  if (begin != last && *begin == '+' && begin + 1 != last && begin[1] != '-' && begin[1] != '+') ++begin;
  double value = 0;
  const auto [end, ec] = std::from_chars(begin, last, value);
  if (ec != std::errc{} || end != last || !std::isfinite(value))
    throw error("optim_args: {}={} is not a finite number", key, *text);
  return value;
}

TRAINPP_INLINE std::optional<bool> OptimArgs::flag(std::string_view key) const {
  const std::string* text = find(key);
  if (!text) return std::nullopt;
  std::string lower;
  for (const char c : *text) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (lower == "true" || lower == "1" || lower == "yes") return true;
  if (lower == "false" || lower == "0" || lower == "no") return false;
  throw error("optim_args: {}={} is not a boolean (true/false, 1/0, yes/no)", key, *text);
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
