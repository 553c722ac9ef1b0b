// from_pretrained / save_pretrained on directories trainpp writes: round trips single and sharded,
// transformers' shard split and names, tied weights, dtype casts, the load report, and one clear error
// naming the file for every kind of bad directory. (Parity with transformers itself: gpt2_test.cpp.)

#include <trainpp/models/gpt2.hpp>
#include <trainpp/models/pretrained.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <malloc.h>
#include <unistd.h>

namespace models_pretrained_test {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() / fmt::format("trainpp-pretrained-test-{}-{}", ::getpid(), std::random_device{}());
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

trainpp::GPT2Config tiny() {
  return {.vocab_size = 64, .n_positions = 16, .n_embd = 32, .n_layer = 2, .n_head = 4};
}

std::string error_of(auto&& fn) {
  try {
    fn();
  } catch (const trainpp::Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool same_weights(const trainpp::GPT2LMHeadModel& a, const trainpp::GPT2LMHeadModel& b) {
  const auto pa = a->named_parameters(), pb = b->named_parameters();
  if (pa.size() != pb.size()) return false;
  for (const auto& item : pa)
    if (!pb.contains(item.key()) || !torch::equal(item.value(), pb[item.key()])) return false;
  return true;
}

TEST_CASE("save_pretrained then from_pretrained gives the same model, the tied head saved once") {
  TempDir dir;
  torch::manual_seed(1);
  trainpp::GPT2LMHeadModel model(tiny());
  trainpp::save_pretrained(model, dir.path / "m");
  CHECK(fs::exists(dir.path / "m" / "config.json"));
  CHECK(fs::exists(dir.path / "m" / "generation_config.json"));
  CHECK(fs::exists(dir.path / "m" / "model.safetensors"));
  CHECK_FALSE(fs::exists(dir.path / "m" / "model.safetensors.index.json"));

  const auto file = trainpp::load_safetensors(dir.path / "m" / "model.safetensors");
  std::set<std::string> names;
  for (const auto& [name, tensor] : file.tensors) names.insert(name);
  CHECK(names.contains("transformer.wte.weight"));
  CHECK(names.contains("transformer.h.1.attn.c_attn.weight"));
  CHECK_FALSE(names.contains("lm_head.weight"));  // tied: transformers 5 saves the source only
  CHECK(file.metadata.at("format") == "pt");

  const auto config = trainpp::read_json_file(dir.path / "m" / "config.json");
  CHECK(config["architectures"] == nlohmann::json::array({"GPT2LMHeadModel"}));
  CHECK(config["dtype"] == "float32");
  CHECK(config["n_embd"] == 32);

  trainpp::PretrainedLoadReport report;
  auto loaded = trainpp::from_pretrained<trainpp::GPT2LMHeadModel>(dir.path / "m", {.strict = true, .report = &report});
  CHECK(report.clean());
  CHECK(same_weights(model, loaded));
  // Still tied after loading: one tensor under two names.
  CHECK(loaded->lm_head->weight.is_same(loaded->transformer->wte->weight));
}

TEST_CASE("save_pretrained splits as transformers does: in state_dict order, a new shard when the next tensor would not fit") {
  TempDir dir;
  torch::manual_seed(2);
  trainpp::GPT2LMHeadModel model(tiny());
  // Tensor sizes (bytes): wte 8192, wpe 2048, per block ln 128 x2, c_attn.w 12288, c_attn.b 384,
  // c_proj.w 4096, c_proj.b 128, ln 128 x2, c_fc.w 16384, c_fc.b 512, mlp.c_proj.w 16384, b 128.
  trainpp::save_pretrained(model, dir.path / "s", "20KB");
  const auto index = trainpp::read_json_file(dir.path / "s" / "model.safetensors.index.json");
  CHECK(index["metadata"]["total_size"] == 28032 * 4);
  CHECK(index["metadata"]["total_parameters"] == 28032);
  const auto& map = index["weight_map"];
  CHECK(map.size() == 28);  // 2 embeddings + 2 x 12 block tensors + 2 ln_f; lm_head tied, not saved
  CHECK(map["transformer.wte.weight"] == "model-00001-of-00007.safetensors");
  CHECK(map["transformer.h.0.attn.c_attn.weight"] == "model-00002-of-00007.safetensors");
  CHECK(map["transformer.h.0.mlp.c_fc.weight"] == "model-00003-of-00007.safetensors");
  CHECK(map["transformer.ln_f.weight"] == "model-00007-of-00007.safetensors");
  for (int k = 1; k <= 7; ++k) CHECK(fs::exists(dir.path / "s" / fmt::format("model-{:05d}-of-00007.safetensors", k)));
  CHECK_FALSE(fs::exists(dir.path / "s" / "model.safetensors"));
  CHECK(trainpp::read_file(dir.path / "s" / "model.safetensors.index.json").starts_with("{\n  \"metadata\": {\n    \"total_parameters\""));

  auto loaded = trainpp::from_pretrained<trainpp::GPT2LMHeadModel>(dir.path / "s", {.strict = true});
  CHECK(same_weights(model, loaded));

  // Saving again, unsharded, into the same directory: the old shards and index go, other files stay.
  trainpp::write_file_atomic(dir.path / "s" / "tokenizer.json", "{}");
  trainpp::save_pretrained(model, dir.path / "s");
  CHECK(fs::exists(dir.path / "s" / "model.safetensors"));
  CHECK(fs::exists(dir.path / "s" / "tokenizer.json"));
  CHECK_FALSE(fs::exists(dir.path / "s" / "model.safetensors.index.json"));
  CHECK_FALSE(fs::exists(dir.path / "s" / "model-00001-of-00007.safetensors"));
  // No staging directory is left behind.
  for (const auto& entry : fs::directory_iterator(dir.path)) CHECK_FALSE(entry.path().filename().string().starts_with(".tmp-"));
}

/// The process's resident set size now and at its peak since reset_peak_rss(), in bytes (Linux).
std::pair<std::int64_t, std::int64_t> rss_now_and_peak() {
  std::ifstream status("/proc/self/status");
  std::string line;
  std::int64_t now = -1, peak = -1;
  while (std::getline(status, line)) {
    if (line.starts_with("VmRSS:")) now = std::stoll(line.substr(6)) * 1024;
    if (line.starts_with("VmHWM:")) peak = std::stoll(line.substr(6)) * 1024;
  }
  return {now, peak};
}
bool reset_peak_rss() { return static_cast<bool>(std::ofstream("/proc/self/clear_refs") << "5"); }

TEST_CASE("from_pretrained of a sharded directory needs little more memory than the model itself") {
  TempDir dir;
  // 8.6 MB in shards of at most 2 MB (the largest tensor, the token embedding, is 2.1 MB).
  const trainpp::GPT2Config config{.vocab_size = 2048, .n_positions = 64, .n_embd = 256, .n_layer = 2, .n_head = 4};
  std::int64_t model_bytes = 0;
  {
    trainpp::GPT2LMHeadModel model(config);
    for (const auto& p : model->parameters()) model_bytes += p.nbytes();
    model_bytes -= model->lm_head->weight.nbytes();  // tied: counted once
    trainpp::save_pretrained(model, dir.path / "m", "2MB");
  }
  REQUIRE(fs::exists(dir.path / "m" / "model.safetensors.index.json"));
  // The freed model's pages go back to the system, or the load would reuse them unseen.
  ::malloc_trim(0);
  if (!reset_peak_rss()) return;  // no /proc/self/clear_refs: nothing to measure with
  const auto before = rss_now_and_peak().first;
  auto loaded = trainpp::from_pretrained<trainpp::GPT2LMHeadModel>(dir.path / "m", {.strict = true});
  const auto [after, peak] = rss_now_and_peak();
  MESSAGE("model " << model_bytes << " bytes; resident before loading " << before << ", after " << after
                    << ", peak " << peak);
  // Beyond the model it builds, loading holds at most one shard's pages (2 MB) at a time: reading
  // every shard first would hold the whole model a second time.
  CHECK(peak - after < 3'500'000);
  CHECK(after - before < model_bytes + 3'500'000);
}

TEST_CASE("ShardSize reads transformers' sizes") {
  CHECK(trainpp::ShardSize("5GB").bytes() == 5'000'000'000);
  CHECK(trainpp::ShardSize(" 1.5 mb ").bytes() == 1'500'000);
  CHECK(trainpp::ShardSize(1234).bytes() == 1234);
  CHECK(error_of([] { (void)trainpp::ShardSize("5GiB"); }).find("unit \"IB\" not supported") != std::string::npos);
  CHECK(error_of([] { (void)trainpp::ShardSize("lotsGB"); }).find("is not a positive number") != std::string::npos);
}

TEST_CASE("from_pretrained casts to the config's dtype, or the one asked for, and saves that dtype") {
  TempDir dir;
  torch::manual_seed(3);
  trainpp::GPT2LMHeadModel model(tiny());
  trainpp::save_pretrained(model, dir.path / "m");
  auto bf16 = trainpp::from_pretrained<trainpp::GPT2LMHeadModel>(dir.path / "m", {.dtype = torch::kBFloat16});
  CHECK(bf16->transformer->h->size() == 2);
  for (const auto& p : bf16->parameters()) CHECK((p.scalar_type() == torch::kBFloat16));
  CHECK(torch::equal(bf16->transformer->wte->weight, model->transformer->wte->weight.to(torch::kBFloat16)));
  CHECK(bf16->lm_head->weight.is_same(bf16->transformer->wte->weight));

  trainpp::save_pretrained(bf16, dir.path / "b");
  CHECK(trainpp::read_json_file(dir.path / "b" / "config.json")["dtype"] == "bfloat16");
  // The saved config's dtype is the default when loading it again.
  auto again = trainpp::from_pretrained<trainpp::GPT2LMHeadModel>(dir.path / "b");
  CHECK((again->transformer->wpe->weight.scalar_type() == torch::kBFloat16));
}

TEST_CASE("from_pretrained reports missing and unexpected tensors as transformers does, and refuses them when strict") {
  TempDir dir;
  torch::manual_seed(4);
  trainpp::GPT2LMHeadModel model(tiny());
  trainpp::save_pretrained(model, dir.path / "m");
  const auto weights = dir.path / "m" / "model.safetensors";
  auto file = trainpp::load_safetensors(weights);
  std::erase_if(file.tensors, [](const auto& item) { return item.first == "transformer.ln_f.bias"; });
  file.tensors.emplace_back("transformer.extra", torch::zeros({2}));
  file.tensors.emplace_back("transformer.h.0.attn.bias", torch::zeros({1}));  // old checkpoints: ignored silently
  trainpp::save_safetensors(weights, file.tensors);

  trainpp::PretrainedLoadReport report;
  trainpp::ScopedLoggerState quiet;
  std::string log;
  trainpp::logger().set_sink([&](trainpp::LogLevel, std::string_view line) { log += std::string(line) + "\n"; });
  (void)trainpp::from_pretrained<trainpp::GPT2LMHeadModel>(dir.path / "m", {.report = &report});
  CHECK(report.missing == std::vector<std::string>{"transformer.ln_f.bias"});
  CHECK(report.unexpected == std::vector<std::string>{"transformer.extra"});
  CHECK(log.find("Some weights of the model checkpoint at") != std::string::npos);
  CHECK(log.find("were not used when initializing GPT2LMHeadModel: [transformer.extra]") != std::string::npos);
  CHECK(log.find("are newly initialized: [transformer.ln_f.bias]") != std::string::npos);

  const auto e = error_of([&] { (void)trainpp::from_pretrained<trainpp::GPT2LMHeadModel>(dir.path / "m", {.strict = true}); });
  CHECK(e.find("(strict)") != std::string::npos);
  CHECK(e.find("missing from the checkpoint: transformer.ln_f.bias") != std::string::npos);
  CHECK(e.find("unexpected in the checkpoint: transformer.extra") != std::string::npos);
}

TEST_CASE("every bad model directory is one error naming the file") {
  TempDir dir;
  torch::manual_seed(5);
  trainpp::GPT2LMHeadModel model(tiny());
  auto fresh = [&](const std::string& name, trainpp::ShardSize size = "50GB") {
    trainpp::save_pretrained(model, dir.path / name, size);
    return dir.path / name;
  };
  auto load_error = [](const fs::path& d) {
    return error_of([&] { (void)trainpp::from_pretrained<trainpp::GPT2LMHeadModel>(d); });
  };
  auto mentions = [](const std::string& e, const fs::path& p, std::string_view what) {
    INFO(e);
    CHECK(e.find(p.string()) != std::string::npos);
    CHECK(e.find(what) != std::string::npos);
  };

  SUBCASE("no directory") { mentions(load_error(dir.path / "absent"), dir.path / "absent", "no such directory"); }
  SUBCASE("no config.json") {
    const auto d = fresh("no_config");
    fs::remove(d / "config.json");
    mentions(load_error(d), d / "config.json", "no such file");
  }
  SUBCASE("config.json that is not strict JSON") {
    const auto d = fresh("bad_json");
    trainpp::write_file_atomic(d / "config.json", R"({"model_type": "gpt2", "n_embd": 32,})");
    mentions(load_error(d), d / "config.json", "not valid JSON");
  }
  SUBCASE("another model_type, a required key missing") {
    const auto d = fresh("bad_type");
    auto config = trainpp::read_json_file(d / "config.json");
    config["model_type"] = "llama";
    trainpp::write_file_atomic(d / "config.json", config.dump());
    mentions(load_error(d), d / "config.json", "GPT2LMHeadModel expects \"gpt2\"");
    config["model_type"] = "gpt2";
    config.erase("n_layer");
    trainpp::write_file_atomic(d / "config.json", config.dump());
    mentions(load_error(d), d / "config.json", "missing required key \"n_layer\"");
  }
  SUBCASE("no weights") {
    const auto d = fresh("no_weights");
    fs::remove(d / "model.safetensors");
    mentions(load_error(d), d, "no model weights");
  }
  SUBCASE("a shard named in the index is missing") {
    const auto d = fresh("missing_shard", "20KB");
    fs::remove(d / "model-00003-of-00007.safetensors");
    mentions(load_error(d), d / "model.safetensors.index.json", "shard model-00003-of-00007.safetensors named in the index is missing");
  }
  SUBCASE("the index places a tensor in a shard that does not hold it") {
    const auto d = fresh("wrong_index", "20KB");
    auto index = trainpp::read_json_file(d / "model.safetensors.index.json");
    index["weight_map"]["transformer.wte.weight"] = "model-00002-of-00007.safetensors";
    trainpp::write_file_atomic(d / "model.safetensors.index.json", index.dump());
    mentions(load_error(d), d / "model.safetensors.index.json", "places tensor \"transformer.wte.weight\" in model-00002-of-00007.safetensors");
  }
  SUBCASE("a truncated safetensors file") {
    const auto d = fresh("truncated");
    fs::resize_file(d / "model.safetensors", fs::file_size(d / "model.safetensors") - 100);
    mentions(load_error(d), d / "model.safetensors", "past the data buffer");
  }
  SUBCASE("a truncated shard") {
    const auto d = fresh("truncated_shard", "20KB");
    fs::resize_file(d / "model-00004-of-00007.safetensors", 6);
    mentions(load_error(d), d / "model-00004-of-00007.safetensors", "fewer than the 8-byte header size");
  }
  SUBCASE("shapes that do not match the config") {
    const auto d = fresh("wrong_shapes");
    auto config = trainpp::read_json_file(d / "config.json");
    config["vocab_size"] = 65;
    trainpp::write_file_atomic(d / "config.json", config.dump());
    const auto e = load_error(d);
    mentions(e, d / "model.safetensors", "transformer.wte.weight: [64, 32] in the checkpoint, [65, 32] in the model");
    // With ignore_mismatched_sizes the tensor is left as initialised instead.
    trainpp::PretrainedLoadReport report;
    trainpp::ScopedLoggerState quiet;
    trainpp::logger().silence();
    (void)trainpp::from_pretrained<trainpp::GPT2LMHeadModel>(d, {.ignore_mismatched_sizes = true, .report = &report});
    CHECK(report.mismatched.size() == 1);
  }
}

}  // namespace models_pretrained_test
