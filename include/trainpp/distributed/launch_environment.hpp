#pragma once
// Which process this is among how many, and where they meet: read from the environment that the
// launchers people use leave behind (torchrun and trainpp-launch, Slurm's srun, Open MPI's mpirun).

#include <trainpp/detail/config.hpp>
#include <trainpp/detail/error.hpp>

#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#if TRAINPP_DEFINITIONS
#include <charconv>
#include <system_error>
#endif

namespace trainpp {

/// The launcher a process was started by, as far as its environment tells.
enum class Launcher {
  none,      ///< a plain process: rank 0 of 1
  torchrun,  ///< RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE / MASTER_*: torchrun, trainpp-launch
  slurm,     ///< SLURM_PROCID / SLURM_STEP_NUM_TASKS / SLURM_LOCALID ...: a task of an srun step
  mpi,       ///< OMPI_COMM_WORLD_*: Open MPI's mpirun
};

[[nodiscard]] std::string_view to_string(Launcher l);

/// This process's place in the job and the rendezvous address (c10d's TCPStore on master_addr:port,
/// hosted by rank 0 unless the launcher's agent hosts it: use_agent_store).
struct LaunchEnvironment {
  Launcher launcher = Launcher::none;
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  int node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  /// torchrun's TORCHELASTIC_USE_AGENT_STORE=True: the agent runs the store, so every rank is a client.
  bool use_agent_store = false;

