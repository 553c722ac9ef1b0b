#pragma once
// checkpoint_manifest.json: the size and xxHash (XXH3, 64 bits) of every file of a checkpoint, written
// last into the staging directory, just before the directory is published. safetensors and JSON carry no
// checksum of their own, so a bit flipped in a tensor's data, or a digit changed in trainer_state.json
// that still parses, would otherwise resume without a word; against the manifest, resuming names the
// damaged file instead.
//
//   {"format": "trainpp-checkpoint-manifest", "version": 1, "algorithm": "xxh3_64",
//    "files": {"model.safetensors": {"size": 1234, "xxh3_64": "0123456789abcdef"}, ...}}
//
// XXH3 runs at memory speed (tens of GB/s), so checking costs far less than reading the files to load them.

#include <trainpp/detail/config.hpp>
#include <trainpp/io/atomic_write.hpp>
#include <trainpp/io/json.hpp>
#include <trainpp/logging.hpp>

#include <cstdint>
#include <filesystem>
#include <string_view>

#if TRAINPP_DEFINITIONS
#include <nlohmann/json.hpp>

#define XXH_INLINE_ALL  // header-only: the functions are static to this translation unit, nothing to link
#include <xxhash.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <memory>
#include <string>
#include <vector>
#endif

namespace trainpp {

inline constexpr std::string_view checkpoint_manifest_name = "checkpoint_manifest.json";

/// One file as the manifest records it.
struct FileDigest {
  std::uintmax_t size = 0;
  std::uint64_t xxh3_64 = 0;
};

/// The size and XXH3-64 of the file at `path`, read in 1 MiB blocks. Throws trainpp::Error naming the
/// path if it cannot be read.
[[nodiscard]] FileDigest digest_file(const std::filesystem::path& path);

/// Writes checkpoint_manifest.json into `dir` (a checkpoint's staging directory, complete but for it):
/// every regular file directly in `dir`, by name. A subdirectory is an error: checkpoints are flat, and
/// a file the manifest cannot cover would escape the check.
void write_checkpoint_manifest(const std::filesystem::path& dir);

/// Checks every file checkpoint_manifest.json lists in `dir`: present, of the recorded size and
/// checksum. Throws trainpp::Error naming the damaged or missing file (or the manifest, if it is itself
/// damaged). A checkpoint without a manifest (written before trainpp wrote them, or by hand) cannot be
/// checked: a warning says so. Files the manifest does not list (added later by hand) get a warning.
void verify_checkpoint_manifest(const std::filesystem::path& dir);

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE FileDigest digest_file(const std::filesystem::path& path) {
  detail::FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw error("cannot read {}: {}", path.string(), detail::errno_message(errno));
  const std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(XXH3_createState(), &XXH3_freeState);
  if (!state || XXH3_64bits_reset(state.get()) == XXH_ERROR) throw error("cannot hash {}: out of memory", path.string());
  std::vector<char> buffer(std::size_t{1} << 20);
  FileDigest out;
  for (;;) {
    const ::ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw error("cannot read {}: {}", path.string(), detail::errno_message(errno));
    }
    if (n == 0) break;
    XXH3_64bits_update(state.get(), buffer.data(), static_cast<std::size_t>(n));
    out.size += static_cast<std::uintmax_t>(n);
  }
  out.xxh3_64 = XXH3_64bits_digest(state.get());
  return out;
}

TRAINPP_INLINE void write_checkpoint_manifest(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::map<std::string, FileDigest> files;  // sorted: the manifest reads the same for the same files
  for (const auto& entry : fs::directory_iterator(dir)) {
    const auto name = entry.path().filename().string();
    if (name == checkpoint_manifest_name) continue;
    if (!entry.is_regular_file())
      throw error("checkpoint {}: {} is not a regular file; a checkpoint holds files only", dir.string(), name);
    files.emplace(name, digest_file(entry.path()));
  }
  nlohmann::json listed = nlohmann::json::object();
  for (const auto& [name, digest] : files)
    listed[name] = {{"size", digest.size}, {"xxh3_64", fmt::format("{:016x}", digest.xxh3_64)}};
  const nlohmann::json manifest = {
      {"format", "trainpp-checkpoint-manifest"}, {"version", 1}, {"algorithm", "xxh3_64"}, {"files", listed}};
  write_json_file(dir / checkpoint_manifest_name, manifest);
}

TRAINPP_INLINE void verify_checkpoint_manifest(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  const fs::path path = dir / checkpoint_manifest_name;
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    warn("{} has no {}: its files cannot be checked for damage before resuming", dir.string(),
         checkpoint_manifest_name);
    return;
  }
  const auto source = path.string();
  const nlohmann::json manifest = detail::parse_json_strict(read_file(path), source);
  auto damaged = [&](std::string_view what) {
    return error("{}: {}; the checkpoint's list of files and checksums cannot be trusted", source, what);
  };
  auto holds = [&](const char* key, const nlohmann::json& value) {
    return manifest.is_object() && manifest.contains(key) && manifest[key] == value;
  };
  if (!holds("format", "trainpp-checkpoint-manifest"))
    throw damaged("not a trainpp checkpoint manifest (\"format\" is not \"trainpp-checkpoint-manifest\")");
  if (!holds("version", 1)) throw damaged("unsupported version (this trainpp reads version 1)");
  if (!holds("algorithm", "xxh3_64")) throw damaged("unsupported algorithm (expected \"xxh3_64\")");
  if (!manifest.contains("files") || !manifest["files"].is_object()) throw damaged("\"files\" is not an object");

  const auto& files = manifest["files"];
  for (const auto& [name, recorded] : files.items()) {
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
      throw damaged(fmt::format("\"{}\" is not a file name", name));
    const auto hex = recorded.is_object() && recorded.contains("xxh3_64") && recorded["xxh3_64"].is_string()
                         ? recorded["xxh3_64"].get<std::string>()
                         : std::string();
    if (!recorded.is_object() || !recorded.contains("size") || !recorded["size"].is_number_unsigned() ||
        hex.size() != 16 || !std::ranges::all_of(hex, [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }))
      throw damaged(fmt::format("the entry of \"{}\" is not {{\"size\": <bytes>, \"xxh3_64\": <16 hex digits>}}", name));
    const fs::path file = dir / name;
    if (!fs::is_regular_file(file, ec))
      throw error("{} is missing: {} lists it; the checkpoint is incomplete", file.string(), checkpoint_manifest_name);
    const auto expected_size = recorded["size"].get<std::uintmax_t>();
    if (const auto size = fs::file_size(file, ec); !ec && size != expected_size)
      throw error("{} is damaged: it holds {} bytes, {} recorded {} when the checkpoint was written; resume from "
                  "an earlier checkpoint by its path", file.string(), size, checkpoint_manifest_name, expected_size);
    const FileDigest digest = digest_file(file);
    if (fmt::format("{:016x}", digest.xxh3_64) != hex)
      throw error("{} is damaged: its checksum (xxh3_64 {:016x}) differs from the one {} recorded when the "
                  "checkpoint was written ({}); resume from an earlier checkpoint by its path",
                  file.string(), digest.xxh3_64, checkpoint_manifest_name, hex);
  }
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const auto name = entry.path().filename().string();
    if (name != checkpoint_manifest_name && !files.contains(name))
      warn("{}: {} is not in the checkpoint's manifest (added after it was written?); it is not checked",
           dir.string(), name);
  }
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
