#pragma once
// Tiny transformers models and their outputs, written by models_hf_reference.py, for the model
// families' parity tests. The script runs once per build tree and family, again only when it changed.

#include <trainpp/io/json.hpp>
#include <trainpp/io/safetensors.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace models_test {

/// The directory holding one subdirectory per model variant, or nullopt when the reference cannot be
/// produced here (no interpreter, transformers not installed): the caller reports a skip then.
/// A failing script is a test failure.
inline std::optional<std::filesystem::path> hf_reference_dir(const std::string& family) {
#ifndef TRAINPP_PYTHON
  (void)family;
  return std::nullopt;
#else
  namespace fs = std::filesystem;
  const fs::path script = fs::path(TRAINPP_SOURCE_DIR) / "tests/trainpp/models/models_hf_reference.py";
  const fs::path dir = fs::path(TRAINPP_BINARY_DIR) / ("models_hf_reference_" + family);
  const fs::path complete = dir / "complete";
  if (fs::exists(complete) && fs::last_write_time(complete) >= fs::last_write_time(script)) return dir;
  fs::remove_all(dir);
  const std::string command = fmt::format("'{}' '{}' '{}' {}", TRAINPP_PYTHON, script.string(), dir.string(), family);
  const int status = std::system(command.c_str());
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) return std::nullopt;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw trainpp::error("{} failed (status {})", command, status);
  return dir;
#endif
}

inline std::map<std::string, torch::Tensor> read_tensors(const std::filesystem::path& path) {
  std::map<std::string, torch::Tensor> out;
  for (auto& [name, tensor] : trainpp::load_safetensors(path).tensors) out.emplace(name, tensor);
  return out;
}

/// The largest absolute difference of two tensors of one shape.
inline double max_abs_difference(const torch::Tensor& a, const torch::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  return (a - b).abs().max().item<double>();
}

}  // namespace models_test
