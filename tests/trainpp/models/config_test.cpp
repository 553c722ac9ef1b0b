// PretrainedConfig: typed access to config.json's keys, unknown keys written back unchanged, strict
// JSON, and errors that name the file and the key.

#include <trainpp/models/config.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <random>
#include <string>

#include <unistd.h>

namespace models_config_test {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() / fmt::format("trainpp-config-test-{}-{}", ::getpid(), std::random_device{}());
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string error_of(auto&& fn) {
  try {
    fn();
  } catch (const trainpp::Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST_CASE("PretrainedConfig reads known keys typed and writes unknown ones back unchanged") {
  TempDir dir;
  const auto file = dir.path / "config.json";
  trainpp::write_file_atomic(file, R"({"model_type": "gpt2", "n_embd": 32, "layer_norm_epsilon": 1e-05,
      "custom": {"nested": [1, 2, {"x": null}]}, "name_or_path": "somewhere", "n_inner": null, "ratio": 2})");
  const auto config = trainpp::PretrainedConfig::read(file);
  CHECK(config.get<std::int64_t>("n_embd") == 32);
  CHECK(config.get<double>("layer_norm_epsilon") == doctest::Approx(1e-5));
  CHECK(config.get<double>("ratio") == 2.0);  // an integer where a float is asked: accepted
  CHECK(config.get<std::string>("model_type") == "gpt2");
  CHECK(config.get<std::int64_t>("n_layer", 12) == 12);          // absent: the default
  CHECK(config.get<std::int64_t>("n_inner", 7) == 7);            // null: the default
  CHECK_FALSE(config.get_optional<std::int64_t>("n_inner").has_value());

  const auto again = dir.path / "again.json";
  config.save(again);
  const auto reread = trainpp::read_json_file(again);
  CHECK(reread == trainpp::read_json_file(file));
  CHECK(reread["custom"].dump() == R"({"nested":[1,2,{"x":null}]})");
  // transformers' layout: sorted keys, two-space indent, final newline.
  const auto text = trainpp::read_file(again);
  CHECK(text.starts_with("{\n  \"custom\": {"));
  CHECK(text.ends_with("}\n"));
}

TEST_CASE("PretrainedConfig errors name the file and the key") {
  TempDir dir;
  const auto file = dir.path / "config.json";
  trainpp::write_file_atomic(file, R"({"model_type": "bert", "n_embd": "wide", "flag": 1})");
  const auto config = trainpp::PretrainedConfig::read(file);
  const auto path = file.string();

  auto e = error_of([&] { (void)config.get<std::int64_t>("n_layer"); });
  CHECK(e.find(path) != std::string::npos);
  CHECK(e.find("missing required key \"n_layer\"") != std::string::npos);
  e = error_of([&] { (void)config.get<std::int64_t>("n_embd"); });
  CHECK(e.find(path) != std::string::npos);
  CHECK(e.find("\"n_embd\" must be an integer, got string") != std::string::npos);
  e = error_of([&] { (void)config.get<bool>("flag", false); });
  CHECK(e.find("\"flag\" must be true or false") != std::string::npos);
  e = error_of([&] { config.expect_model_type("gpt2", "GPT2LMHeadModel"); });
  CHECK(e.find(path) != std::string::npos);
  CHECK(e.find("\"model_type\" is \"bert\", but GPT2LMHeadModel expects \"gpt2\"") != std::string::npos);
  constexpr std::array<std::string_view, 2> keys{"n_embd", "n_head"};
  e = error_of([&] { config.require(keys); });
  CHECK(e.find("missing required key \"n_head\"") != std::string::npos);

  // Strict JSON: duplicate keys and trailing commas are refused, naming the file.
  trainpp::write_file_atomic(file, R"({"n_embd": 1, "n_embd": 2})");
  e = error_of([&] { (void)trainpp::PretrainedConfig::read(file); });
  CHECK(e.find(path) != std::string::npos);
  CHECK(e.find("duplicate key \"n_embd\"") != std::string::npos);
  trainpp::write_file_atomic(file, R"({"n_embd": 1,})");
  CHECK(error_of([&] { (void)trainpp::PretrainedConfig::read(file); }).find(path) != std::string::npos);
  trainpp::write_file_atomic(file, R"([1, 2])");
  CHECK(error_of([&] { (void)trainpp::PretrainedConfig::read(file); }).find("must be a JSON object") != std::string::npos);
  CHECK(error_of([&] { (void)trainpp::PretrainedConfig::read(dir.path / "absent.json"); }).find("absent.json: no such file") !=
        std::string::npos);
}

}  // namespace models_config_test
