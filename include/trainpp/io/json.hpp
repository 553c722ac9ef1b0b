#pragma once
// The one JSON reader of the library: every JSON document trainpp reads (arguments files, --fsdp_config,
// --deepspeed, checkpoint state, generation configs, safetensors headers) goes through
// parse_json_strict, so that all of them refuse the same things with the same messages.

#include <trainpp/detail/config.hpp>
#include <trainpp/detail/error.hpp>
#include <trainpp/io/atomic_write.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <filesystem>
#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace trainpp {
namespace detail {

/// Deeper nesting than any state file has is refused while parsing, before it can exhaust the stack
/// of code that walks the document.
inline constexpr int json_max_depth = 64;

/// What parse_json_strict refuses beyond malformed JSON, and how its errors describe the document.
struct JsonLimits {
  int max_depth = json_max_depth;                                  ///< open objects and arrays at once
  std::size_t max_array = std::numeric_limits<std::size_t>::max();  ///< elements of any one array
  std::string_view invalid = "not valid JSON";                      ///< follows the source in every error
};

/// Parses `text` as JSON, refusing NUL bytes (the JSON library stops at one as at the end of the input,
/// which would hide whatever follows), duplicate keys at any level (the library would silently keep
/// one), nesting deeper than limits.max_depth and arrays longer than limits.max_array. Errors read
/// "<source>: <limits.invalid>: <why>". `Json` is nlohmann::json, or nlohmann::ordered_json to keep the
/// key order of the text.
template <class Json = nlohmann::json>
[[nodiscard]] Json parse_json_strict(std::string_view text, std::string_view source, const JsonLimits& limits = {}) {
  if (const auto nul = text.find('\0'); nul != std::string_view::npos)
    throw error("{}: {}: a NUL byte at offset {}", source, limits.invalid, nul);
  struct Container {
    bool is_object;
    std::size_t count = 0;
    std::set<std::string> keys{};
  };
  std::vector<Container> open;
  // Counts a new element of the innermost container.
  auto add_element = [&] {
    if (!open.empty() && !open.back().is_object && ++open.back().count > limits.max_array)
      throw error("{}: {}: an array has more than {} elements", source, limits.invalid, limits.max_array);
  };
  auto check = [&](int /*depth*/, typename Json::parse_event_t event, Json& parsed) -> bool {
    using event_t = typename Json::parse_event_t;
    switch (event) {
      case event_t::object_start:
      case event_t::array_start:
        add_element();
        if (open.size() >= static_cast<std::size_t>(limits.max_depth))
          throw error("{}: {}: nested deeper than {} levels", source, limits.invalid, limits.max_depth);
        open.push_back({event == event_t::object_start});
        break;
      case event_t::object_end:
      case event_t::array_end:
        open.pop_back();
        break;
      case event_t::key:
        if (!open.back().keys.insert(parsed.template get<std::string>()).second)
          throw error("{}: {}: duplicate key \"{}\"", source, limits.invalid, parsed.template get<std::string>());
        break;
      case event_t::value:
        add_element();
        break;
    }
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), check);
  } catch (const typename Json::exception& e) {
    throw error("{}: {}: {}", source, limits.invalid, e.what());
  }
}

// The two documents every reader parses depend on no user type: a program linking trainpp::compiled
// takes these instantiations from there instead of compiling the JSON parser again.
#if !TRAINPP_DEFINITIONS
extern template nlohmann::json parse_json_strict<nlohmann::json>(std::string_view, std::string_view, const JsonLimits&);
extern template nlohmann::ordered_json parse_json_strict<nlohmann::ordered_json>(std::string_view, std::string_view,
                                                                                 const JsonLimits&);
#endif

}  // namespace detail

/// Reads a JSON file strictly (see detail::parse_json_strict); errors name the file.
[[nodiscard]] nlohmann::json read_json_file(const std::filesystem::path& path);

/// Writes `value` to `path` atomically as JSON indented by `indent` spaces, ending in a newline (the
/// layout of HF's trainer_state.json and training_args.json).
void write_json_file(const std::filesystem::path& path, const nlohmann::json& value, int indent = 2);

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE nlohmann::json read_json_file(const std::filesystem::path& path) {
  return detail::parse_json_strict(read_file(path), path.string());
}

TRAINPP_INLINE void write_json_file(const std::filesystem::path& path, const nlohmann::json& value, int indent) {
  write_file_atomic(path, value.dump(indent) + "\n");
}

#if defined(TRAINPP_COMPILED_LIB)
namespace detail {
template nlohmann::json parse_json_strict<nlohmann::json>(std::string_view, std::string_view, const JsonLimits&);
template nlohmann::ordered_json parse_json_strict<nlohmann::ordered_json>(std::string_view, std::string_view,
                                                                          const JsonLimits&);
}  // namespace detail
#endif

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
