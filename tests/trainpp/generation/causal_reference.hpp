#pragma once
// Tiny GPT-2 and Llama models saved by transformers, with what transformers' generate and logits
// processors give, written by causal_generate_hf_reference.py once per build tree (again only when the
// script changed).

#include <trainpp/io/json.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>

namespace generation_reference {

/// The directory the script wrote (gpt2/, llama/, reference.json), or nullopt when it cannot run here
/// (no interpreter, transformers not installed): the caller reports a skip then. A failing script is a
/// test failure.
inline std::optional<std::filesystem::path> causal_reference_dir() {
#ifndef TRAINPP_PYTHON
  return std::nullopt;
#else
  namespace fs = std::filesystem;
  const fs::path script = fs::path(TRAINPP_SOURCE_DIR) / "tests/trainpp/generation/causal_generate_hf_reference.py";
  const fs::path dir = fs::path(TRAINPP_BINARY_DIR) / "causal_generate_hf_reference";
  const fs::path complete = dir / "complete";
  if (fs::exists(complete) && fs::last_write_time(complete) >= fs::last_write_time(script)) return dir;
  fs::remove_all(dir);
  const std::string command = fmt::format("'{}' '{}' '{}'", TRAINPP_PYTHON, script.string(), dir.string());
  const int status = std::system(command.c_str());
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) return std::nullopt;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw trainpp::error("{} failed (status {})", command, status);
  return dir;
#endif
}

/// A JSON array of arrays of numbers as a tensor of `dtype`; null stands for -inf (a filtered score),
/// which JSON cannot hold.
inline torch::Tensor matrix(const nlohmann::json& rows, torch::Dtype dtype) {
  std::vector<double> flat;
  for (const auto& row : rows)
    for (const auto& v : row) flat.push_back(v.is_null() ? -std::numeric_limits<double>::infinity() : v.get<double>());
  return torch::tensor(flat, torch::kFloat64).view({static_cast<std::int64_t>(rows.size()), -1}).to(dtype);
}

}  // namespace generation_reference
