// ProcessGroup against c10d's Gloo run in this process: a group of one (rank 0 hosting its own
// TCPStore), and two ranks on two threads meeting at a store the test hosts, as torchrun's agent does.

#include <trainpp/distributed/process_group.hpp>

#include <doctest/doctest.h>

#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace process_group_test {

using namespace std::chrono_literals;

/// Rank 0 of 1 on a port the system picks, so that parallel test runs cannot collide.
trainpp::ProcessGroup group_of_one() {
  trainpp::LaunchEnvironment env;
  env.master_port = 0;
  return trainpp::ProcessGroup::join(env, "gloo", 20s, torch::kCPU);
}

/// Runs `body(group, rank)` on two threads, each rank of a group of two joined through a store hosted
/// here; rethrows the first failure once both are done.
void with_two_ranks(const std::function<void(trainpp::ProcessGroup&, int)>& body) {
  c10d::TCPStoreOptions options;
  options.port = 0;
  options.isServer = true;
  options.waitWorkers = false;
  options.timeout = 20s;
  auto store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", options);
  std::exception_ptr failures[2];
  auto rank_main = [&](int rank) {
    try {
      trainpp::LaunchEnvironment env;
      env.launcher = trainpp::Launcher::torchrun;
      env.rank = rank;
      env.world_size = 2;
      env.local_rank = rank;
      env.local_world_size = 2;
      env.master_port = store->getPort();
      env.use_agent_store = true;
      auto group = trainpp::ProcessGroup::join(env, "gloo", 20s, torch::kCPU);
      body(group, rank);
    } catch (...) {
      failures[rank] = std::current_exception();
    }
  };
  std::thread other(rank_main, 1);
  rank_main(0);
  other.join();
  for (auto& failure : failures)
    if (failure) std::rethrow_exception(failure);
}

TEST_CASE("process group: a group of one runs every collective on the one process's values") {
  auto group = group_of_one();
  CHECK(group.valid());
  CHECK(group.rank() == 0);
  CHECK(group.size() == 1);
  CHECK(group.backend_name() == "gloo");
  auto t = torch::tensor({1.0, 2.0, 3.0});
  group.all_reduce_sum(t);
  CHECK(torch::equal(t, torch::tensor({1.0, 2.0, 3.0})));
  std::vector<torch::Tensor> several{torch::tensor({4.0, 5.0})};
  group.broadcast(several);
  CHECK(torch::equal(several[0], torch::tensor({4.0, 5.0})));
  const auto gathered = group.all_gather(torch::tensor({7, 8}));
  REQUIRE(gathered.size() == 1);
  CHECK(torch::equal(gathered[0], torch::tensor({7, 8})));
  auto output = torch::zeros({3});
  group.wait(group.reduce_scatter_sum_async(output, torch::tensor({1.0, 2.0, 3.0})), "reduce-scatter");
  CHECK(torch::equal(output, torch::tensor({1.0, 2.0, 3.0})));
  group.barrier();
}

TEST_CASE("process group: reduce-scatter and all-gather refuse buffers that do not split into the group's parts") {
  auto group = group_of_one();
  CHECK_THROWS_WITH_AS((void)group.reduce_scatter_sum_async(torch::zeros({3}), torch::zeros({4})),
                       doctest::Contains("reduce-scatter: 4 elements do not split into 1 parts of 3"), trainpp::Error);
  CHECK_THROWS_WITH_AS((void)group.all_gather_into_async(torch::zeros({5}), torch::zeros({4})),
                       doctest::Contains("all-gather: 5 elements are not 1 parts of 4"), trainpp::Error);
}

TEST_CASE("process group: an unjoined group refuses collectives and subgroups") {
  trainpp::ProcessGroup none;
  CHECK_FALSE(none.valid());
  auto t = torch::ones({2});
  CHECK_THROWS_WITH_AS(none.all_reduce_sum(t), doctest::Contains("the process group is not joined"), trainpp::Error);
  CHECK_THROWS_WITH_AS((void)none.subgroup("node", {0}), doctest::Contains("the process group is not joined"),
                       trainpp::Error);
}

