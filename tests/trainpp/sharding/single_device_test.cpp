// SingleDevice: accepted for one process, launched or not; refused, naming the launcher and the rank,
// when a launcher started several; clipping over the whole gradient.

#include <trainpp/sharding/single_device.hpp>
#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

namespace single_device_test {

/// Sets environment variables for one scope and puts the previous values back after it.
class ScopedEnvironment {
 public:
  explicit ScopedEnvironment(const std::map<std::string, std::string>& values) {
    for (const auto& [name, value] : values) {
      const char* before = std::getenv(name.c_str());
      saved_[name] = before ? std::optional<std::string>(before) : std::nullopt;
      ::setenv(name.c_str(), value.c_str(), 1);
    }
  }
  ScopedEnvironment(const ScopedEnvironment&) = delete;
  ScopedEnvironment& operator=(const ScopedEnvironment&) = delete;
  ~ScopedEnvironment() {
    for (const auto& [name, value] : saved_) {
      if (value) ::setenv(name.c_str(), value->c_str(), 1);
      else ::unsetenv(name.c_str());
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

struct NetImpl : torch::nn::Module {
  torch::nn::Linear fc{nullptr};
  NetImpl() { fc = register_module("fc", torch::nn::Linear(4, 3)); }
  trainpp::ModelOutput forward(const trainpp::Batch& batch) {
    trainpp::ModelOutput o{.logits = fc(batch.at("x"))};
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
  auto dir = std::filesystem::temp_directory_path() / fmt::format("trainpp_single_device_{}_{}", name, ::getpid());
  std::filesystem::remove_all(dir);
  return dir.string();
}

TEST_CASE("SingleDevice named in the slot under a launcher of several processes is refused at construction") {
  struct Environment {
    Environment() {
      ::setenv("RANK", "1", 1);
      ::setenv("WORLD_SIZE", "2", 1);
      ::setenv("LOCAL_RANK", "1", 1);
      ::setenv("LOCAL_WORLD_SIZE", "2", 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", "29500", 1);
    }
    ~Environment() {
      for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"})
        ::unsetenv(name);
    }
  } environment;
  Net net;
  CHECK_THROWS_WITH_AS(trainpp::Trainer(net, args(temp_dir("single_launched")), trainpp::sharding = trainpp::SingleDevice{},
                                        trainpp::train_dataset = data()),
                       doctest::Contains("the sharding slot holds trainpp::SingleDevice, but the launch environment "
                                         "(torchrun) makes this process rank 1 of 2"),
                       trainpp::Error);
}

TEST_CASE("single device: one process configures whether a launcher started it or not") {
  const trainpp::SingleDevice single;
  const auto a = args(temp_dir("configure"));
  CHECK_NOTHROW(single.configure(a, torch::kCPU));
  {
    // torchrun --nproc_per_node 1: a launched job of one.
    const ScopedEnvironment launched({{"RANK", "0"}, {"WORLD_SIZE", "1"}});
    CHECK_NOTHROW(single.configure(a, torch::kCPU));
  }
  CHECK(single.rank() == 0);
  CHECK(single.world_size() == 1);
}

TEST_CASE("single device: a task of an srun step of several is refused, with the launcher and rank named") {
  const ScopedEnvironment srun({{"SLURM_STEP_NUM_TASKS", "3"}, {"SLURM_PROCID", "2"}, {"SLURM_LOCALID", "0"},
                                {"SLURM_NODEID", "2"}, {"SLURM_STEP_TASKS_PER_NODE", "1(x3)"}});
  CHECK_THROWS_WITH_AS(trainpp::SingleDevice{}.configure(args(temp_dir("srun")), torch::kCPU),
                       doctest::Contains("the launch environment (slurm) makes this process rank 2 of 3"),
                       trainpp::Error);
  // The message says what to do instead.
  CHECK_THROWS_WITH_AS(trainpp::SingleDevice{}.configure(args(temp_dir("srun")), torch::kCPU),
                       doctest::Contains("Leave the sharding slot out"), trainpp::Error);
}

TEST_CASE("single device: clip_grad_norm returns the whole gradient's norm and scales it down to max_norm") {
  auto a = torch::zeros({1}, torch::requires_grad());
  auto b = torch::zeros({1}, torch::requires_grad());
  a.mutable_grad() = torch::tensor({3.0f});
  b.mutable_grad() = torch::tensor({4.0f});
  const trainpp::SingleDevice single;
  const auto norm = single.clip_grad_norm({a, b}, 1.0);
  CHECK(norm.item<double>() == doctest::Approx(5.0));
  CHECK(a.grad().item<double>() == doctest::Approx(0.6).epsilon(1e-5));
  CHECK(b.grad().item<double>() == doctest::Approx(0.8).epsilon(1e-5));
  // Within the limit: reported, left as it is.
  const auto small = single.clip_grad_norm({a, b}, 10.0);
  CHECK(small.item<double>() == doctest::Approx(1.0).epsilon(1e-5));
  CHECK(a.grad().item<double>() == doctest::Approx(0.6).epsilon(1e-5));
}

}  // namespace single_device_test
