// AutoSharding: the policy --fsdp picks at configure() (data parallelism, ShardGradOp, FullShard), and
// the checkpoint calls it forwards to that policy, checked through model files written and read back.

#include <trainpp/sharding/auto_sharding.hpp>
#include <trainpp/io/model_io.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

namespace auto_sharding_test {

namespace fs = std::filesystem;

struct NetImpl : torch::nn::Module {
  torch::nn::Linear fc{nullptr}, head{nullptr};
  NetImpl() {
    fc = register_module("fc", torch::nn::Linear(4, 5));
    head = register_module("head", torch::nn::Linear(5, 3));
  }
};
TORCH_MODULE(Net);

struct TempDir {
  fs::path path = fs::temp_directory_path() / fmt::format("trainpp-auto-sharding-{}-{}", ::getpid(), std::random_device{}());
  TempDir() { fs::create_directories(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

trainpp::TrainingArguments with_fsdp(const std::string& fsdp) {
  trainpp::TrainingArguments args;
  if (!fsdp.empty()) args.fsdp = fsdp;
  return args;
}

std::vector<torch::Tensor> values_of(torch::nn::Module& model) {
  std::vector<torch::Tensor> out;
  for (const auto& p : model.parameters()) out.push_back(p.detach().clone());
  return out;
}

TEST_CASE("auto sharding: without --fsdp a plain process is data parallelism of one") {
  static_assert(trainpp::AutoSharding::shards_model);
  trainpp::AutoSharding sharding;
  sharding.configure(with_fsdp(""), torch::kCPU);
  CHECK(sharding.zero() == nullptr);
  CHECK(sharding.rank() == 0);
  CHECK(sharding.world_size() == 1);
  CHECK_FALSE(sharding.forward_is_collective());
  CHECK_FALSE(sharding.full_parameters().has_value());
  CHECK_FALSE(sharding.optimizer_state_file(0).has_value());
  // no_shard is FSDP's name for data parallelism.
  trainpp::AutoSharding no_shard;
  no_shard.configure(with_fsdp("no_shard"), torch::kCPU);
  CHECK(no_shard.zero() == nullptr);
}

TEST_CASE("auto sharding: --fsdp shard_grad_op and full_shard choose the ZeRO policy of that strategy") {
  trainpp::AutoSharding grad_op;
  grad_op.configure(with_fsdp("shard_grad_op"), torch::kCPU);
  REQUIRE(grad_op.zero() != nullptr);
  CHECK(grad_op.zero()->strategy() == trainpp::ShardingStrategy::shard_grad_op);
  CHECK(std::string(grad_op.zero()->label()) == "shard_grad_op");
  trainpp::AutoSharding full;
  full.configure(with_fsdp("full_shard"), torch::kCPU);
  REQUIRE(full.zero() != nullptr);
  CHECK(full.zero()->strategy() == trainpp::ShardingStrategy::full_shard);
  // One process: a forward gathers from its own shard, no collective to even out.
  CHECK_FALSE(full.forward_is_collective());
  // The optimizer exists only in pieces: its state is saved per process.
  CHECK(full.optimizer_state_file(0).has_value());
}

TEST_CASE("auto sharding: data parallelism's model files are the main process's model.safetensors") {
  TempDir dir;
  torch::manual_seed(5);
  Net model;
  trainpp::AutoSharding sharding;
  sharding.configure(with_fsdp(""), torch::kCPU);
  sharding.prepare(*model, torch::kCPU);
  sharding.save_model_files(*model, dir.path / "other", /*main_process=*/false);
  CHECK_FALSE(fs::exists(dir.path / "other" / trainpp::model_weights_name));
  sharding.save_model_files(*model, dir.path, /*main_process=*/true);
  REQUIRE(fs::exists(dir.path / trainpp::model_weights_name));
  Net fresh;
  trainpp::AutoSharding other;
  other.configure(with_fsdp(""), torch::kCPU);
  other.prepare(*fresh, torch::kCPU);
  other.load_model_files(*fresh, dir.path);
  const auto saved = values_of(*model), loaded = values_of(*fresh);
  REQUIRE(saved.size() == loaded.size());
  for (std::size_t i = 0; i < saved.size(); ++i) CHECK(torch::equal(saved[i], loaded[i]));
}

TEST_CASE("auto sharding: under --fsdp full_shard the model files hold the gathered weights and load back into shards") {
  TempDir dir;
  torch::manual_seed(6);
  Net model;
  const auto original = values_of(*model);
  trainpp::AutoSharding sharding;
  sharding.configure(with_fsdp("full_shard"), torch::kCPU);
  sharding.prepare(*model, torch::kCPU);
  CHECK(model->fc->weight.storage().nbytes() == 0);  // sharded away until gathered
  sharding.save_model_files(*model, dir.path, /*main_process=*/true);
  // A plain model reads the file a single process would have written.
  Net plain;
  trainpp::load_model(*plain, dir.path / trainpp::model_weights_name, /*strict=*/true);
  const auto written = values_of(*plain);
  REQUIRE(written.size() == original.size());
  for (std::size_t i = 0; i < written.size(); ++i) CHECK(torch::equal(written[i], original[i]));

  torch::manual_seed(7);
  Net fresh;
  trainpp::AutoSharding again;
  again.configure(with_fsdp("full_shard"), torch::kCPU);
  again.prepare(*fresh, torch::kCPU);
  again.load_model_files(*fresh, dir.path);
  auto gathered = again.full_parameters();
  REQUIRE(gathered.has_value());
  const auto loaded = values_of(*fresh);
  for (std::size_t i = 0; i < loaded.size(); ++i) CHECK(torch::equal(loaded[i], original[i]));
}

}  // namespace auto_sharding_test
