// The one strict JSON reader (io/json.hpp) and the readers that go through it: a duplicate key is
// refused at any depth, with an error naming the source and the key, wherever the document comes from.

#include <trainpp/io/json.hpp>
#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <random>
#include <string>

#include <unistd.h>

namespace json_test {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() / fmt::format("trainpp-json-test-{}-{}", ::getpid(), std::random_device{}());
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

template <class F>
std::string message_of(F f) {
  try {
    f();
  } catch (const trainpp::Error& e) {
    return e.what();
  }
  return "";
}

TEST_CASE("parse_json_strict refuses duplicate keys at every level, naming the source and the key") {
  auto refusal = [](const std::string& text) {
    return message_of([&] { (void)trainpp::detail::parse_json_strict(text, "my.json"); });
  };
  CHECK(refusal(R"({"a": 1, "a": 2})") == "my.json: not valid JSON: duplicate key \"a\"");
  CHECK(refusal(R"({"outer": {"x": 1, "y": 2, "x": 3}})") == "my.json: not valid JSON: duplicate key \"x\"");
  CHECK(refusal(R"({"list": [{"k": 1}, {"k": 2, "k": 2}]})") == "my.json: not valid JSON: duplicate key \"k\"");
  // The same key in sibling objects, or at two levels, is no duplicate.
  CHECK(refusal(R"({"list": [{"k": 1}, {"k": 2}], "k": {"k": 3}})").empty());
  CHECK(trainpp::detail::parse_json_strict(R"({"a": {"a": 1}})", "my.json")["a"]["a"] == 1);
}

TEST_CASE("parse_json_strict's limits: depth, array length, and the words of its errors") {
  const trainpp::detail::JsonLimits limits{.max_depth = 2, .max_array = 3, .invalid = "bad header"};
  auto refusal = [&](const std::string& text) {
    return message_of([&] { (void)trainpp::detail::parse_json_strict(text, "h", limits); });
  };
  CHECK(refusal(R"({"a": [1, 2, 3]})").empty());
  CHECK(refusal(R"({"a": [1, 2, 3, 4]})") == "h: bad header: an array has more than 3 elements");
  CHECK(refusal(R"({"a": {"b": {}}})") == "h: bad header: nested deeper than 2 levels");
  CHECK(refusal(std::string("{}\0", 3)) == "h: bad header: a NUL byte at offset 2");
  CHECK(refusal("{").starts_with("h: bad header: "));
  // ordered_json keeps the order of the text.
  const auto ordered = trainpp::detail::parse_json_strict<nlohmann::ordered_json>(R"({"z": 1, "a": 2})", "h");
  CHECK(ordered.begin().key() == "z");
}

TEST_CASE("--fsdp_config and --deepspeed refuse duplicate keys, as the arguments file does") {
  TempDir dir;
  const auto file = dir.path / "fsdp.json";
  trainpp::write_file_atomic(file, R"({"min_num_params": 10, "fsdp_min_num_params": 20, "min_num_params": 30})");
  const auto from_file = message_of([&] { (void)trainpp::parse_fsdp_options("full_shard", file.string(), false); });
  CHECK(from_file == file.string() + ": not valid JSON: duplicate key \"min_num_params\"");
  CHECK(message_of([&] {
          (void)trainpp::parse_fsdp_options("full_shard", R"({"forward_prefetch": true, "forward_prefetch": false})", false);
        }) == "--fsdp_config: not valid JSON: duplicate key \"forward_prefetch\"");
  CHECK(message_of([&] {
          (void)trainpp::parse_deepspeed_config(R"({"zero_optimization": {"stage": 2, "stage": 3}})", {});
        }) == "--deepspeed: not valid JSON: duplicate key \"stage\"");
  // Through the arguments, where finalize() reads them.
  trainpp::TrainingArguments args;
  args.output_dir = (dir.path / "out").string();
  args.fsdp = "full_shard";
  args.fsdp_config = file.string();
  CHECK(message_of([&] { args.finalize(); }).find("duplicate key \"min_num_params\"") != std::string::npos);
  CHECK(message_of([&] { (void)trainpp::parse_fsdp_options("full_shard", (dir.path / "missing.json").string(), false); })
            .find("cannot open the file") != std::string::npos);
}

TEST_CASE("save_metrics refuses an all_results.json with a duplicate key, naming the file") {
  TempDir dir;
  trainpp::write_file_atomic(dir.path / "all_results.json", R"({"eval_loss": 1.0, "eval_loss": 2.0})");
  const auto message = message_of([&] { trainpp::save_metrics(dir.path, "train", {{"train_loss", 0.5}}); });
  CHECK(message.find((dir.path / "all_results.json").string()) != std::string::npos);
  CHECK(message.find("duplicate key \"eval_loss\"") != std::string::npos);
}

}  // namespace json_test
