// read_json_file as the checkpoint readers use it: duplicate keys, NUL bytes, runaway nesting and
// missing files are refused with the file named. (Each checkpoint file's own reader has its mirror
// test: checkpoint_dir_test, trainer_state_test, optimizer_state_test, process_state_test.)

#include <trainpp/io/checkpoint.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <functional>
#include <random>
#include <string>

#include <unistd.h>

namespace checkpoint_test {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() /
                  fmt::format("trainpp-checkpoint-test-{}-{}", ::getpid(), std::random_device{}());
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const trainpp::Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST_CASE("read_json_file refuses duplicate keys, NUL bytes and runaway nesting, naming the file") {
  TempDir dir;
  auto read = [&](const std::string& text) {
    trainpp::write_file_atomic(dir.path / "state.json", text);
    return message_of([&] { (void)trainpp::read_json_file(dir.path / "state.json"); });
  };
  CHECK(read(R"({"a": 1, "a": 2})").find("duplicate key \"a\"") != std::string::npos);
  CHECK(read(std::string("{\"a\": 1}\0", 9)).find("NUL byte") != std::string::npos);
  CHECK(read(std::string(100000, '[')).find("nested deeper than") != std::string::npos);
  CHECK(read("{\"a\": ").find("not valid JSON") != std::string::npos);
  CHECK(read("{\"a\": 1}").find((dir.path / "state.json").string()) == std::string::npos);  // valid: no error
  CHECK(read("").find((dir.path / "state.json").string()) != std::string::npos);
  CHECK(message_of([&] { (void)trainpp::read_json_file(dir.path / "missing.json"); }).find("missing.json") != std::string::npos);
}

}  // namespace checkpoint_test
