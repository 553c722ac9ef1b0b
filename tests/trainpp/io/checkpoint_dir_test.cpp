// Checkpoint directories (io/checkpoint_dir.hpp): names, ordering, HF's rotation rules (checked against
// transformers' own rotate_checkpoints), the newest complete checkpoint, and cleanup after interrupted
// saves and deletions.

#include <trainpp/io/checkpoint_dir.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

namespace checkpoint_dir_test {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() /
                  fmt::format("trainpp-checkpoint-dir-test-{}-{}", ::getpid(), std::random_device{}());
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

/// A directory that passes is_complete_checkpoint.
void make_checkpoint(const fs::path& dir) {
  fs::create_directories(dir);
  std::ofstream(dir / "trainer_state.json") << "{}";
  std::ofstream(dir / "model.safetensors") << "x";
}

std::vector<std::string> filenames(const std::vector<fs::path>& paths) {
  std::vector<std::string> out;
  for (const auto& p : paths) out.push_back(p.filename().string());
  return out;
}

TEST_CASE("checkpoint_step accepts exactly checkpoint-<digits>") {
  CHECK(trainpp::checkpoint_step("checkpoint-12") == 12);
  CHECK(trainpp::checkpoint_step("checkpoint-0") == 0);
  CHECK(trainpp::checkpoint_dir_name(500) == "checkpoint-500");
  for (const char* bad : {"checkpoint-", "checkpoint-1a", "checkpoint-12.tmp", ".tmp-checkpoint-3-1-ab", "checkpoint--1",
                          "Checkpoint-3", "checkpoint-99999999999999999999999", "run-3", "checkpoint-+3"})
    CHECK_MESSAGE(!trainpp::checkpoint_step(bad), bad);
}

TEST_CASE("sorted_checkpoints orders by step number and moves the best before the newest") {
  TempDir dir;
  for (int step : {10, 9, 100, 2}) fs::create_directories(dir.path / fmt::format("checkpoint-{}", step));
  fs::create_directories(dir.path / ".tmp-checkpoint-200-1-ff");  // a staging directory: never listed
  std::ofstream(dir.path / "checkpoint-300") << "a file, not a checkpoint";
  auto names = [](const std::vector<fs::path>& paths) {
    std::vector<std::string> out;
    for (const auto& p : paths) out.push_back(p.filename().string());
    return out;
  };
  CHECK(names(trainpp::sorted_checkpoints(dir.path)) ==
        std::vector<std::string>{"checkpoint-2", "checkpoint-9", "checkpoint-10", "checkpoint-100"});
  CHECK(names(trainpp::sorted_checkpoints(dir.path, (dir.path / "checkpoint-2").string())) ==
        std::vector<std::string>{"checkpoint-9", "checkpoint-10", "checkpoint-2", "checkpoint-100"});
  CHECK(names(trainpp::sorted_checkpoints(dir.path, (dir.path / "checkpoint-100").string())) ==
        std::vector<std::string>{"checkpoint-2", "checkpoint-9", "checkpoint-10", "checkpoint-100"});
  CHECK(trainpp::sorted_checkpoints(dir.path / "missing").empty());
}

TEST_CASE("rotate_checkpoints keeps what transformers' rotate_checkpoints keeps") {
  const auto reference = nlohmann::json::parse(trainpp::read_file(TRAINPP_TEST_DATA_DIR "/io/rotation_reference.json"));
  REQUIRE(reference.at("cases").size() >= 10);
  for (const auto& c : reference.at("cases")) {
    TempDir dir;
    for (const auto& step : c.at("steps")) make_checkpoint(dir.path / fmt::format("checkpoint-{}", step.get<int>()));
    std::optional<std::int64_t> limit;
    if (!c.at("save_total_limit").is_null()) limit = c.at("save_total_limit").get<std::int64_t>();
    std::optional<std::string> best;
    if (!c.at("best").is_null()) best = (dir.path / fmt::format("checkpoint-{}", c.at("best").get<int>())).string();
    trainpp::rotate_checkpoints(dir.path, limit, best);
    std::vector<int> kept;
    for (const auto& p : trainpp::sorted_checkpoints(dir.path)) kept.push_back(static_cast<int>(*trainpp::checkpoint_step(p.filename().string())));
    CHECK_MESSAGE(kept == c.at("kept").get<std::vector<int>>(), c.dump());
    // Deletion goes through a ".tmp-" rename: nothing half-deleted stays under a checkpoint name.
    for (const auto& name : names_in(dir.path)) CHECK_MESSAGE(name.starts_with("checkpoint-"), name);
  }
}

TEST_CASE("last_checkpoint is the newest complete checkpoint, and interrupted saves are ignored and cleaned") {
  TempDir dir;
  CHECK(!trainpp::last_checkpoint(dir.path));
  make_checkpoint(dir.path / "checkpoint-4");
  make_checkpoint(dir.path / "checkpoint-8");
  fs::create_directories(dir.path / "checkpoint-12");  // incomplete: assembled by hand, no state file
  std::ofstream(dir.path / "checkpoint-12" / "model.safetensors") << "x";
  make_checkpoint(dir.path / ".tmp-checkpoint-16-99-abc");  // a save killed before it was published
  make_checkpoint(dir.path / ".tmp-checkpoint-4-deleted-99-abd");  // a deletion killed half-way
  CHECK(trainpp::last_checkpoint(dir.path) == dir.path / "checkpoint-8");

  CHECK(trainpp::remove_stale_staging(dir.path) == 2);
  CHECK(names_in(dir.path) == std::set<std::string>{"checkpoint-4", "checkpoint-8", "checkpoint-12"});
  trainpp::remove_dir_atomic(dir.path / "checkpoint-4");
  CHECK(names_in(dir.path) == std::set<std::string>{"checkpoint-8", "checkpoint-12"});
}

TEST_CASE("checkpoint_dir: the per-process state file is numbered only when there are several processes") {
  CHECK(trainpp::process_state_name(0, 1) == "process_state.safetensors");
  // A world size of 0 (no distributed setup recorded) is a single process too.
  CHECK(trainpp::process_state_name(0, 0) == "process_state.safetensors");
  CHECK(trainpp::process_state_name(0, 2) == "process_state_0.safetensors");
  CHECK(trainpp::process_state_name(7, 8) == "process_state_7.safetensors");
  // The directory name is the one checkpoint_step reads back, for any step.
  for (const std::int64_t step : {0LL, 1LL, 123456789012LL})
    CHECK(trainpp::checkpoint_step(trainpp::checkpoint_dir_name(step)) == step);
}

TEST_CASE("checkpoint_dir: is_complete_checkpoint needs trainer_state.json and the model or a shard index") {
  TempDir dir;
  const auto ckpt = dir.path / "checkpoint-5";
  CHECK_FALSE(trainpp::is_complete_checkpoint(ckpt));  // missing altogether
  fs::create_directories(ckpt);
  CHECK_FALSE(trainpp::is_complete_checkpoint(ckpt));
  std::ofstream(ckpt / trainpp::trainer_state_name) << "{}";
  CHECK_FALSE(trainpp::is_complete_checkpoint(ckpt));  // no model
  std::ofstream(ckpt / trainpp::model_shards_index_name) << "{}";
  CHECK(trainpp::is_complete_checkpoint(ckpt));  // a sharded model's index stands for the model
  fs::remove(ckpt / trainpp::model_shards_index_name);
  fs::create_directories(ckpt / "model.safetensors");  // a directory under the model's name is no model
  CHECK_FALSE(trainpp::is_complete_checkpoint(ckpt));
  fs::remove(ckpt / "model.safetensors");
  std::ofstream(ckpt / "model.safetensors") << "x";
  CHECK(trainpp::is_complete_checkpoint(ckpt));
  fs::remove(ckpt / trainpp::trainer_state_name);
  CHECK_FALSE(trainpp::is_complete_checkpoint(ckpt));  // a model alone cannot be resumed from
  std::ofstream(dir.path / "checkpoint-6") << "a file";
  CHECK_FALSE(trainpp::is_complete_checkpoint(dir.path / "checkpoint-6"));
}

TEST_CASE("checkpoint_dir: sorted_checkpoints matches the best checkpoint however its path is spelled") {
  TempDir dir;
  for (int step : {1, 2, 3}) fs::create_directories(dir.path / fmt::format("checkpoint-{}", step));
  // The best path as a user or an older state file may write it: with "." and ".." components.
  const auto spelled = (dir.path / "." / "sub" / ".." / "checkpoint-1").string();
  CHECK(filenames(trainpp::sorted_checkpoints(dir.path, spelled)) ==
        std::vector<std::string>{"checkpoint-2", "checkpoint-1", "checkpoint-3"});
  // A best that is not among them (deleted by hand) leaves the order alone.
  CHECK(filenames(trainpp::sorted_checkpoints(dir.path, (dir.path / "checkpoint-9").string())) ==
        std::vector<std::string>{"checkpoint-1", "checkpoint-2", "checkpoint-3"});
}

TEST_CASE("checkpoint_dir: rotate_checkpoints needs a positive limit and returns what it deleted, oldest first") {
  TempDir dir;
  for (int step : {5, 10, 15, 20}) make_checkpoint(dir.path / fmt::format("checkpoint-{}", step));
  const std::set<std::string> all{"checkpoint-5", "checkpoint-10", "checkpoint-15", "checkpoint-20"};
  for (const std::optional<std::int64_t> no_limit : {std::optional<std::int64_t>{}, std::optional<std::int64_t>{0},
                                                     std::optional<std::int64_t>{-3}}) {
    CHECK(trainpp::rotate_checkpoints(dir.path, no_limit, std::nullopt).empty());
    CHECK(names_in(dir.path) == all);
  }
  CHECK(trainpp::rotate_checkpoints(dir.path, 4, std::nullopt).empty());  // already within the limit

  const auto deleted = trainpp::rotate_checkpoints(dir.path, 2, std::nullopt);
  CHECK(filenames(deleted) == std::vector<std::string>{"checkpoint-5", "checkpoint-10"});
  CHECK(names_in(dir.path) == std::set<std::string>{"checkpoint-15", "checkpoint-20"});
}

TEST_CASE("checkpoint_dir: rotate_checkpoints with a limit of 1 keeps the best and the newest") {
  TempDir dir;
  for (int step : {1, 2, 3, 4}) make_checkpoint(dir.path / fmt::format("checkpoint-{}", step));
  const auto deleted = trainpp::rotate_checkpoints(dir.path, 1, (dir.path / "checkpoint-2").string());
  CHECK(filenames(deleted) == std::vector<std::string>{"checkpoint-1", "checkpoint-3"});
  CHECK(names_in(dir.path) == std::set<std::string>{"checkpoint-2", "checkpoint-4"});
  // When the best is the newest, one is enough.
  CHECK(filenames(trainpp::rotate_checkpoints(dir.path, 1, (dir.path / "checkpoint-4").string())) ==
        std::vector<std::string>{"checkpoint-2"});
  CHECK(names_in(dir.path) == std::set<std::string>{"checkpoint-4"});
}

TEST_CASE("checkpoint_dir: remove_stale_staging removes only the staging directories of checkpoints") {
  TempDir dir;
  CHECK(trainpp::remove_stale_staging(dir.path / "missing") == 0);
  fs::create_directories(dir.path / ".tmp-checkpoint-3-12-ab" / "inner");
  std::ofstream(dir.path / ".tmp-checkpoint-3-12-ab" / "inner" / "model.safetensors") << "x";
  std::ofstream(dir.path / ".tmp-checkpoint-7-12-cd") << "a file, not a staging directory";
  fs::create_directories(dir.path / ".tmp-runs-1-ef");  // another writer's staging: not ours to remove
  fs::create_directories(dir.path / "checkpoint-3");
  CHECK(trainpp::remove_stale_staging(dir.path) == 1);
  CHECK(names_in(dir.path) == std::set<std::string>{".tmp-checkpoint-7-12-cd", ".tmp-runs-1-ef", "checkpoint-3"});
  CHECK(trainpp::remove_stale_staging(dir.path) == 0);
}

TEST_CASE("checkpoint_dir: remove_dir_atomic takes a trailing separator and refuses a missing directory") {
  TempDir dir;
  make_checkpoint(dir.path / "checkpoint-1");
  // "checkpoint-1/" names the same directory; the aside name must come from "checkpoint-1", not "".
  trainpp::remove_dir_atomic(fs::path((dir.path / "checkpoint-1").string() + "/"));
  CHECK(names_in(dir.path).empty());
  CHECK_THROWS_WITH_AS(trainpp::remove_dir_atomic(dir.path / "checkpoint-2"),
                       doctest::Contains(("cannot rename " + (dir.path / "checkpoint-2").string()).c_str()), trainpp::Error);
}

}  // namespace checkpoint_dir_test
