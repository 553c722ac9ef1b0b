// ShardGradOp / FullShard in one process (the multi-process runs are tests/distributed/check_zero.py):
// --fsdp / --fsdp_config parsing, training equal to the single-device slot, sharded model files and
// their consolidation, and the errors for slots that cannot shard. The layout and the collectives
// underneath are zero_layout_test.cpp's and zero_collectives_test.cpp's.

#include <trainpp/sharding/zero.hpp>
#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

namespace zero_test {

struct BlockImpl : torch::nn::Module {
  torch::nn::Linear fc{nullptr};
  BlockImpl() { fc = register_module("fc", torch::nn::Linear(8, 8)); }
  torch::Tensor forward(const torch::Tensor& x) { return x + torch::tanh(fc(x)); }
};
TORCH_MODULE(Block);

struct NetImpl : torch::nn::Module {
  torch::nn::Linear in{nullptr}, out{nullptr};
  Block first, second;
  NetImpl() {
    in = register_module("in", torch::nn::Linear(4, 8));
    first = register_module("first", Block());
    second = register_module("second", Block());
    out = register_module("out", torch::nn::Linear(8, 3));
  }
  trainpp::ModelOutput forward(const trainpp::Batch& batch) {
    auto h = trainpp::call(second, trainpp::call(first, in(batch.at("x"))));
    trainpp::ModelOutput o{.logits = out(h)};
    if (batch.contains("labels")) o.loss = torch::nn::functional::cross_entropy(o.logits, batch.at("labels"));
    return o;
  }
};
TORCH_MODULE(Net);

trainpp::TensorDataset data() {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  auto x = at::randn({64, 4}, gen);
  return trainpp::TensorDataset{{"x", x}, {"labels", x.sum(1).gt(0).to(torch::kLong) + x.select(1, 0).gt(1).to(torch::kLong)}};
}

trainpp::TrainingArguments args(const std::string& dir) {
  trainpp::TrainingArguments a;
  a.output_dir = dir;
  a.use_cpu = true;
  a.report_to = {"none"};
  a.disable_tqdm = true;
  a.save_strategy = trainpp::SaveStrategy::no;
  a.max_steps = 6;
  a.per_device_train_batch_size = 16;
  a.learning_rate = 1e-2;
  a.logging_steps = 1;
  a.log_level = trainpp::LogLevel::error;
  return a;
}

std::string temp_dir(const char* name) {
  auto dir = std::filesystem::temp_directory_path() / fmt::format("trainpp_zero_{}_{}", name, ::getpid());
  std::filesystem::remove_all(dir);
  return dir.string();
}

template <class Sharding, class Precision = trainpp::MixedPrecision>
std::pair<std::vector<double>, std::vector<torch::Tensor>> train(Sharding sharding, trainpp::TrainingArguments a,
                                                                 Precision precision = {}, double* final_scale = nullptr) {
  torch::manual_seed(1);
  Net net;
  trainpp::Trainer trainer(net, a, trainpp::sharding = std::move(sharding), trainpp::precision = std::move(precision),
                           trainpp::train_dataset = data());
  trainer.train();
  if constexpr (std::is_same_v<Precision, trainpp::FP16>)
    if (final_scale) *final_scale = trainer.precision().scaler.get_scale();
  std::vector<double> losses;
  for (const auto& entry : trainer.state().log_history)
    if (entry.contains("loss") && !entry.contains("train_runtime")) losses.push_back(entry["loss"].template get<double>());
  std::vector<torch::Tensor> weights;
  if constexpr (requires { trainer.sharding().full_parameters(); }) {
    auto gathered = trainer.sharding().full_parameters();
    for (const auto& p : net->parameters()) weights.push_back(p.detach().clone());
  } else {
    for (const auto& p : net->parameters()) weights.push_back(p.detach().clone());
  }
  return {losses, weights};
}



TEST_CASE("--fsdp and --fsdp_config read as HF reads them") {
  auto o = trainpp::parse_fsdp_options("full_shard auto_wrap offload",
                                       R"({"fsdp_transformer_layer_cls_to_wrap": "Block", "backward_prefetch": "BACKWARD_POST",
                                           "fsdp_forward_prefetch": "True", "limit_all_gathers": false,
                                           "state_dict_type": "SHARDED_STATE_DICT", "version": 2})",
                                       false);
  CHECK(o.strategy == trainpp::ShardingStrategy::full_shard);
  CHECK(o.offload);
  CHECK(o.auto_wrap);
  CHECK(o.transformer_layer_cls_to_wrap == std::vector<std::string>{"Block"});
  CHECK(o.backward_prefetch == trainpp::BackwardPrefetch::backward_post);
  CHECK(o.forward_prefetch);
  CHECK_FALSE(o.limit_all_gathers);
  CHECK(o.state_dict_type == trainpp::StateDictType::sharded_state_dict);
  // HF's defaults.
  const auto d = trainpp::parse_fsdp_options("shard_grad_op", std::nullopt, false);
  CHECK(d.strategy == trainpp::ShardingStrategy::shard_grad_op);
  CHECK(d.backward_prefetch == trainpp::BackwardPrefetch::no_prefetch);
  CHECK(d.limit_all_gathers);
  CHECK(d.sync_module_states);
  CHECK(d.state_dict_type == trainpp::StateDictType::full_state_dict);
  CHECK_FALSE(trainpp::parse_fsdp_options("", std::nullopt, false).strategy);
  // A config file, with a list of classes.
  const auto path = std::filesystem::path(temp_dir("config")) / "fsdp.json";
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << R"({"transformer_layer_cls_to_wrap": ["Block", "Embedding"]})";
  CHECK(trainpp::parse_fsdp_options("full_shard auto_wrap", path.string(), false).transformer_layer_cls_to_wrap.size() == 2);
  CHECK_THROWS_WITH_AS(trainpp::parse_fsdp_options("full_shard", R"({"forward_prefetch": "yes"})", false),
                       doctest::Contains("must be true or false"), trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::parse_fsdp_options("full_shard", R"({"backward_prefetch": "early"})", false),
                       doctest::Contains("backward_pre, backward_post or no_prefetch"), trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::parse_fsdp_options("full_shard", "{not json", false),
                       doctest::Contains("not valid JSON"), trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::parse_fsdp_options("full_shard", R"({"reshard_after_forward": false})", false),
                       doctest::Contains("shard_grad_op"), trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::parse_fsdp_options("full_shard no_shard", std::nullopt, false),
                       doctest::Contains("not compatible"), trainpp::Error);
}