  [[nodiscard]] bool is_distributed() const { return world_size > 1; }
};

/// Reads one environment variable: nullopt when unset. Tests pass their own.
using EnvironmentReader = std::function<std::optional<std::string>(const std::string&)>;

[[nodiscard]] inline std::optional<std::string> process_environment(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

namespace detail {

/// A whole non-negative decimal integer that fits an int, else an Error naming the variable.
int parse_launch_int(const std::string& name, const std::string& text);

/// The first host of a Slurm host list: "gpu[07-09,12],cpu01" → "gpu07", "node3,node4" → "node3".
std::string first_slurm_host(const std::string& list);

/// Tasks on node `node` from Slurm's per-node counts: "4(x2),3" → node 0: 4, node 1: 4, node 2: 3.
int slurm_tasks_on_node(const std::string& counts, int node);

}  // namespace detail

/// Reads the launcher's environment, first match wins:
///   1. WORLD_SIZE or RANK set: torchrun's contract (also trainpp-launch's, and what users export by
///      hand for mpirun or srun wrappers). RANK and WORLD_SIZE are then both required; LOCAL_RANK and
///      LOCAL_WORLD_SIZE default to RANK and WORLD_SIZE (one node); MASTER_ADDR and MASTER_PORT are
///      required with more than one process, as c10d's env:// rendezvous requires them.
///   2. SLURM_STEP_NUM_TASKS and SLURM_PROCID: a task of an srun step. (A batch script's own shell has
///      SLURM_PROCID=0 and SLURM_NTASKS but no step: taken as a plain process, not rank 0 of a job
///      whose other ranks would never come.) MASTER_ADDR defaults to the step's first node.
///   3. OMPI_COMM_WORLD_SIZE: Open MPI's mpirun. MASTER_ADDR is required when the job spans nodes
///      (`mpirun -x MASTER_ADDR=<host> ...`).
///   4. otherwise a plain process: rank 0 of 1.
/// Every value is checked: a malformed number, WORLD_SIZE 0, RANK ≥ WORLD_SIZE, a port outside
/// 1..65535 are trainpp::Errors naming the variable.
[[nodiscard]] LaunchEnvironment detect_launch_environment(const EnvironmentReader& env = process_environment);

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE std::string_view to_string(Launcher l) {
  switch (l) {
    case Launcher::none: return "none";
    case Launcher::torchrun: return "torchrun";
    case Launcher::slurm: return "slurm";
    case Launcher::mpi: return "mpi";
  }
  return "?";
}

namespace detail {

TRAINPP_INLINE int parse_launch_int(const std::string& name, const std::string& text) {
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value < 0)
    throw error("the environment variable {} must be a non-negative integer, got '{}'", name, text);
  return value;
}

TRAINPP_INLINE std::string first_slurm_host(const std::string& list) {
  const auto open = list.find('[');
  const auto comma = list.find(',');
  if (open == std::string::npos || (comma != std::string::npos && comma < open))
    return list.substr(0, comma);
  const auto close = list.find(']', open);
  if (close == std::string::npos) throw error("cannot read the Slurm host list '{}'", list);
  const std::string first_range = list.substr(open + 1, list.find_first_of(",]", open + 1) - open - 1);
  return list.substr(0, open) + first_range.substr(0, first_range.find('-'));
}

TRAINPP_INLINE int slurm_tasks_on_node(const std::string& counts, int node) {
  int index = 0;
  std::size_t pos = 0;
  while (pos <= counts.size()) {
    auto end = counts.find(',', pos);
    if (end == std::string::npos) end = counts.size();
    const std::string item = counts.substr(pos, end - pos);
    const auto paren = item.find("(x");
    const int tasks = parse_launch_int("SLURM_STEP_TASKS_PER_NODE", item.substr(0, paren));
    int repeat = 1;
    if (paren != std::string::npos) {
      if (item.back() != ')') throw error("cannot read Slurm's tasks per node '{}'", counts);
      repeat = parse_launch_int("SLURM_STEP_TASKS_PER_NODE", item.substr(paren + 2, item.size() - paren - 3));
    }
    if (node < index + repeat) return tasks;
    index += repeat;
    pos = end + 1;
  }
  throw error("Slurm's tasks per node '{}' lists no node {}", counts, node);
}

}  // namespace detail

TRAINPP_INLINE LaunchEnvironment detect_launch_environment(const EnvironmentReader& env) {
  auto int_var = [&](const std::string& name) -> std::optional<int> {
    const auto text = env(name);
    if (!text) return std::nullopt;
    return detail::parse_launch_int(name, *text);
  };
  auto required = [&](const std::string& name, std::string_view why) {
    const auto value = int_var(name);
    if (!value) throw error("the environment variable {} is not set ({})", name, why);
    return *value;
  };

  LaunchEnvironment e;
  if (env("WORLD_SIZE") || env("RANK")) {
    e.launcher = Launcher::torchrun;
    e.world_size = required("WORLD_SIZE", "RANK is set: a launcher sets both");
    e.rank = required("RANK", "WORLD_SIZE is set: a launcher sets both");
    e.local_rank = int_var("LOCAL_RANK").value_or(e.rank);
    e.local_world_size = int_var("LOCAL_WORLD_SIZE").value_or(e.world_size);
    e.node_rank = int_var("GROUP_RANK").value_or(e.local_world_size > 0 ? e.rank / e.local_world_size : 0);
    e.use_agent_store = env("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
  } else if (env("SLURM_STEP_NUM_TASKS") && env("SLURM_PROCID")) {
    e.launcher = Launcher::slurm;
    e.world_size = required("SLURM_STEP_NUM_TASKS", "");
    e.rank = required("SLURM_PROCID", "");
    e.local_rank = int_var("SLURM_LOCALID").value_or(0);
    e.node_rank = int_var("SLURM_NODEID").value_or(0);
    if (const auto counts = env("SLURM_STEP_TASKS_PER_NODE"))
      e.local_world_size = detail::slurm_tasks_on_node(*counts, e.node_rank);
    else
      e.local_world_size = e.world_size;
    if (const auto nodes = env("SLURM_STEP_NODELIST").has_value() ? env("SLURM_STEP_NODELIST") : env("SLURM_JOB_NODELIST"))
      e.master_addr = detail::first_slurm_host(*nodes);
  } else if (env("OMPI_COMM_WORLD_SIZE")) {
    e.launcher = Launcher::mpi;
    e.world_size = required("OMPI_COMM_WORLD_SIZE", "");
    e.rank = required("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE is set: mpirun sets both");
    e.local_rank = int_var("OMPI_COMM_WORLD_LOCAL_RANK").value_or(0);
    e.local_world_size = int_var("OMPI_COMM_WORLD_LOCAL_SIZE").value_or(e.world_size);
    // Not OMPI_COMM_WORLD_NODE_RANK: despite its name that is the process's rank among every job's
    // processes on its node (0 and 1 for two processes on one node), not the node's index. mpirun's
    // default mapping fills a node's slots before the next node's.
    e.node_rank = e.local_world_size > 0 ? e.rank / e.local_world_size : 0;
    if (e.local_world_size < e.world_size && !env("MASTER_ADDR"))
      throw error("mpirun started {} processes across nodes but MASTER_ADDR is not set: pass the first node's "
                  "address, e.g. mpirun -x MASTER_ADDR=<host> -x MASTER_PORT=29500 ...", e.world_size);
  } else {
    return e;
  }

  if (e.world_size < 1) throw error("the world size must be at least 1, got {} (from the {} environment)", e.world_size, to_string(e.launcher));
  if (e.rank >= e.world_size)
    throw error("the rank ({}) must be less than the world size ({}) (from the {} environment)", e.rank, e.world_size, to_string(e.launcher));
  if (e.local_world_size < 1 || e.local_world_size > e.world_size)
    throw error("the local world size ({}) must be between 1 and the world size ({})", e.local_world_size, e.world_size);
  if (e.local_rank >= e.local_world_size)
    throw error("the local rank ({}) must be less than the local world size ({})", e.local_rank, e.local_world_size);

  if (const auto addr = env("MASTER_ADDR")) {
    if (addr->empty()) throw error("the environment variable MASTER_ADDR is empty");
    e.master_addr = *addr;
  } else if (e.launcher == Launcher::torchrun && e.is_distributed()) {
    throw error("the environment variable MASTER_ADDR is not set (WORLD_SIZE is {}: the processes need an address "
                "to meet at; torchrun and trainpp-launch set it)", e.world_size);
  }
  if (const auto port = int_var("MASTER_PORT")) {
    if (*port < 1 || *port > 65535) throw error("the environment variable MASTER_PORT must be a port in 1..65535, got {}", *port);
    e.master_port = *port;
  } else if (e.launcher == Launcher::torchrun && e.is_distributed()) {
    throw error("the environment variable MASTER_PORT is not set (WORLD_SIZE is {}; torchrun and trainpp-launch set it)",
                e.world_size);
  }
  return e;
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
