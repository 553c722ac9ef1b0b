// Atomic publication of files and directories: replacement, no leftovers, staging names that nothing
// mistakes for a result, and errors that name the path.

#include <trainpp/io/atomic_write.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

namespace atomic_write_test {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() /
                  fmt::format("trainpp-atomic-write-test-{}-{}", ::getpid(), std::random_device{}());
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

void write_plain(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}


TEST_CASE("write_file_atomic creates and replaces a file, leaving nothing else behind") {
  TempDir dir;
  const auto path = dir.path / "trainer_state.json";
  const std::string first(100'000, 'a');
  trainpp::write_file_atomic(path, first);
  CHECK(trainpp::read_file(path) == first);

  // Shorter replacement: a writer that truncated in place would be caught by size as well as contents.
  const std::string second("b\0c\n", 4);
  trainpp::write_file_atomic(path, second);
  CHECK(trainpp::read_file(path) == second);
  CHECK(fs::file_size(path) == 4);

  trainpp::write_file_atomic(path, "");
  CHECK(trainpp::read_file(path).empty());
  CHECK(names_in(dir.path) == std::set<std::string>{"trainer_state.json"});
}

TEST_CASE("write_file_atomic and read_file name the path when they fail") {
  TempDir dir;
  const auto missing_dir = dir.path / "no-such-dir" / "file.bin";
  CHECK_THROWS_WITH_AS(trainpp::write_file_atomic(missing_dir, "x"), doctest::Contains(missing_dir.string().c_str()),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::write_file_atomic(missing_dir, "x"), doctest::Contains("No such file or directory"),
                       trainpp::Error);
  const auto missing = dir.path / "absent.json";
  CHECK_THROWS_WITH_AS((void)trainpp::read_file(missing), doctest::Contains(missing.string().c_str()), trainpp::Error);
  CHECK_THROWS_WITH_AS((void)trainpp::read_file(dir.path), doctest::Contains("Is a directory"), trainpp::Error);
  CHECK(names_in(dir.path).empty());
}

TEST_CASE("make_staging_dir gives a fresh, empty, hidden directory beside the final one") {
  TempDir dir;
  const auto final_dir = dir.path / "run" / "checkpoint-500";
  const auto a = trainpp::make_staging_dir(final_dir);
  const auto b = trainpp::make_staging_dir(final_dir);
  CHECK(a != b);
  for (const auto& staging : {a, b}) {
    CHECK(fs::is_directory(staging));
    CHECK(fs::is_empty(staging));
    CHECK(staging.parent_path() == final_dir.parent_path());
    CHECK(staging.filename().string().starts_with(".tmp-checkpoint-500-"));
  }
  CHECK_FALSE(fs::exists(final_dir));
  // A trailing separator means the same directory.
  CHECK(trainpp::make_staging_dir(dir.path / "run" / "checkpoint-500" / "").parent_path() == final_dir.parent_path());
}

TEST_CASE("commit_dir publishes a staging directory and replaces an existing one") {
  TempDir dir;
  const auto final_dir = dir.path / "checkpoint-10";

  auto staging = trainpp::make_staging_dir(final_dir);
  write_plain(staging / "model.safetensors", "old weights");
  write_plain(staging / "only_in_old.txt", "stale");
  fs::create_directories(staging / "sub");
  write_plain(staging / "sub" / "nested.txt", "nested");
  trainpp::commit_dir(staging, final_dir);
  CHECK_FALSE(fs::exists(staging));
  CHECK(trainpp::read_file(final_dir / "model.safetensors") == "old weights");
  CHECK(trainpp::read_file(final_dir / "sub" / "nested.txt") == "nested");

  staging = trainpp::make_staging_dir(final_dir);
  write_plain(staging / "model.safetensors", "new weights");
  trainpp::commit_dir(staging, final_dir / "");  // trailing separator: the same directory
  CHECK(trainpp::read_file(final_dir / "model.safetensors") == "new weights");
  CHECK_FALSE(fs::exists(final_dir / "only_in_old.txt"));  // replaced, not merged
  CHECK_FALSE(fs::exists(final_dir / "sub"));
  CHECK(names_in(dir.path) == std::set<std::string>{"checkpoint-10"});  // the old one is gone too

  CHECK_THROWS_WITH_AS(trainpp::commit_dir(dir.path / ".tmp-absent", final_dir), doctest::Contains(".tmp-absent"),
                       trainpp::Error);
  CHECK(trainpp::read_file(final_dir / "model.safetensors") == "new weights");
}

TEST_CASE("an abandoned staging directory is never mistaken for a result") {
  TempDir dir;
  auto done = trainpp::make_staging_dir(dir.path / "checkpoint-1");
  write_plain(done / "model.safetensors", "1");
  trainpp::commit_dir(done, dir.path / "checkpoint-1");
  // A save that crashed before its commit: filled, never renamed.
  auto abandoned = trainpp::make_staging_dir(dir.path / "checkpoint-2");
  write_plain(abandoned / "model.safetensors", "2");
  // Likewise a file write interrupted before its rename leaves only "<name>.tmp-...".
  write_plain(dir.path / "trainer_state.json.tmp-1-abc", "{");

  // What a reader scanning for "checkpoint-*" and "trainer_state.json" finds:
  std::vector<std::string> checkpoints;
  for (const auto& name : names_in(dir.path))
    if (name.starts_with("checkpoint-")) checkpoints.push_back(name);
  CHECK(checkpoints == std::vector<std::string>{"checkpoint-1"});
  CHECK_FALSE(fs::exists(dir.path / "trainer_state.json"));
  CHECK(abandoned.filename().string().starts_with(".tmp-"));
}

}  // namespace atomic_write_test