TEST_CASE("a DeepSpeed config maps onto the same policies, its values checked against the arguments") {
  trainpp::DeepSpeedArguments a{.per_device_train_batch_size = 4, .gradient_accumulation_steps = 2, .world_size = 2};
  auto o = trainpp::parse_deepspeed_config(
      R"({"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu"}, "overlap_comm": true,
                                "stage3_prefetch_bucket_size": "auto"},
          "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": 2, "train_batch_size": 16,
          "gradient_clipping": "auto", "bf16": {"enabled": "auto"},
          "optimizer": {"type": "AdamW", "params": {"lr": "auto", "betas": "auto", "eps": 1e-8}}, "steps_per_print": 10})",
      a);
  CHECK(o.strategy == trainpp::ShardingStrategy::full_shard);
  CHECK(o.offload);
  CHECK(trainpp::parse_deepspeed_config(R"({"zero_optimization": {"stage": 1}})", a).strategy ==
        trainpp::ShardingStrategy::shard_grad_op);
  CHECK(trainpp::parse_deepspeed_config(R"({"zero_optimization": {"stage": 0}})", a).strategy ==
        trainpp::ShardingStrategy::no_shard);
  CHECK_THROWS_WITH_AS(trainpp::parse_deepspeed_config(R"({"train_micro_batch_size_per_gpu": 8, "gradient_clipping": 2.0})", a),
                       doctest::Contains("ds train_micro_batch_size_per_gpu=8 vs hf per_device_train_batch_size=4"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::parse_deepspeed_config(R"({"train_batch_size": 32})", a),
                       doctest::Contains("mismatch TrainingArguments"), trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::parse_deepspeed_config(R"({"scheduler": {"type": "WarmupLR"}})", a),
                       doctest::Contains("--lr_scheduler_type"), trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::parse_deepspeed_config(R"({"zero_optimization": {"stage": 3, "offload_param": {"device": "nvme"}}})", a),
                       doctest::Contains("CPU only"), trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::parse_deepspeed_config(R"({"zero_optimisation": {"stage": 2}})", a),
                       doctest::Contains("unknown DeepSpeed config key 'zero_optimisation'"), trainpp::Error);
  trainpp::TrainingArguments both;
  both.deepspeed = R"({"zero_optimization": {"stage": 2}})";
  both.fsdp = "full_shard";
  CHECK_THROWS_WITH_AS((void)both.fsdp_options(), doctest::Contains("mutually exclusive"), trainpp::Error);
}

