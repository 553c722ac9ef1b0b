// detect_launch_environment: what torchrun (and trainpp-launch), srun and mpirun leave in the
// environment, read into rank / world size / rendezvous; every malformed value a clear error.

#include <trainpp/distributed/launch_environment.hpp>

#include <doctest/doctest.h>

#include <map>
#include <string>

namespace launch_environment_test {

using Vars = std::map<std::string, std::string>;

trainpp::LaunchEnvironment detect(const Vars& vars) {
  return trainpp::detect_launch_environment([&](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  });
}

void check_refused(const Vars& vars, const std::string& message) {
  CAPTURE(message);
  CHECK_THROWS_WITH_AS((void)detect(vars), doctest::Contains(message.c_str()), trainpp::Error);
}

}  // namespace launch_environment_test

using launch_environment_test::check_refused;
using launch_environment_test::detect;

TEST_CASE("a plain process is rank 0 of 1") {
  const auto e = detect({});
  CHECK(e.launcher == trainpp::Launcher::none);
  CHECK(e.rank == 0);
  CHECK(e.world_size == 1);
  CHECK_FALSE(e.is_distributed());
  // A Slurm batch script's shell (no srun step) is not rank 0 of a job whose other ranks never come.
  CHECK(detect({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}, {"SLURM_LOCALID", "0"}}).launcher == trainpp::Launcher::none);
}

TEST_CASE("torchrun's environment") {
  const auto e = detect({{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "4"},
                         {"GROUP_RANK", "1"}, {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "29400"},
                         {"TORCHELASTIC_USE_AGENT_STORE", "True"}});
  CHECK(e.launcher == trainpp::Launcher::torchrun);
  CHECK(e.rank == 5);
  CHECK(e.world_size == 8);
  CHECK(e.local_rank == 1);
  CHECK(e.local_world_size == 4);
  CHECK(e.node_rank == 1);
  CHECK(e.master_addr == "node7");
  CHECK(e.master_port == 29400);
  CHECK(e.use_agent_store);
  CHECK(e.is_distributed());
  // Without the agent store flag (or with anything but "True", as torch reads it) rank 0 hosts the store.
  CHECK_FALSE(detect({{"RANK", "0"}, {"WORLD_SIZE", "1"}, {"TORCHELASTIC_USE_AGENT_STORE", "true"}}).use_agent_store);
  // One process needs no rendezvous address; local values default to the global ones (one node).
  const auto single = detect({{"RANK", "0"}, {"WORLD_SIZE", "1"}});
  CHECK(single.local_world_size == 1);
  CHECK(single.master_port == 29500);
}

TEST_CASE("srun's environment") {
  const auto e = detect({{"SLURM_PROCID", "6"}, {"SLURM_STEP_NUM_TASKS", "7"}, {"SLURM_NTASKS", "7"},
                         {"SLURM_LOCALID", "0"}, {"SLURM_NODEID", "2"}, {"SLURM_STEP_TASKS_PER_NODE", "3(x2),1"},
                         {"SLURM_STEP_NODELIST", "gpu[07-09,12],cpu01"}, {"MASTER_PORT", "12345"}});
  CHECK(e.launcher == trainpp::Launcher::slurm);
  CHECK(e.rank == 6);
  CHECK(e.world_size == 7);
  CHECK(e.local_rank == 0);
  CHECK(e.local_world_size == 1);  // node 2 is the "1" after 3(x2)
  CHECK(e.node_rank == 2);
  CHECK(e.master_addr == "gpu07");
  CHECK(e.master_port == 12345);
  // MASTER_ADDR, when exported, wins over the node list.
  CHECK(detect({{"SLURM_PROCID", "0"}, {"SLURM_STEP_NUM_TASKS", "2"}, {"SLURM_STEP_NODELIST", "a,b"},
                {"MASTER_ADDR", "10.0.0.1"}}).master_addr == "10.0.0.1");
  CHECK(trainpp::detail::first_slurm_host("node3,node4") == "node3");
  CHECK(trainpp::detail::first_slurm_host("single") == "single");
  CHECK(trainpp::detail::first_slurm_host("n[5]") == "n5");
}

