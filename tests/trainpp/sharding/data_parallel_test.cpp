// DataParallel against gradients computed by hand: no group without a launcher, a Gloo group of one
// for a process launched alone with --ddp_backend (every bucket's allreduce still runs), and two ranks
// on two threads of this process, whose averaged gradients are checked against their mean.

#include <trainpp/sharding/data_parallel.hpp>

#include <doctest/doctest.h>

#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace data_parallel_test {

using namespace std::chrono_literals;

/// A float Linear that the loss uses, one it never uses, and a double parameter: two dtypes, so two
/// buckets, and a parameter that backward leaves without a gradient.
struct ModelImpl : torch::nn::Module {
  torch::nn::Linear used{nullptr}, unused{nullptr};
  torch::Tensor scale;
  ModelImpl() {
    used = register_module("used", torch::nn::Linear(3, 2));
    unused = register_module("unused", torch::nn::Linear(3, 2));
    scale = register_parameter("scale", torch::tensor({0.5, -1.5}, torch::kDouble));
  }
  torch::Tensor loss(const torch::Tensor& x) {
    auto h = used(x);
    return (h * h).sum() + (scale * scale * x.sum().to(torch::kDouble)).sum().to(torch::kFloat);
  }
};
TORCH_MODULE(Model);

/// A copy with the same values, for gradients computed without the policy.
Model copy_of(Model& model) {
  Model copy;
  torch::NoGradGuard no_grad;
  auto from = model->parameters();
  auto to = copy->parameters();
  for (std::size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
  return copy;
}

std::vector<torch::Tensor> grads_of(Model& model) {
  std::vector<torch::Tensor> out;
  for (const auto& p : model->parameters()) out.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
  return out;
}

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

/// A rendezvous store on a port the system picks, hosted here as torchrun's agent hosts it.
c10::intrusive_ptr<c10d::TCPStore> agent_store() {
  c10d::TCPStoreOptions options;
  options.port = 0;
  options.isServer = true;
  options.waitWorkers = false;
  options.timeout = 20s;
  return c10::make_intrusive<c10d::TCPStore>("127.0.0.1", options);
}

/// The policy with the job handed in rather than read from this process's environment, so that two
/// threads can be two ranks.
struct Rank : trainpp::DataParallel {
  void adopt(const trainpp::LaunchEnvironment& env, std::shared_ptr<trainpp::ProcessGroup> group) {
    environment_ = env;
    group_ = std::move(group);
  }
};

TEST_CASE("data parallel: without a launcher it joins nothing and leaves gradients as backward made them") {
  trainpp::DataParallel policy;
  policy.configure(trainpp::TrainingArguments{}, torch::kCPU);
  CHECK(policy.rank() == 0);
  CHECK(policy.world_size() == 1);
  Model model;
  policy.prepare(*model, torch::kCPU);
  policy.set_gradient_sync(true);
  policy.before_forward(*model);
  model->loss(torch::ones({4, 3})).backward();
  const auto before = grads_of(model);
  policy.after_backward(*model, true);
  const auto after = grads_of(model);
  for (std::size_t i = 0; i < before.size(); ++i) {
    CAPTURE(i);
    REQUIRE(before[i].defined() == after[i].defined());
    if (before[i].defined()) CHECK(torch::equal(before[i], after[i]));
  }
  CHECK_FALSE(model->unused->weight.grad().defined());  // no find_unused_parameters without a group
}

TEST_CASE("data parallel: a process launched alone with --ddp_backend reduces through a group of one") {
  const auto store = agent_store();
  const ScopedEnvironment launched({{"RANK", "0"}, {"WORLD_SIZE", "1"}, {"MASTER_ADDR", "127.0.0.1"},
                                    {"MASTER_PORT", std::to_string(store->getPort())},
                                    {"TORCHELASTIC_USE_AGENT_STORE", "True"}});
  trainpp::TrainingArguments args;
  args.ddp_backend = "gloo";
  args.ddp_timeout = 20;
  trainpp::DataParallel policy;
  policy.configure(args, torch::kCPU);
  CHECK(policy.process_group().size() == 1);
  Model model;
  Model reference = copy_of(model);
  policy.prepare(*model, torch::kCPU);

  // A window of two micro-batches: no collective on the first, the sum of both after the second.
  const auto x1 = torch::full({2, 3}, 0.5), x2 = torch::full({2, 3}, -2.0);
  policy.set_gradient_sync(false);
  model->loss(x1).backward();
  policy.after_backward(*model, false);
  CHECK_FALSE(model->unused->weight.grad().defined());  // nothing reduced yet
  policy.set_gradient_sync(true);
  model->loss(x2).backward();
  policy.after_backward(*model, true);
  reference->loss(x1).backward();
  reference->loss(x2).backward();
  CHECK(torch::allclose(model->used->weight.grad(), reference->used->weight.grad()));
  CHECK(torch::allclose(model->used->bias.grad(), reference->used->bias.grad()));
  CHECK(torch::allclose(model->scale.grad(), reference->scale.grad()));
  // find_unused_parameters: a parameter backward never reached takes part with zeros.
  REQUIRE(model->unused->weight.grad().defined());
  CHECK(model->unused->weight.grad().abs().sum().item<float>() == 0);

  // The next window reuses the buckets: its gradients are its own sums, not stale ones.
  for (auto& p : model->parameters()) p.mutable_grad().zero_();
  for (auto& p : reference->parameters())
    if (p.grad().defined()) p.mutable_grad().zero_();
  policy.set_gradient_sync(true);
  model->loss(x1).backward();
  policy.after_backward(*model, true);
  reference->loss(x1).backward();
  CHECK(torch::allclose(model->used->weight.grad(), reference->used->weight.grad()));
  CHECK(torch::allclose(model->scale.grad(), reference->scale.grad()));
}

TEST_CASE("data parallel: two ranks start from rank 0's weights and end with the mean of their gradients") {
  const auto store = agent_store();
  torch::manual_seed(11);
  Model models[2] = {Model(), Model()};  // different weights until prepare()
  const auto input = [](int rank) { return torch::full({2, 3}, rank == 0 ? 1.0 : -3.0); };
  std::exception_ptr failures[2];
  auto rank_main = [&](int rank) {
    try {
      trainpp::LaunchEnvironment env;
      env.launcher = trainpp::Launcher::torchrun;
      env.rank = env.local_rank = rank;
      env.world_size = env.local_world_size = 2;
      env.master_port = store->getPort();
      env.use_agent_store = true;
      Rank policy;
      policy.adopt(env, std::make_shared<trainpp::ProcessGroup>(trainpp::ProcessGroup::join(env, "gloo", 20s, torch::kCPU)));
      policy.prepare(*models[rank], torch::kCPU);
      policy.set_gradient_sync(true);
      models[rank]->loss(input(rank)).backward();
      policy.after_backward(*models[rank], true);
    } catch (...) {
      failures[rank] = std::current_exception();
    }
  };
  Model rank0_before = copy_of(models[0]);
  REQUIRE_FALSE(torch::equal(models[0]->used->weight, models[1]->used->weight));
  std::thread other(rank_main, 1);
  rank_main(0);
  other.join();
  for (auto& failure : failures)
    if (failure) std::rethrow_exception(failure);

  Model by_hand[2] = {copy_of(rank0_before), copy_of(rank0_before)};
  for (int rank = 0; rank < 2; ++rank) by_hand[rank]->loss(input(rank)).backward();
  for (int rank = 0; rank < 2; ++rank) {
    CAPTURE(rank);
    CHECK(torch::equal(models[rank]->used->weight, rank0_before->used->weight));
    CHECK(torch::equal(models[rank]->scale, rank0_before->scale));
    const auto mean = (by_hand[0]->used->weight.grad() + by_hand[1]->used->weight.grad()) / 2;
    CHECK(torch::allclose(models[rank]->used->weight.grad(), mean));
    const auto scale_mean = (by_hand[0]->scale.grad() + by_hand[1]->scale.grad()) / 2;
    CHECK(torch::allclose(models[rank]->scale.grad(), scale_mean));
    CHECK(models[rank]->unused->weight.grad().abs().sum().item<float>() == 0);
  }
}

}  // namespace data_parallel_test