TEST_CASE("one process under ShardGradOp or FullShard trains as the single-device slot does" *
          doctest::test_suite("integration")) {
  const auto [losses, weights] = train(trainpp::SingleDevice{}, args(temp_dir("single")));
  auto a = args(temp_dir("fsdp"));
  a.gradient_accumulation_steps = 2;
  a.per_device_train_batch_size = 8;
  a.max_grad_norm = 0.5;  // clipping through the sharded norm
  auto b = args(temp_dir("single_ga"));
  b.gradient_accumulation_steps = 2;
  b.per_device_train_batch_size = 8;
  b.max_grad_norm = 0.5;
  const auto [ref_losses, ref_weights] = train(trainpp::SingleDevice{}, b);
  trainpp::FsdpOptions options;
  options.transformer_layer_cls_to_wrap = {"Block"};
  for (const bool full : {false, true}) {
    CAPTURE(full);
    const auto [l, w] = full ? train(trainpp::FullShard(options), a) : train(trainpp::ShardGradOp(options), a);
    REQUIRE(l.size() == ref_losses.size());
    for (std::size_t i = 0; i < l.size(); ++i) CHECK(l[i] == doctest::Approx(ref_losses[i]).epsilon(1e-6));
    for (std::size_t i = 0; i < w.size(); ++i) CHECK(torch::allclose(w[i], ref_weights[i], 1e-6, 1e-6));
  }
  CHECK(losses.size() == 6);
}

TEST_CASE("FP16 in the slot under ShardGradOp and FullShard: one process trains as the single-device slot does") {
  // The combination compiles (the ZeRO policies accept every precision policy) and the overflow
  // agreement sits in the step; a first scale that overflows makes the scaler skip and back off.
  auto a = args(temp_dir("fp16"));
  a.fp16 = true;
  const trainpp::GradScalerOptions scaler{.init_scale = 1 << 24, .growth_interval = 2};
  double reference_scale = 0;
  const auto [ref_losses, ref_weights] = train(trainpp::SingleDevice{}, a, trainpp::FP16(scaler), &reference_scale);
  CHECK(reference_scale < 1 << 24);  // some steps overflowed
  trainpp::FsdpOptions options;
  options.transformer_layer_cls_to_wrap = {"Block"};
  for (const bool full : {false, true}) {
    CAPTURE(full);
    double scale = 0;
    const auto [l, w] = full ? train(trainpp::FullShard(options), a, trainpp::FP16(scaler), &scale)
                             : train(trainpp::ShardGradOp(options), a, trainpp::FP16(scaler), &scale);
    CHECK(scale == reference_scale);
    REQUIRE(l.size() == ref_losses.size());
    for (std::size_t i = 0; i < l.size(); ++i) CHECK(l[i] == doctest::Approx(ref_losses[i]).epsilon(1e-6));
    for (std::size_t i = 0; i < w.size(); ++i) CHECK(torch::allclose(w[i], ref_weights[i], 1e-6, 1e-6));
  }
}

TEST_CASE("a sharded model's files consolidate into the whole model") {
  const auto dir = std::filesystem::path(temp_dir("files"));
  std::filesystem::create_directories(dir / "sharded");
  torch::manual_seed(3);
  Net net;
  trainpp::save_model(*net, dir / "whole");
  trainpp::FsdpOptions options;
  options.transformer_layer_cls_to_wrap = {"Block"};
  options.state_dict_type = trainpp::StateDictType::sharded_state_dict;
  trainpp::FullShard sharding(options);
  sharding.prepare(*net, torch::kCPU);
  sharding.save_model_files(*net, dir / "sharded", /*main_process=*/true);
  CHECK(std::filesystem::exists(dir / "sharded" / "model_shards.json"));
  CHECK_FALSE(std::filesystem::exists(dir / "sharded" / "model.safetensors"));
  const auto file = trainpp::consolidate_sharded_model(dir / "sharded", dir / "sharded");
  const auto a = trainpp::load_safetensors(dir / "whole" / "model.safetensors");
  const auto b = trainpp::load_safetensors(file);
  REQUIRE(a.tensors.size() == b.tensors.size());
  std::map<std::string, torch::Tensor> by_name(b.tensors.begin(), b.tensors.end());
  for (const auto& [name, t] : a.tensors) {
    CAPTURE(name);
    REQUIRE(by_name.contains(name));
    CHECK(torch::equal(t, by_name[name]));
  }
  // And back: a fresh model loads the pieces; its gathered weights are the saved ones.
  torch::manual_seed(4);
  Net fresh;
  trainpp::FullShard again(options);
  again.prepare(*fresh, torch::kCPU);
  std::filesystem::remove(dir / "sharded" / "model.safetensors");
  again.load_model_files(*fresh, dir / "sharded");
  auto gathered = again.full_parameters();
  for (const auto& item : fresh->named_parameters()) CHECK(torch::equal(item.value(), by_name[item.key()]));
  // A broken index is an error naming the file.
  std::ofstream(dir / "sharded" / "model_shards.json") << R"({"format": "trainpp.sharded_model", "world_size": 3})";
  CHECK_THROWS_WITH_AS(trainpp::consolidate_sharded_model(dir / "sharded", dir / "out.safetensors"),
                       doctest::Contains("model_shards.json"), trainpp::Error);
}

