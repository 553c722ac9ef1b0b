// JoinedProcesses: when a process joins a group (plain, launched alone, --ddp_backend), and the
// collectives beside training — rank 0's values broadcast, sums, evaluation rows gathered back in the
// data set's order — with two ranks on two threads of this process meeting through Gloo.

#include <trainpp/sharding/joined_processes.hpp>

#include <doctest/doctest.h>

#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace joined_processes_test {

using namespace std::chrono_literals;

/// The policy's protected side, opened for the test.
struct Joined : trainpp::detail::JoinedProcesses {
  using JoinedProcesses::broadcast_all;
  using JoinedProcesses::join;
  using JoinedProcesses::joined;
  /// Stands in for join(): this rank of `env`, in `group`.
  void adopt(const trainpp::LaunchEnvironment& env, std::shared_ptr<trainpp::ProcessGroup> group) {
    environment_ = env;
    group_ = std::move(group);
  }
};

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

/// Runs `body(policy, rank)` for both ranks of a job of two, one per thread; rethrows the first failure.
void with_two_ranks(const std::function<void(Joined&, int)>& body) {
  const auto store = agent_store();
  std::exception_ptr failures[2];
  auto rank_main = [&](int rank) {
    try {
      trainpp::LaunchEnvironment env;
      env.launcher = trainpp::Launcher::torchrun;
      env.rank = env.local_rank = rank;
      env.world_size = env.local_world_size = 2;
      env.master_port = store->getPort();
      env.use_agent_store = true;
      Joined policy;
      policy.adopt(env, std::make_shared<trainpp::ProcessGroup>(trainpp::ProcessGroup::join(env, "gloo", 20s, torch::kCPU)));
      body(policy, rank);
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

TEST_CASE("joined processes: a plain process joins nothing and its collectives change nothing") {
  Joined policy;
  policy.join(trainpp::TrainingArguments{}, torch::kCPU);
  CHECK_FALSE(policy.joined());
  CHECK(policy.environment().launcher == trainpp::Launcher::none);
  CHECK(policy.rank() == 0);
  CHECK(policy.world_size() == 1);
  policy.barrier();
  auto t = torch::tensor({1.0, 2.0});
  policy.all_reduce_sum(t);
  CHECK(torch::equal(t, torch::tensor({1.0, 2.0})));
  // One process: its rows are the data set's rows, padding and all.
  const auto rows = torch::arange(5);
  CHECK(torch::equal(policy.gather_in_order(rows, 2, 5, -1), rows));
}

TEST_CASE("joined processes: a process launched alone joins a group of one only when --ddp_backend names one") {
  const auto store = agent_store();
  const ScopedEnvironment launched({{"RANK", "0"}, {"WORLD_SIZE", "1"}, {"MASTER_ADDR", "127.0.0.1"},
                                    {"MASTER_PORT", std::to_string(store->getPort())},
                                    {"TORCHELASTIC_USE_AGENT_STORE", "True"}});
  trainpp::TrainingArguments args;
  Joined unnamed;
  unnamed.join(args, torch::kCPU);
  CHECK_FALSE(unnamed.joined());
  CHECK(unnamed.environment().launcher == trainpp::Launcher::torchrun);

  args.ddp_backend = "gloo";
  args.ddp_timeout = 20;
  Joined named;
  named.join(args, torch::kCPU);
  REQUIRE(named.joined());
  CHECK(named.process_group().size() == 1);
  CHECK(named.process_group().backend_name() == "gloo");
  CHECK(named.world_size() == 1);
  named.barrier();  // a real collective, on a group of one
  std::vector<torch::Tensor> tensors{torch::tensor({1.0, 2.0})};
  named.broadcast_all(tensors);
  CHECK(torch::equal(tensors[0], torch::tensor({1.0, 2.0})));
}

TEST_CASE("joined processes: broadcast_all gives every rank rank 0's tensors, whatever their dtypes and shapes") {
  std::vector<std::vector<torch::Tensor>> results(2);
  with_two_ranks([&](Joined& policy, int rank) {
    const double r = rank;
    std::vector<torch::Tensor> tensors{torch::full({2, 3}, r + 1), torch::full({4}, rank * 10, torch::kLong),
                                       torch::arange(5, torch::kFloat) + r * 100};
    policy.broadcast_all(tensors);
    results[rank] = tensors;
  });
  for (int rank = 0; rank < 2; ++rank) {
    CAPTURE(rank);
    REQUIRE(results[rank].size() == 3);
    CHECK(torch::equal(results[rank][0], torch::full({2, 3}, 1.0)));
    CHECK(torch::equal(results[rank][1], torch::zeros({4}, torch::kLong)));
    CHECK(torch::equal(results[rank][2], torch::arange(5, torch::kFloat)));
  }
}

TEST_CASE("joined processes: sums cover every rank once a job has several") {
  std::vector<torch::Tensor> sums(2);
  with_two_ranks([&](Joined& policy, int rank) {
    auto t = torch::tensor({1.0, static_cast<double>(rank)});
    policy.all_reduce_sum(t);
    policy.barrier();
    sums[rank] = t;
  });
  for (const auto& t : sums) CHECK(torch::equal(t, torch::tensor({2.0, 1.0})));
}

TEST_CASE("joined processes: gather_in_order interleaves the ranks' batches back into the data set's order") {
  // Batches of 2 over 7 rows: batch b is rank b % 2's. Rank 0 holds rows 0 1 4 5, rank 1 rows 2 3 6.
  std::vector<torch::Tensor> flat(2), padded(2), trimmed(2);
  with_two_ranks([&](Joined& policy, int rank) {
    const auto mine = rank == 0 ? torch::tensor({0, 1, 4, 5}) : torch::tensor({2, 3, 6});
    flat[rank] = policy.gather_in_order(mine.to(torch::kFloat), 2, 7, -1);
    // Rows of different lengths: padded to the longest with `pad`.
    auto rows = torch::full({mine.size(0), rank == 0 ? 2 : 4}, 7.0);
    rows.select(1, 0).copy_(mine);
    padded[rank] = policy.gather_in_order(rows, 2, 7, -100);
    // An even split that repeated rows 0 1 to fill rank 1's last batch: the data set has 6 rows.
    const auto repeated = rank == 0 ? torch::tensor({0, 1, 4, 5}) : torch::tensor({2, 3, 0, 1});
    trimmed[rank] = policy.gather_in_order(repeated.to(torch::kLong), 2, 6, -1);
  });
  for (int rank = 0; rank < 2; ++rank) {
    CAPTURE(rank);
    CHECK(torch::equal(flat[rank], torch::arange(7, torch::kFloat)));
    REQUIRE(padded[rank].sizes() == torch::IntArrayRef{7, 4});
    CHECK(torch::equal(padded[rank].select(1, 0), torch::arange(7, torch::kFloat)));
    // Rank 0's rows (0 1 4 5) had two columns: the other two are padding.
    CHECK(torch::equal(padded[rank][4], torch::tensor({4.0, 7.0, -100.0, -100.0})));
    CHECK(torch::equal(padded[rank][2], torch::tensor({2.0, 7.0, 7.0, 7.0})));
    CHECK(torch::equal(trimmed[rank], torch::arange(6)));
  }
}

}  // namespace joined_processes_test
