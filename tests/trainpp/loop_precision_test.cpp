// Mixed precision in the loop: autocast really on in the forward (training and evaluation) and off
// after the step, float32 master weights, fp16 steps with overflowing gradients skipped without
// advancing the schedule, the scale backing off and growing back, the scaler restored exactly on
// resume, full-precision evaluation switches, and the flag / slot / device errors.

#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include <unistd.h>

namespace loop_precision_test {

/// doctest prints strings, not c10::ScalarType.
std::string dt(c10::ScalarType t) { return c10::toString(t); }

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() /
                  fmt::format("trainpp-loop-precision-test-{}-{}", ::getpid(), std::random_device{}());
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

/// What the forward saw: the dtype of its first matmul's output and of its weight.
struct Seen {
  std::vector<c10::ScalarType> activation, weight;
};

// The loss is multiplied by the batch's "poison" column: an inf there makes every gradient inf or NaN,
// as an fp16 overflow would.
struct NetImpl : torch::nn::Module {
  torch::nn::Linear fc1{4, 8}, fc2{8, 3};
  std::shared_ptr<Seen> seen = std::make_shared<Seen>();
  NetImpl() {
    register_module("fc1", fc1);
    register_module("fc2", fc2);
  }
  trainpp::ModelOutput forward(const trainpp::Batch& b) {
    auto h = fc1(b.at("x"));
    seen->activation.push_back(h.scalar_type());
    seen->weight.push_back(fc1->weight.scalar_type());
    trainpp::ModelOutput out{.logits = fc2(torch::relu(h))};
    if (b.contains("labels")) {
      out.loss = torch::nn::functional::cross_entropy(out.logits.to(torch::kFloat32), b.at("labels"));
      if (b.contains("poison")) out.loss = out.loss * b.at("poison").to(torch::kFloat32).max();
    }
    return out;
  }
};
TORCH_MODULE(Net);

trainpp::TensorDataset data(std::int64_t n, const std::set<std::int64_t>& poisoned_batches = {}, std::int64_t batch = 4) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  auto x = torch::randn({n, 4}, gen);
  auto labels = (x.select(1, 0) > 0).to(torch::kLong) + (x.select(1, 1) > 0.5).to(torch::kLong);
  auto poison = torch::ones({n});
  for (const auto b : poisoned_batches) poison[b * batch] = INFINITY;
  return trainpp::TensorDataset{{"x", x}, {"labels", labels}, {"poison", poison}};
}

trainpp::TrainingArguments args_in(const fs::path& out) {
  trainpp::TrainingArguments a;
  a.output_dir = out.string();
  a.disable_tqdm = true;
  a.per_device_train_batch_size = 4;
  a.per_device_eval_batch_size = 8;
  a.learning_rate = 0.05;
  a.max_steps = 8;
  a.logging_steps = 1;
  a.save_strategy = trainpp::SaveStrategy::no;
  a.train_sampling_strategy = trainpp::SamplingStrategy::sequential;  // batch k is examples 4k..4k+3
  a.full_determinism = true;
  return a;
}

struct AutocastAfterStep {
  std::shared_ptr<std::vector<bool>> enabled = std::make_shared<std::vector<bool>>();
  void on_step_end(const trainpp::TrainingArguments&, const trainpp::TrainerState&, trainpp::TrainerControl&) const {
    enabled->push_back(at::autocast::is_autocast_enabled(c10::DeviceType::CPU));
  }
};

TEST_CASE("bf16 and fp16: autocast on in the forward, off after each step, float32 master weights") {
  for (const bool bf16 : {true, false}) {
    CAPTURE(bf16);
    TempDir dir;
    auto args = args_in(dir.path);
    (bf16 ? args.bf16 : args.fp16) = true;
    args.eval_strategy = trainpp::IntervalStrategy::steps;
    args.eval_steps = 4;
    AutocastAfterStep probe;
    Net net;
    auto seen = net->seen;
    trainpp::Trainer trainer(net, args, trainpp::train_dataset = data(32), trainpp::eval_dataset = data(8),
                             trainpp::callbacks = trainpp::callback_list(probe));
    CHECK(std::string(trainer.precision().name()) == (bf16 ? "bf16" : "fp16"));
    trainer.train();
    const auto low = bf16 ? torch::kBFloat16 : torch::kHalf;
    REQUIRE(seen->activation.size() == 8 + 2);  // 8 training forwards, 2 evaluations of one batch
    for (const auto dtype : seen->activation) CHECK(dt(dtype) == dt(low));     // training and evaluation
    for (const auto dtype : seen->weight) CHECK(dt(dtype) == dt(torch::kFloat32));  // the weights themselves never
    REQUIRE(probe.enabled->size() == 8);
    for (const bool on : *probe.enabled) CHECK(!on);
    CHECK(!at::autocast::is_autocast_enabled(c10::DeviceType::CPU));
    for (const auto& p : trainer.module().parameters()) CHECK(dt(p.scalar_type()) == dt(torch::kFloat32));
  }
}