TEST_CASE("process group: a subgroup takes its rank from its position in the list, and refuses non-members") {
  auto group = group_of_one();
  CHECK_THROWS_WITH_AS((void)group.subgroup("replicas", {1, 2}),
                       doctest::Contains("rank 0 is not a member of the process group replicas"), trainpp::Error);
  auto solo = group.subgroup("solo", {0});
  CHECK(solo.valid());
  CHECK(solo.rank() == 0);
  CHECK(solo.size() == 1);
  CHECK(solo.backend_name() == "gloo");
  auto t = torch::tensor({2.5});
  solo.all_reduce_sum(t);
  CHECK(t.item<double>() == 2.5);
}

TEST_CASE("process group: the backend is gloo on CPUs unless named, and an unknown one is refused") {
  trainpp::LaunchEnvironment env;
  env.master_port = 0;
  CHECK(trainpp::ProcessGroup::join(env, "", 20s, torch::kCPU).backend_name() == "gloo");
  CHECK_THROWS_WITH_AS((void)trainpp::ProcessGroup::join(env, "mpi", 20s, torch::kCPU),
                       doctest::Contains("ddp_backend must be nccl or gloo, got 'mpi'"), trainpp::Error);
#ifndef TRAINPP_HAS_NCCL
  CHECK_THROWS_WITH_AS((void)trainpp::ProcessGroup::join(env, "nccl", 20s, torch::kCPU),
                       doctest::Contains("trainpp was compiled without NCCL"), trainpp::Error);
#endif
}

TEST_CASE("process group: a rendezvous nobody hosts is an error naming the address, not a hang") {
  int port = 0;
  {
    // A port that was free a moment ago, and is again once this store is gone.
    c10d::TCPStoreOptions options;
    options.port = 0;
    options.isServer = true;
    options.waitWorkers = false;
    port = c10d::TCPStore("127.0.0.1", options).getPort();
  }
  trainpp::LaunchEnvironment env;
  env.launcher = trainpp::Launcher::torchrun;
  env.rank = 1;
  env.world_size = 2;
  env.local_rank = 1;
  env.local_world_size = 2;
  env.master_port = port;
  CHECK_THROWS_WITH_AS((void)trainpp::ProcessGroup::join(env, "gloo", 300ms, torch::kCPU),
                       doctest::Contains(fmt::format("rank 1: cannot reach the rendezvous at 127.0.0.1:{}", port).c_str()),
                       trainpp::Error);
}

TEST_CASE("process group: two ranks sum, scatter and gather in rank order") {
  std::vector<torch::Tensor> summed(2), scattered(2), gathered_into(2), broadcast(2);
  std::vector<std::vector<torch::Tensor>> gathered(2);
  with_two_ranks([&](trainpp::ProcessGroup& group, int rank) {
    const double r = rank;
    auto t = torch::tensor({1.0 + r, 10.0 * (r + 1)});
    group.all_reduce_sum(t);
    summed[rank] = t;
    // Rank r's input is [r, r, r+10, r+10]: part r of the sum is what both put at 2r, 2r+1.
    auto out = torch::zeros({2});
    group.wait(group.reduce_scatter_sum_async(out, torch::tensor({r, r, r + 10, r + 10})), "reduce-scatter");
    scattered[rank] = out;
    // In place: each rank's own part of the output is its input.
    auto full = torch::zeros({4});
    full.narrow(0, 2 * rank, 2).fill_(r + 1);
    group.wait(group.all_gather_into_async(full, full.narrow(0, 2 * rank, 2)), "allgather");
    gathered_into[rank] = full;
    gathered[rank] = group.all_gather(torch::tensor({rank * 100}));
    std::vector<torch::Tensor> b{torch::tensor({r + 5})};
    group.broadcast(b, /*root=*/1);
    broadcast[rank] = b[0];
    group.barrier();
  });
  for (int rank = 0; rank < 2; ++rank) {
    CAPTURE(rank);
    CHECK(torch::equal(summed[rank], torch::tensor({3.0, 30.0})));
    CHECK(torch::equal(scattered[rank], torch::full({2}, rank == 0 ? 1.0 : 21.0)));
    CHECK(torch::equal(gathered_into[rank], torch::tensor({1.0, 1.0, 2.0, 2.0})));
    REQUIRE(gathered[rank].size() == 2);
    CHECK(gathered[rank][0].item<int64_t>() == 0);
    CHECK(gathered[rank][1].item<int64_t>() == 100);
    CHECK(broadcast[rank].item<double>() == 6.0);
  }
}

}  // namespace process_group_test
