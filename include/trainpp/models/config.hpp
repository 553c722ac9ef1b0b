#pragma once
// PretrainedConfig: a model's config.json as Hugging Face's PretrainedConfig writes it — typed access
// to the keys a model knows, every other key kept as read and written back unchanged, so that a
// directory loaded and saved again carries what transformers (or another tool) put there.

#include <trainpp/detail/config.hpp>
#include <trainpp/io/atomic_write.hpp>
#include <trainpp/io/json.hpp>

#include <nlohmann/json.hpp>

#include <concepts>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace trainpp {

/// The file names of a Hugging Face model directory (transformers' CONFIG_NAME, GENERATION_CONFIG_NAME).
inline constexpr std::string_view config_name = "config.json";
inline constexpr std::string_view generation_config_name = "generation_config.json";

/// The contents of a config.json: a JSON object whose keys are read typed (`get<std::int64_t>("n_embd")`)
/// and written back with the keys nobody asked for untouched. Errors name the file and the key.
///
/// - `get<T>(key)`: a required key; absent, null or of another JSON type is an Error.
/// - `get<T>(key, fallback)`: an optional key; absent or null gives `fallback` (transformers' class
///   defaults), another JSON type is an Error.
/// - T is bool, an integer type, a floating-point type or std::string; an integer is accepted where a
///   float is asked for (JSON writes 1.0 as 1 in some tools), never the other way round.
class PretrainedConfig {
 public:
  /// An empty config (no keys), as a model built in code starts from before it names its own.
  PretrainedConfig() = default;

  /// `values` must be a JSON object; `source` is what errors name (the file it came from).
  explicit PretrainedConfig(nlohmann::json values, std::string source = std::string(config_name))
      : values_(std::move(values)), source_(std::move(source)) {
    if (!values_.is_object()) throw error("{}: a model config must be a JSON object, got {}", source_, values_.type_name());
  }

  /// Reads `file` strictly (io/json.hpp: no duplicate keys, no NUL bytes, no trailing garbage).
  [[nodiscard]] static PretrainedConfig read(const std::filesystem::path& file) {
    if (!std::filesystem::is_regular_file(file)) throw error("{}: no such file (a model directory needs its {})", file.string(), config_name);
    return PretrainedConfig(read_json_file(file), file.string());
  }

  /// The generation_config.json that came with the config (null when none did): a model that
  /// generates saves it back unchanged.
  nlohmann::json generation = nullptr;

  [[nodiscard]] const std::string& source() const { return source_; }
  [[nodiscard]] const nlohmann::json& json() const { return values_; }

  /// Present with a value other than null.
  [[nodiscard]] bool has(std::string_view key) const {
    const auto it = values_.find(key);
    return it != values_.end() && !it->is_null();
  }

  template <class T>
  [[nodiscard]] T get(std::string_view key) const {
    if (!has(key)) throw error("{}: missing required key \"{}\"", source_, key);
    return convert<T>(key, values_.at(std::string(key)));
  }

  template <class T>
  [[nodiscard]] T get(std::string_view key, T fallback) const {
    return has(key) ? convert<T>(key, values_.at(std::string(key))) : std::move(fallback);
  }

  template <class T>
  [[nodiscard]] std::optional<T> get_optional(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    return convert<T>(key, values_.at(std::string(key)));
  }

  /// Sets `key` (replacing any value); std::nullopt writes null, as transformers writes None.
  template <class T>
  void set(std::string_view key, const T& value) {
    if constexpr (requires { value.has_value(); }) {
      if (value.has_value()) values_[std::string(key)] = *value;
      else values_[std::string(key)] = nullptr;
    } else {
      values_[std::string(key)] = value;
    }
  }

  /// Sets `key` only when the config does not have it yet (for defaults a model adds).
  template <class T>
  void set_default(std::string_view key, const T& value) {
    if (!values_.contains(key)) set(key, value);
  }

  /// Throws naming the first of `keys` the config lacks.
  void require(std::span<const std::string_view> keys) const {
    for (const auto key : keys)
      if (!has(key)) throw error("{}: missing required key \"{}\"", source_, key);
  }

  /// Throws unless "model_type" is `expected` (a config written for another architecture).
  void expect_model_type(std::string_view expected, std::string_view model_class) const {
    const auto it = values_.find("model_type");
    if (it == values_.end() || it->is_null())
      throw error("{}: missing required key \"model_type\" ({} expects \"{}\")", source_, model_class, expected);
    if (!it->is_string() || it->get_ref<const std::string&>() != expected)
      throw error("{}: key \"model_type\" is {}, but {} expects \"{}\"", source_, it->dump(), model_class, expected);
  }

  /// The text transformers writes (PretrainedConfig.to_json_string): keys sorted, two-space indent,
  /// a final newline.
  [[nodiscard]] std::string to_json_string() const { return values_.dump(2) + "\n"; }

  /// Writes to_json_string() to `file` atomically (io/atomic_write.hpp).
  void save(const std::filesystem::path& file) const { write_file_atomic(file, to_json_string()); }

 private:
  template <class T>
  [[nodiscard]] T convert(std::string_view key, const nlohmann::json& value) const {
    auto wrong = [&](std::string_view expected) {
      return error("{}: key \"{}\" must be {}, got {} ({})", source_, key, expected, value.type_name(), value.dump());
    };
    if constexpr (std::is_same_v<T, bool>) {
      if (!value.is_boolean()) throw wrong("true or false");
      return value.get<bool>();
    } else if constexpr (std::is_integral_v<T>) {
      if (!value.is_number_integer()) throw wrong("an integer");
      if (value.is_number_unsigned() ? value.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<T>::max())
                                     : (value.get<std::int64_t>() < static_cast<std::int64_t>(std::numeric_limits<T>::min())))
        throw wrong("an integer in range");
      return value.get<T>();
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!value.is_number()) throw wrong("a number");
      return value.get<T>();
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!value.is_string()) throw wrong("a string");
      return value.get<std::string>();
    } else {
      static_assert(std::is_same_v<T, bool>, "PretrainedConfig::get: T must be bool, an integer, a float or std::string");
    }
  }

  nlohmann::json values_ = nlohmann::json::object();
  std::string source_ = std::string(config_name);
};

}  // namespace trainpp