/// The loss scale after each step.
struct ScaleProbe {
  std::shared_ptr<std::vector<double>> scales = std::make_shared<std::vector<double>>();
  template <class Trainer>
  void on_step_end(const trainpp::TrainingArguments&, const trainpp::TrainerState&, trainpp::TrainerControl&,
                   Trainer& trainer) const {
    scales->push_back(trainer.precision().scaler.get_scale());
  }
};

TEST_CASE("fp16: an overflowing step is skipped, the schedule waits, the scale backs off and grows back") {
  TempDir dir;
  auto args = args_in(dir.path);
  args.fp16 = true;
  args.max_steps = 8;
  args.lr_scheduler_type = trainpp::SchedulerType::linear;
  ScaleProbe probe;
  Net net;
  trainpp::Trainer trainer(net, args, trainpp::train_dataset = data(32, {2, 3}),  // steps 3 and 4 overflow
                           trainpp::precision = trainpp::FP16(trainpp::GradScalerOptions{.growth_interval = 2}),
                           trainpp::callbacks = trainpp::callback_list(probe));
  trainer.train();
  // 2^16, two clean steps grow it, two overflows halve it twice, then growth every two clean steps.
  CHECK(*probe.scales == std::vector<double>{65536, 131072, 65536, 32768, 32768, 65536, 65536, 131072});

  std::vector<double> lrs;
  for (const auto& entry : trainer.state().log_history)
    if (entry.contains("learning_rate")) lrs.push_back(entry.at("learning_rate").get<double>());
  REQUIRE(lrs.size() == 8);
  // linear decay from 0.05 over 8 steps: the rate a step used. Steps 3 and 4 were skipped, so the
  // schedule stood still: steps 3, 4 and 5 all used the third rate.
  const std::vector<double> expected{0.05, 0.04375, 0.0375, 0.0375, 0.0375, 0.03125, 0.025, 0.01875};
  for (std::size_t i = 0; i < lrs.size(); ++i) CHECK_MESSAGE(lrs[i] == doctest::Approx(expected[i]), i);
  // The skipped steps' gradient norms are not finite (HF logs them as they are).
  const auto& h = trainer.state().log_history;
  CHECK(!std::isfinite(h[2].at("grad_norm").get<double>()));
  CHECK(std::isfinite(h[4].at("grad_norm").get<double>()));
}

TEST_CASE("fp16: an overflowing step leaves the weights as they were") {
  TempDir dir;
  auto args = args_in(dir.path);
  args.fp16 = true;
  args.max_steps = 3;
  args.lr_scheduler_type = trainpp::SchedulerType::constant;  // the same rates in both runs
  Net reference_net;
  Net net;
  {
    torch::NoGradGuard no_grad;
    for (std::size_t i = 0; i < net->parameters().size(); ++i) net->parameters()[i].copy_(reference_net->parameters()[i]);
  }
  // Run A: three clean steps then stop after two. Run B: step 3 poisoned. After B, the weights equal A's
  // after two steps.
  {
    auto a = args;
    a.max_steps = 2;
    trainpp::Trainer clean(reference_net, a, trainpp::train_dataset = data(32));
    clean.train();
  }
  trainpp::Trainer poisoned(net, args, trainpp::train_dataset = data(32, {2}));
  poisoned.train();
  for (std::size_t i = 0; i < net->parameters().size(); ++i)
    CHECK(torch::equal(net->parameters()[i], reference_net->parameters()[i]));
}