TEST_CASE("mpirun's environment") {
  const auto e = detect({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"},
                         {"OMPI_COMM_WORLD_LOCAL_RANK", "3"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}});
  CHECK(e.launcher == trainpp::Launcher::mpi);
  CHECK(e.rank == 3);
  CHECK(e.world_size == 4);
  CHECK(e.local_rank == 3);
  CHECK(e.master_addr == "127.0.0.1");  // one node: the loopback address serves
  CHECK(e.node_rank == 0);
  // OMPI_COMM_WORLD_NODE_RANK counts the processes of every job on a node (mpirun gives 1 to the second
  // process of one node): the node is the rank over the processes per node instead.
  const auto second = detect({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                              {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}, {"OMPI_COMM_WORLD_NODE_RANK", "1"}});
  CHECK(second.node_rank == 0);
  const auto other_node = detect({{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "8"}, {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                  {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}, {"MASTER_ADDR", "node0"}});
  CHECK(other_node.node_rank == 1);
  check_refused({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "8"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}},
                "MASTER_ADDR is not set: pass the first node's address, e.g. mpirun -x MASTER_ADDR=");
}

TEST_CASE("a bad launch environment is a clear error naming the variable") {
  check_refused({{"WORLD_SIZE", "0"}, {"RANK", "0"}}, "the world size must be at least 1, got 0");
  check_refused({{"WORLD_SIZE", "4"}, {"RANK", "4"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}},
                "the rank (4) must be less than the world size (4)");
  check_refused({{"WORLD_SIZE", "4"}}, "RANK is not set");
  check_refused({{"RANK", "1"}}, "WORLD_SIZE is not set");
  check_refused({{"WORLD_SIZE", "four"}, {"RANK", "0"}}, "WORLD_SIZE must be a non-negative integer, got 'four'");
  check_refused({{"WORLD_SIZE", "2"}, {"RANK", "-1"}}, "RANK must be a non-negative integer, got '-1'");
  check_refused({{"WORLD_SIZE", "2"}, {"RANK", " 1"}}, "RANK must be a non-negative integer, got ' 1'");
  check_refused({{"WORLD_SIZE", "99999999999"}, {"RANK", "0"}}, "WORLD_SIZE must be a non-negative integer");
  check_refused({{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"MASTER_PORT", "29500"}}, "MASTER_ADDR is not set");
  check_refused({{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"MASTER_ADDR", "h"}}, "MASTER_PORT is not set");
  check_refused({{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"MASTER_ADDR", ""}, {"MASTER_PORT", "1"}}, "MASTER_ADDR is empty");
  check_refused({{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}},
                "MASTER_PORT must be a port in 1..65535, got 70000");
  check_refused({{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "0"}}, "got 0");
  check_refused({{"WORLD_SIZE", "4"}, {"RANK", "1"}, {"LOCAL_RANK", "2"}, {"LOCAL_WORLD_SIZE", "2"},
                 {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}}, "the local rank (2) must be less than the local world size (2)");
  check_refused({{"WORLD_SIZE", "2"}, {"RANK", "1"}, {"LOCAL_WORLD_SIZE", "3"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}},
                "the local world size (3) must be between 1 and the world size (2)");
  check_refused({{"SLURM_PROCID", "0"}, {"SLURM_STEP_NUM_TASKS", "2"}, {"SLURM_STEP_TASKS_PER_NODE", "2(x"}},
                "cannot read Slurm's tasks per node");
  check_refused({{"SLURM_PROCID", "0"}, {"SLURM_STEP_NUM_TASKS", "2"}, {"SLURM_NODEID", "3"},
                 {"SLURM_STEP_TASKS_PER_NODE", "1(x2)"}}, "lists no node 3");
  check_refused({{"SLURM_PROCID", "0"}, {"SLURM_STEP_NUM_TASKS", "2"}, {"SLURM_STEP_NODELIST", "gpu[07-09"}},
                "cannot read the Slurm host list 'gpu[07-09'");
}
