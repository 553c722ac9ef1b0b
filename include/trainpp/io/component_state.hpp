#pragma once
// scheduler.json and scaler.json (HF: scheduler.pt, scaler.pt): the state() of the learning-rate
// schedule and of the loss scaler, as JSON documents.

#include <trainpp/io/atomic_write.hpp>
#include <trainpp/io/json.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>

namespace trainpp {

/// Writes a component's state() to `path`, atomically, as indented JSON.
inline void save_component_state(const std::filesystem::path& path, const nlohmann::json& state) {
  write_json_file(path, state);
}

/// Reads a component's state back for its load_state() (strict JSON; errors name the file).
[[nodiscard]] inline nlohmann::json load_component_state(const std::filesystem::path& path) {
  return read_json_file(path);
}

}  // namespace trainpp