TEST_CASE("fp16: resume restores the loss scale and growth tracker exactly") {
  TempDir dir;
  auto args = args_in(dir.path / "full");
  args.fp16 = true;
  args.max_steps = 12;
  args.save_strategy = trainpp::SaveStrategy::steps;
  args.save_steps = 5;
  const trainpp::GradScalerOptions options{.growth_interval = 3};
  const auto train = data(48, {1, 7});
  Net full_net;
  trainpp::Trainer full(full_net, args, trainpp::train_dataset = train, trainpp::precision = trainpp::FP16(options));
  full.train();
  const auto mid = trainpp::read_json_file(dir.path / "full" / "checkpoint-5" / "scaler.json");
  CHECK(mid.at("scale") == 65536.0);  // 2^16 -> 2^15 at step 2 -> 2^16 after steps 3..5
  CHECK(mid.at("_growth_tracker") == 0);
  const auto ten = trainpp::read_json_file(dir.path / "full" / "checkpoint-10" / "scaler.json");
  CHECK(ten.at("_growth_tracker") == 2);  // step 8 overflowed; 9 and 10 clean: resuming mid-interval

  auto resumed_args = args;
  resumed_args.output_dir = (dir.path / "resumed").string();
  fs::create_directories(dir.path / "resumed");
  fs::copy(dir.path / "full" / "checkpoint-10", dir.path / "resumed" / "checkpoint-10", fs::copy_options::recursive);
  resumed_args.resume_from_checkpoint = "true";
  Net resumed_net;
  trainpp::Trainer resumed(resumed_net, resumed_args, trainpp::train_dataset = train,
                           trainpp::precision = trainpp::FP16(options));
  resumed.train();
  CHECK(resumed.precision().scaler.get_scale() == full.precision().scaler.get_scale());
  CHECK(resumed.precision().scaler.growth_tracker() == full.precision().scaler.growth_tracker());
  CHECK(trainpp::read_file(dir.path / "resumed" / "checkpoint-12" / "scaler.json") ==
        trainpp::read_file(dir.path / "full" / "checkpoint-12" / "scaler.json"));
  for (std::size_t i = 0; i < full_net->parameters().size(); ++i)
    CHECK(torch::equal(full_net->parameters()[i], resumed_net->parameters()[i]));
}

TEST_CASE("bf16_full_eval: evaluation outside training runs the whole model in bfloat16, then restores it") {
  TempDir dir;
  auto args = args_in(dir.path);
  args.bf16_full_eval = true;
  Net net;
  auto seen = net->seen;
  trainpp::Trainer trainer(net, args, trainpp::train_dataset = data(16), trainpp::eval_dataset = data(8));
  std::vector<torch::Tensor> before;
  for (const auto& p : net->parameters()) before.push_back(p.detach().clone());
  const auto metrics = trainer.evaluate();
  CHECK(metrics.contains("eval_loss"));
  REQUIRE(seen->weight.size() == 1);
  CHECK(dt(seen->weight[0]) == dt(torch::kBFloat16));
  CHECK(dt(seen->activation[0]) == dt(torch::kBFloat16));
  for (std::size_t i = 0; i < before.size(); ++i) {
    CHECK(dt(net->parameters()[i].scalar_type()) == dt(torch::kFloat32));
    CHECK(torch::equal(net->parameters()[i], before[i]));
  }
  // Inside train(), evaluation keeps the float32 model (HF casts only outside training).
  seen->weight.clear();
  args.eval_strategy = trainpp::IntervalStrategy::steps;
  args.eval_steps = 2;
  args.max_steps = 2;
  trainpp::Trainer training(net, args, trainpp::train_dataset = data(16), trainpp::eval_dataset = data(8));
  training.train();
  for (const auto dtype : seen->weight) CHECK(dt(dtype) == dt(torch::kFloat32));
}

TEST_CASE("precision flags that contradict the slot, or the device, are errors that say what to do") {
  TempDir dir;
  auto message = [](const auto& make) {
    try {
      make();
    } catch (const trainpp::Error& e) {
      return std::string(e.what());
    }
    return std::string("<no error>");
  };
  auto args = args_in(dir.path);
  args.bf16 = true;
  CHECK(message([&] { trainpp::Trainer t(Net{}, args, trainpp::precision = trainpp::FP32{}); })
            .find("the precision slot is trainpp::FP32 but --bf16 was given") != std::string::npos);
  CHECK(message([&] { trainpp::Trainer t(Net{}, args, trainpp::precision = trainpp::FP16{}); })
            .find("the precision slot is trainpp::FP16 but --bf16 was given") != std::string::npos);
  args.fp16 = true;
  CHECK(message([&] { trainpp::Trainer t(Net{}, args); }).find("At most one of fp16 and bf16") != std::string::npos);
  args.bf16 = args.fp16 = false;
  args.tf32 = true;
  if (!torch::cuda::is_available())  // on a GPU machine --tf32 is simply honoured
    CHECK(message([&] { trainpp::Trainer t(Net{}, args); }).find("--tf32 requires a CUDA GPU") != std::string::npos);
  args.tf32 = false;  // turning it off where it does not exist is fine
  CHECK(message([&] { trainpp::Trainer t(Net{}, args); }) == "<no error>");
}

}  // namespace loop_precision_test
