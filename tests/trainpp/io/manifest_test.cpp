// checkpoint_manifest.json: written over a directory's files, checked against them; each kind of damage
// (a changed byte, a changed size, a missing file, a broken or foreign manifest) refused with an error
// naming the file; a checkpoint without a manifest, or with a file added later, is warned about.

#include <trainpp/io/manifest.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <random>
#include <string>

#include <unistd.h>

// Everything in a namespace of its own: the test build may compile several test files as one unit.
namespace manifest_test {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() / fmt::format("trainpp-manifest-test-{}-{}", ::getpid(), std::random_device{}());
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string message_of(const fs::path& dir) {
  try {
    trainpp::verify_checkpoint_manifest(dir);
  } catch (const trainpp::Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST_CASE("the checkpoint manifest records every file and names the one that changed") {
  TempDir dir;
  const std::string big(3 << 20, 'x');  // more than one read block
  trainpp::write_file_atomic(dir.path / "model.safetensors", big);
  trainpp::write_file_atomic(dir.path / "trainer_state.json", "{\"global_step\": 8}\n");
  trainpp::write_file_atomic(dir.path / "empty.json", "");
  trainpp::write_checkpoint_manifest(dir.path);

  const auto manifest = trainpp::read_json_file(dir.path / "checkpoint_manifest.json");
  CHECK(manifest.at("algorithm") == "xxh3_64");
  CHECK(manifest.at("files").size() == 3);
  CHECK(manifest.at("files").at("model.safetensors").at("size") == big.size());
  // The known XXH3-64 of no bytes: the checksum is xxHash's, not something of our own.
  CHECK(manifest.at("files").at("empty.json").at("xxh3_64") == "2d06800538d394c2");
  CHECK(message_of(dir.path) == "<no error>");

  SUBCASE("one changed byte, same size") {
    std::string changed = big;
    changed[(3 << 20) - 5] = 'y';
    trainpp::write_file_atomic(dir.path / "model.safetensors", changed);
    const auto message = message_of(dir.path);
    CHECK_MESSAGE(message.find((dir.path / "model.safetensors").string() + " is damaged: its checksum") !=
                      std::string::npos, message);
  }
  SUBCASE("another size") {
    trainpp::write_file_atomic(dir.path / "trainer_state.json", "{\"global_step\": 80}\n");
    const auto message = message_of(dir.path);
    CHECK_MESSAGE(message.find("trainer_state.json is damaged: it holds 20 bytes, checkpoint_manifest.json recorded 19") !=
                      std::string::npos, message);
  }
  SUBCASE("a missing file") {
    fs::remove(dir.path / "empty.json");
    CHECK(message_of(dir.path).find("empty.json is missing") != std::string::npos);
  }
  SUBCASE("a broken or foreign manifest names the manifest") {
    const auto path = dir.path / "checkpoint_manifest.json";
    const auto text = trainpp::read_file(path);
    for (const auto& [bad, expected] : std::vector<std::pair<std::string, std::string>>{
             {text.substr(0, text.size() / 2), "checkpoint_manifest.json"},
             {R"({"format": "trainpp-checkpoint-manifest", "version": 2, "algorithm": "xxh3_64", "files": {}})",
              "unsupported version"},
             {R"({"format": "trainpp-checkpoint-manifest", "version": 1, "algorithm": "crc32", "files": {}})",
              "unsupported algorithm"},
             {R"({"format": "something else", "version": 1, "algorithm": "xxh3_64", "files": {}})",
              "not a trainpp checkpoint manifest"},
             {R"({"format": "trainpp-checkpoint-manifest", "version": 1, "algorithm": "xxh3_64", "files": []})",
              "\"files\" is not an object"},
             {R"({"format": "trainpp-checkpoint-manifest", "version": 1, "algorithm": "xxh3_64",
                  "files": {"../x": {"size": 1, "xxh3_64": "0000000000000000"}}})",
              "\"../x\" is not a file name"},
             {R"({"format": "trainpp-checkpoint-manifest", "version": 1, "algorithm": "xxh3_64",
                  "files": {"empty.json": {"size": -1, "xxh3_64": "2d06800538d394c2"}}})",
              "the entry of \"empty.json\" is not"},
             {R"({"format": "trainpp-checkpoint-manifest", "version": 1, "algorithm": "xxh3_64",
                  "files": {"empty.json": {"size": 0, "xxh3_64": "2D06800538D394C2"}}})",
              "the entry of \"empty.json\" is not"},
             {R"({"format": "trainpp-checkpoint-manifest", "version": 1, "version": 1, "algorithm": "xxh3_64", "files": {}})",
              "duplicate"}}) {
      CAPTURE(bad);
      trainpp::write_file_atomic(path, bad);
      const auto message = message_of(dir.path);
      CHECK_MESSAGE(message.find("checkpoint_manifest.json") != std::string::npos, message);
      CHECK_MESSAGE(message.find(expected) != std::string::npos, message);
    }
  }
  SUBCASE("no manifest, or a file it does not list: warned, not refused") {
    trainpp::write_file_atomic(dir.path / "notes.txt", "added by hand\n");
    CHECK(message_of(dir.path) == "<no error>");
    fs::remove(dir.path / "checkpoint_manifest.json");
    CHECK(message_of(dir.path) == "<no error>");
  }
  SUBCASE("a directory inside a checkpoint cannot be covered, so it is not written") {
    fs::create_directories(dir.path / "nested");
    CHECK_THROWS_WITH(trainpp::write_checkpoint_manifest(dir.path), doctest::Contains("nested is not a regular file"));
  }
}

}  // namespace manifest_test
