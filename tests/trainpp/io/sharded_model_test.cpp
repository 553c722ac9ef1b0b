// A model saved in pieces (io/sharded_model.hpp): what save_sharded_model writes per process and in
// the index, consolidate_sharded_model joining the pieces back into one model, and its refusal of
// indexes and shards that do not add up.

#include <trainpp/io/sharded_model.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

namespace sharded_model_test {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() /
                  fmt::format("trainpp-sharded-model-test-{}-{}", ::getpid(), std::random_device{}());
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

std::map<std::string, torch::Tensor> tensors_of(const fs::path& path) {
  std::map<std::string, torch::Tensor> out;
  for (auto& [name, tensor] : trainpp::load_safetensors(path).tensors) out.emplace(name, tensor);
  return out;
}

/// The whole model the shards below are cut from.
struct Model {
  torch::Tensor w = torch::arange(6, torch::kFloat32).reshape({2, 3});
  torch::Tensor b = torch::tensor({10.0f, 11.0f, 12.0f});
  torch::Tensor running_mean = torch::tensor({0.5f, -0.5f});
};

/// Writes the checkpoint of two processes: w's first 4 elements on rank 0 and its last 2 on rank 1,
/// all of b on rank 1 (after w's piece in that rank's flat buffer), running_mean whole on rank 0.
void save_two_ranks(const fs::path& dir, const Model& m) {
  const auto flat_w = m.w.reshape(-1);
  auto parameter = [](std::string name, std::vector<std::int64_t> shape, torch::Tensor piece) {
    trainpp::ShardedParameter p;
    p.name = std::move(name);
    p.shape = std::move(shape);
    p.piece = std::move(piece);
    return p;
  };
  std::vector<trainpp::ShardedParameter> rank0{parameter("w", {2, 3}, flat_w.slice(0, 0, 4)),
                                               parameter("b", {3}, torch::empty({0}))};
  rank0[0].pieces = {{0, 0, 4}, {1, 0, 2}};
  rank0[1].pieces = {{1, 2, 3}};
  const std::vector<trainpp::ShardedParameter> rank1{parameter("w", {2, 3}, flat_w.slice(0, 4, 6)),
                                                     parameter("b", {3}, m.b)};
  trainpp::save_sharded_model(dir, 0, 2, rank0, {{"running_mean", m.running_mean}}, /*main_process=*/true);
  trainpp::save_sharded_model(dir, 1, 2, rank1, {}, /*main_process=*/false);
}

TEST_CASE("sharded_model: each process writes its pieces and the main process the index") {
  TempDir dir;
  const Model m;
  save_two_ranks(dir.path, m);
  CHECK(trainpp::model_shard_name(3) == "model_shard_3.safetensors");
  CHECK(trainpp::optimizer_shard_name(3) == "optimizer_shard_3.safetensors");

  const auto rank0 = trainpp::load_safetensors(dir.path / trainpp::model_shard_name(0));
  CHECK(rank0.metadata.at("trainpp.rank") == "0");
  const auto t0 = tensors_of(dir.path / trainpp::model_shard_name(0));
  CHECK(t0.size() == 2);  // an empty piece is left out; the buffer is whole
  CHECK(torch::equal(t0.at("w"), torch::tensor({0.0f, 1.0f, 2.0f, 3.0f})));
  CHECK(torch::equal(t0.at("running_mean"), m.running_mean));
  const auto t1 = tensors_of(dir.path / trainpp::model_shard_name(1));
  CHECK(t1.size() == 2);  // no buffers from a process that is not the main one
  CHECK(torch::equal(t1.at("b"), m.b));

  const auto index = trainpp::read_json_file(dir.path / trainpp::model_shards_index_name);
  CHECK(index == nlohmann::json{{"format", "trainpp.sharded_model"},
                                {"world_size", 2},
                                {"buffers", {"running_mean"}},
                                {"parameters",
                                 {{"w", {{"shape", {2, 3}}, {"dtype", "Float"}, {"pieces", {{0, 0, 4}, {1, 0, 2}}}}},
                                  {"b", {{"shape", {3}}, {"dtype", "Float"}, {"pieces", {{1, 2, 3}}}}}}}});
}

TEST_CASE("sharded_model: consolidate_sharded_model joins the pieces into the whole model") {
  TempDir dir;
  const Model m;
  save_two_ranks(dir.path, m);
  const auto out_dir = dir.path / "consolidated";
  fs::create_directories(out_dir);
  const auto file = trainpp::consolidate_sharded_model(dir.path, out_dir);  // a directory: model.safetensors in it
  CHECK(file == out_dir / trainpp::model_weights_name);
  const auto whole = tensors_of(file);
  REQUIRE(whole.size() == 3);
  CHECK(torch::equal(whole.at("w"), m.w));
  CHECK(torch::equal(whole.at("b"), m.b));
  CHECK(torch::equal(whole.at("running_mean"), m.running_mean));

  const auto named = dir.path / "single.safetensors";  // a file path is used as it is
  CHECK(trainpp::consolidate_sharded_model(dir.path, named) == named);
  CHECK(trainpp::read_file(named) == trainpp::read_file(file));
}

TEST_CASE("sharded_model: consolidate_sharded_model refuses indexes and shards that do not add up") {
  TempDir dir;
  const Model m;
  CHECK_THROWS_WITH_AS((void)trainpp::consolidate_sharded_model(dir.path, dir.path / "out.safetensors"),
                       doctest::Contains("is not a sharded checkpoint: it has no model_shards.json"), trainpp::Error);
  save_two_ranks(dir.path, m);
  const auto index_path = dir.path / trainpp::model_shards_index_name;
  const auto valid = trainpp::read_json_file(index_path);

  struct Bad {
    std::function<void(nlohmann::json&)> patch;
    std::string phrase;
  };
  const std::vector<Bad> cases{
      {[](auto& j) { j["format"] = "other"; }, "not a trainpp sharded-model index"},
      {[](auto& j) { j["world_size"] = "2"; }, "not a trainpp sharded-model index"},
      {[](auto& j) { j.erase("parameters"); }, "not a trainpp sharded-model index"},
      {[](auto& j) { j["world_size"] = 0; }, "world_size must be positive"},
      {[](auto& j) { j["world_size"] = 3; }, "the shard of rank 2 is missing"},
      {[](auto& j) { j["parameters"]["w"]["pieces"][1][2] = 3; }, "parameter w: rank 1 holds 2 elements, the index says 3"},
      {[](auto& j) { j["parameters"]["b"]["pieces"][0][0] = 5; }, "parameter b: rank 5 out of range"},
      {[](auto& j) { j["parameters"]["b"]["pieces"][0][0] = 0; }, "parameter b: rank 0's shard lacks it"},
      {[](auto& j) { j["parameters"]["w"]["shape"] = {2, 4}; }, "parameter w: its pieces hold 6 elements, its shape [2, 4] needs 8"},
      {[](auto& j) { j["parameters"]["w"]["pieces"].erase(1); }, "parameter w: its pieces hold 4 elements"},
      {[](auto& j) { j["parameters"]["w"]["pieces"][0] = {0}; }, "parameter w: malformed entry"},
      {[](auto& j) { j["parameters"]["w"].erase("shape"); }, "parameter w: malformed entry"},
      {[](auto& j) { j["buffers"] = {"running_var"}; }, "buffer running_var is not in rank 0's shard"},
  };
  for (const auto& c : cases) {
    auto index = valid;
    c.patch(index);
    trainpp::write_json_file(index_path, index);
    const auto message = message_of([&] { (void)trainpp::consolidate_sharded_model(dir.path, dir.path / "out.safetensors"); });
    CHECK_MESSAGE(message.find(dir.path.string()) != std::string::npos, message);
    CHECK_MESSAGE(message.find(c.phrase) != std::string::npos, message, " lacks ", c.phrase);
  }
  CHECK_FALSE(fs::exists(dir.path / "out.safetensors"));  // nothing is written from a bad checkpoint

  trainpp::write_json_file(index_path, valid);
  fs::remove(dir.path / trainpp::model_shard_name(1));
  CHECK_THROWS_WITH_AS((void)trainpp::consolidate_sharded_model(dir.path, dir.path / "out.safetensors"),
                       doctest::Contains("the shard of rank 1 is missing"), trainpp::Error);
}

}  // namespace sharded_model_test
