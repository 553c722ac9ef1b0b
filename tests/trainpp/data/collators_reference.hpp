#pragma once
// What transformers' collators and LengthGroupedSampler make of fixed inputs, written by
// collators_hf_reference.py once per build tree (again only when the script changed).

#include <trainpp/data/batch.hpp>
#include <trainpp/io/safetensors.hpp>

#include <nlohmann/json.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>

namespace collators_reference {

struct Reference {
  nlohmann::json json;
  std::map<std::string, torch::Tensor> tensors;
};

/// The reference, or nullopt when it cannot be produced here (no interpreter, or transformers or
/// accelerate missing): the caller reports a skip then. A failing script is a test failure.
inline std::optional<Reference> load() {
#ifndef TRAINPP_PYTHON
  return std::nullopt;
#else
  namespace fs = std::filesystem;
  const fs::path script = fs::path(TRAINPP_SOURCE_DIR) / "tests/trainpp/data/collators_hf_reference.py";
  const fs::path dir = fs::path(TRAINPP_BINARY_DIR) / "collators_hf_reference";
  const fs::path complete = dir / "complete";
  if (!fs::exists(complete) || fs::last_write_time(complete) < fs::last_write_time(script)) {
    // Several test cases (processes, under ctest -j) may get here at once: each writes a directory of
    // its own and renames it into place; a reader never sees one half written.
    const fs::path own = dir.string() + fmt::format(".tmp-{}", ::getpid());
    fs::remove_all(own);
    const std::string command =
        fmt::format("'{}' '{}' '{}' > '{}.log' 2>&1", TRAINPP_PYTHON, script.string(), own.string(), own.string());
    const int status = std::system(command.c_str());
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77) return std::nullopt;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      throw trainpp::error("{} failed (status {}); see {}.log", command, status, own.string());
    std::error_code ec;
    if (fs::exists(complete, ec) && fs::last_write_time(complete) >= fs::last_write_time(script)) {
      fs::remove_all(own, ec);  // another process finished first: use its reference
    } else {
      fs::remove_all(dir, ec);
      fs::rename(own, dir, ec);
      if (ec) fs::remove_all(own, ec);  // lost the race to another rename: its reference is complete
    }
  }
  Reference out;
  std::ifstream in(dir / "reference.json");
  out.json = nlohmann::json::parse(in);
  for (auto& [name, tensor] : trainpp::load_safetensors(dir / "collators.safetensors").tensors)
    out.tensors.emplace(name, tensor);
  return out;
#endif
}

}  // namespace collators_reference
