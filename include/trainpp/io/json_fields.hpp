#pragma once
// Typed access to the JSON objects of checkpoint files: every reader of trainer_state.json and of
// the optimizer state's metadata goes through it, so that every error names the file and the key.

#include <trainpp/detail/config.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace trainpp {

namespace detail {

/// A typed view of one JSON object read from a file: each accessor names the file and the key when
/// the value is missing or of the wrong type.
class JsonFields {
 public:
  JsonFields(const nlohmann::json& object, std::string source, std::string what)
      : object_(object), source_(std::move(source)), what_(std::move(what)) {
    if (!object_.is_object()) throw error("{}: {} must be a JSON object, got {}", source_, what_, object_.type_name());
  }
  [[nodiscard]] bool has(const char* key) const { return object_.contains(key); }
  [[nodiscard]] bool is_null(const char* key) const { return !has(key) || object_.at(key).is_null(); }
  [[nodiscard]] const nlohmann::json& at(const char* key) const {
    if (!has(key)) throw error("{}: {} lacks the key \"{}\"", source_, what_, key);
    return object_.at(key);
  }

  [[nodiscard]] std::int64_t integer(const char* key, std::int64_t min = 0) const;
  [[nodiscard]] double number(const char* key) const {
    const auto& v = at(key);
    if (!v.is_number()) throw fail(key, "a number", v);
    return v.get<double>();
  }
  [[nodiscard]] bool boolean(const char* key) const {
    const auto& v = at(key);
    if (!v.is_boolean()) throw fail(key, "true or false", v);
    return v.get<bool>();
  }
  [[nodiscard]] std::string string(const char* key) const {
    const auto& v = at(key);
    if (!v.is_string()) throw fail(key, "a string", v);
    return v.get<std::string>();
  }
  template <class F>
  [[nodiscard]] auto optional(const char* key, F get) const -> std::optional<decltype((this->*get)(key))> {
    if (is_null(key)) return std::nullopt;
    return (this->*get)(key);
  }

  [[nodiscard]] Error fail(const char* key, std::string_view expected, const nlohmann::json& got) const {
    auto shown = got.dump();
    if (shown.size() > 80) shown = shown.substr(0, 77) + "...";
    return error("{}: {} \"{}\" must be {}, got {}", source_, what_, key, expected, shown);
  }

 private:
  const nlohmann::json& object_;
  std::string source_;
  std::string what_;
};

}  // namespace detail

#if TRAINPP_DEFINITIONS

namespace detail {

TRAINPP_INLINE std::int64_t JsonFields::integer(const char* key, std::int64_t min) const {
  const auto& v = at(key);
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) &&
        static_cast<std::int64_t>(u) >= min)
      return static_cast<std::int64_t>(u);
  } else if (v.is_number_integer() && v.get<std::int64_t>() >= min) {
    return v.get<std::int64_t>();
  }
  throw fail(key, fmt::format("an integer of at least {}", min), v);
}

}  // namespace detail

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