TEST_CASE("--fsdp with a slot that cannot shard is an error, not unsharded training") {
  auto a = args(temp_dir("slot"));
  a.fsdp = "full_shard";
  Net net;
  {
    // The default slot follows the flag, as HF's Trainer does.
    trainpp::Trainer sharded(net, a, trainpp::train_dataset = data());
    static_assert(std::is_same_v<decltype(sharded)::sharding_type, trainpp::AutoSharding>);
    REQUIRE(sharded.sharding().zero() != nullptr);
    CHECK(sharded.sharding().zero()->describe_units().size() == 1);
  }
  CHECK_THROWS_WITH_AS(trainpp::Trainer(net, a, trainpp::sharding = trainpp::SingleDevice{}, trainpp::train_dataset = data()),
                       doctest::Contains("put trainpp::AutoSharding"), trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::Trainer(net, a, trainpp::sharding = trainpp::DataParallel{}, trainpp::train_dataset = data()),
                       doctest::Contains("does not shard"), trainpp::Error);
  a.fsdp = "shard_grad_op";
  CHECK_THROWS_WITH_AS(trainpp::Trainer(net, a, trainpp::sharding = trainpp::FullShard{}, trainpp::train_dataset = data()),
                       doctest::Contains("the sharding slot is full_shard"), trainpp::Error);
}

/// A step of the user's own, written from scratch rather than derived from DefaultStep: it knows
/// nothing of sharding, and must not need to (the loop gathers and reduces around it).
struct HandWrittenStep {
  template <class Trainer, class B>
  torch::Tensor training_step(Trainer& trainer, const B& batch, std::int64_t window_size) {
    torch::Tensor loss = trainer.compute_loss(batch) / static_cast<double>(window_size);
    loss.backward();
    return loss.detach();
  }
  template <class Trainer, class B>
  trainpp::PredictionStep prediction_step(Trainer& trainer, const B& batch, bool /*prediction_loss_only*/) {
    torch::NoGradGuard no_grad;
    auto outputs = trainer.forward(batch);
    return trainpp::PredictionStep{.loss = trainer.compute_loss(outputs, batch).detach()};
  }
};

template <class Sharding>
std::tuple<std::vector<double>, std::vector<torch::Tensor>, double> train_own_step(Sharding sharding,
                                                                                  trainpp::TrainingArguments a) {
  torch::manual_seed(1);
  Net net;
  trainpp::Trainer trainer(net, a, trainpp::sharding = std::move(sharding), trainpp::step = HandWrittenStep{},
                           trainpp::train_dataset = data(), trainpp::eval_dataset = data());
  trainer.train();
  const double eval_loss = trainer.evaluate().at("eval_loss");
  std::vector<double> losses;
  for (const auto& entry : trainer.state().log_history)
    if (entry.contains("loss") && !entry.contains("train_runtime")) losses.push_back(entry["loss"].template get<double>());
  std::vector<torch::Tensor> weights;
  if constexpr (requires { trainer.sharding().full_parameters(); }) {
    auto gathered = trainer.sharding().full_parameters();
    for (const auto& p : net->parameters()) weights.push_back(p.detach().clone());
  } else {
    for (const auto& p : net->parameters()) weights.push_back(p.detach().clone());
  }
  return {losses, weights, eval_loss};
}

TEST_CASE("a step of the user's own cannot break FullShard: the loop gathers and frees around it") {
  auto a = args(temp_dir("own_step"));
  a.gradient_accumulation_steps = 2;
  a.per_device_train_batch_size = 8;
  const auto [ref_losses, ref_weights, ref_eval] = train_own_step(trainpp::SingleDevice{}, a);
  trainpp::FsdpOptions options;
  options.transformer_layer_cls_to_wrap = {"Block"};
  const auto [losses, weights, eval] = train_own_step(trainpp::FullShard(options), a);
  REQUIRE(losses.size() == ref_losses.size());
  CHECK(losses.size() == 6);
  for (std::size_t i = 0; i < losses.size(); ++i) CHECK(losses[i] == doctest::Approx(ref_losses[i]).epsilon(1e-6));
  for (std::size_t i = 0; i < weights.size(); ++i) CHECK(torch::allclose(weights[i], ref_weights[i], 1e-6, 1e-6));
  CHECK(eval == doctest::Approx(ref_eval).epsilon(1e-6));
}

}  // namespace zero_test
