// trainpp-launch, the launcher for machines without torchrun: each rank's environment, the
// OMP_NUM_THREADS default, a failing rank stopping the others, signals passed on to the ranks, and
// command-line mistakes. The ranks are /bin/sh scripts that write what they see into a directory.

#include <doctest/doctest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/types.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace launch_test {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

const std::string launcher_path = TRAINPP_BINARY_DIR "/bin/trainpp-launch";

/// A directory of its own for one test, removed afterwards.
struct ScratchDir {
  fs::path path;
  ScratchDir() {
    static int count = 0;
    path = fs::temp_directory_path() /
           ("trainpp_launch_test_" + std::to_string(::getpid()) + "_" + std::to_string(count++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  [[nodiscard]] fs::path operator/(const std::string& name) const { return path / name; }
};

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++count;
  return count;
}

/// What `env` printed into a file, as a map.
std::map<std::string, std::string> read_environment(const fs::path& file) {
  std::map<std::string, std::string> variables;
  std::istringstream lines(read_text(file));
  for (std::string line; std::getline(lines, line);)
    if (auto equals = line.find('='); equals != std::string::npos)
      variables[line.substr(0, equals)] = line.substr(equals + 1);
  return variables;
}

/// Whether a process still exists. The launcher reaps its ranks, so an ended rank leaves no zombie.
bool is_running(pid_t pid) { return ::kill(pid, 0) == 0 || errno == EPERM; }

bool wait_until(const auto& condition, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

bool files_appear(const ScratchDir& dir, const std::vector<std::string>& names,
                  std::chrono::milliseconds timeout = 2000ms) {
  return wait_until([&] { return std::all_of(names.begin(), names.end(), [&](const auto& n) { return fs::exists(dir / n); }); },
                    timeout);
}

pid_t read_pid(const fs::path& file) { return static_cast<pid_t>(std::stol(read_text(file))); }

struct Finished {
  bool exited = false;
  int exit_code = -1;    // when exited
  int term_signal = 0;   // when killed by a signal
  std::string out, err;  // the launcher's stdout and stderr, ranks' output included
  double seconds = 0;
};

/// The launcher, started in the background with its output in files. `environment` changes its
/// environment: a value sets a variable, nullopt removes it.
class Launched {
 public:
  Launched(const ScratchDir& dir, const std::vector<std::string>& args,
           const std::map<std::string, std::optional<std::string>>& environment = {})
      : out_(dir / "launcher.out"), err_(dir / "launcher.err") {
    std::vector<std::string> argument_strings{launcher_path};
    argument_strings.insert(argument_strings.end(), args.begin(), args.end());
    std::vector<std::string> environment_strings;
    for (char** entry = environ; *entry != nullptr; ++entry) {
      std::string variable = *entry;
      if (!environment.contains(variable.substr(0, variable.find('=')))) environment_strings.push_back(variable);
    }
    for (const auto& [name, value] : environment)
      if (value) environment_strings.push_back(name + "=" + *value);
    std::vector<char*> argv, envp;
    for (auto& s : argument_strings) argv.push_back(s.data());
    for (auto& s : environment_strings) envp.push_back(s.data());
    argv.push_back(nullptr);
    envp.push_back(nullptr);
    const std::string out_path = out_.string(), err_path = err_.string();

    started_ = Clock::now();
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {  // only async-signal-safe calls from here to exec
      int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (out < 0 || err < 0 || ::dup2(out, STDOUT_FILENO) < 0 || ::dup2(err, STDERR_FILENO) < 0) ::_exit(125);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(125);
    }
  }
  Launched(const Launched&) = delete;
  Launched& operator=(const Launched&) = delete;
  ~Launched() {
    if (!reaped_) {  // a failed check left it running: take it down with its ranks
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  [[nodiscard]] pid_t pid() const { return pid_; }

  /// Waits for the launcher to end; one still running after `timeout` fails the test and is killed.
  Finished wait(std::chrono::milliseconds timeout = 5000ms) {
    int status = 0;
    const bool ended = wait_until(
        [&] {
          pid_t r = ::waitpid(pid_, &status, WNOHANG);
          return r == pid_ || (r < 0 && errno != EINTR);
        },
        timeout);
    Finished finished;
    finished.seconds = std::chrono::duration<double>(Clock::now() - started_).count();
    if (!ended) {
      ::kill(pid_, SIGTERM);  // its stop path takes the ranks down too
      ::waitpid(pid_, &status, 0);
    }
    reaped_ = true;
    finished.out = read_text(out_);
    finished.err = read_text(err_);
    INFO("launcher stderr: " << finished.err);
    REQUIRE_MESSAGE(ended, "the launcher was still running after " << timeout.count() << " ms");
    finished.exited = WIFEXITED(status);
    if (finished.exited) finished.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) finished.term_signal = WTERMSIG(status);
    return finished;
  }

 private:
  fs::path out_, err_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  Clock::time_point started_;
};

/// Runs the launcher to its end.
Finished launch(const ScratchDir& dir, const std::vector<std::string>& args,
                const std::map<std::string, std::optional<std::string>>& environment = {}) {
  return Launched(dir, args, environment).wait();
}

/// Arguments that run `script` with /bin/sh as every rank, with $D the scratch directory.
std::vector<std::string> ranks_running(const ScratchDir& dir, std::vector<std::string> flags, const std::string& script) {
  flags.insert(flags.end(), {"--", "/bin/sh", "-c", "D='" + dir.path.string() + "'; " + script});
  return flags;
}

constexpr const char* write_environment = "env > \"$D/env.$RANK\"";

void check_rank_environment(const ScratchDir& dir, int rank, int local_rank, int world_size, int local_world_size,
                            int group_rank, int group_world_size, const std::string& master_addr,
                            const std::string& master_port) {
  CAPTURE(rank);
  auto env = read_environment(dir / ("env." + std::to_string(rank)));
  CHECK(env["RANK"] == std::to_string(rank));
  CHECK(env["LOCAL_RANK"] == std::to_string(local_rank));
  CHECK(env["WORLD_SIZE"] == std::to_string(world_size));
  CHECK(env["LOCAL_WORLD_SIZE"] == std::to_string(local_world_size));
  CHECK(env["GROUP_RANK"] == std::to_string(group_rank));
  CHECK(env["GROUP_WORLD_SIZE"] == std::to_string(group_world_size));
  CHECK(env["ROLE_RANK"] == std::to_string(rank));
  CHECK(env["ROLE_WORLD_SIZE"] == std::to_string(world_size));
  CHECK(env["MASTER_ADDR"] == master_addr);
  CHECK(env["MASTER_PORT"] == master_port);
}



TEST_CASE("trainpp-launch gives two ranks torchrun's environment, with its default master" *
          doctest::test_suite("integration")) {
  ScratchDir dir;
  auto finished = launch(dir, ranks_running(dir, {"--nproc_per_node", "2"}, write_environment));
  CHECK(finished.exited);
  CHECK(finished.exit_code == 0);
  for (int rank : {0, 1}) check_rank_environment(dir, rank, rank, 2, 2, 0, 1, "127.0.0.1", "29500");
  CHECK_FALSE(fs::exists(dir / "env.2"));
}

TEST_CASE("trainpp-launch gives four ranks their environment, with --flag=value and hyphenated names" *
          doctest::test_suite("integration")) {
  ScratchDir dir;
  auto finished = launch(dir, ranks_running(dir, {"--nproc-per-node=4", "--master_addr=10.1.2.3", "--master-port", "1234"},
                                            write_environment));
  CHECK(finished.exit_code == 0);
  for (int rank : {0, 1, 2, 3}) check_rank_environment(dir, rank, rank, 4, 4, 0, 1, "10.1.2.3", "1234");
}

TEST_CASE("trainpp-launch numbers the ranks of the second node after the first node's" *
          doctest::test_suite("integration")) {
  ScratchDir dir;
  auto finished = launch(dir, ranks_running(dir, {"--nnodes", "2", "--node_rank", "1", "--nproc_per_node", "2",
                                                  "--master_addr", "node0", "--master_port", "29400"},
                                            write_environment));
  CHECK(finished.exit_code == 0);
  CHECK_FALSE(fs::exists(dir / "env.0"));
  CHECK_FALSE(fs::exists(dir / "env.1"));
  for (int rank : {2, 3}) check_rank_environment(dir, rank, rank - 2, 4, 2, 1, 2, "node0", "29400");
}

TEST_CASE("trainpp-launch sets OMP_NUM_THREADS=1 only for several ranks and only when it is unset" *
          doctest::test_suite("integration")) {
  const std::string notice = "setting OMP_NUM_THREADS=1";
  SUBCASE("several ranks, unset: set to 1, with one notice") {
    ScratchDir dir;
    auto finished = launch(dir, ranks_running(dir, {"--nproc_per_node", "3"}, write_environment),
                           {{"OMP_NUM_THREADS", std::nullopt}});
    CHECK(finished.exit_code == 0);
    for (int rank : {0, 1, 2}) CHECK(read_environment(dir / ("env." + std::to_string(rank)))["OMP_NUM_THREADS"] == "1");
    CHECK(count_of(finished.err, notice) == 1);
  }
  SUBCASE("several ranks, set: kept as it is, without a notice") {
    ScratchDir dir;
    auto finished = launch(dir, ranks_running(dir, {"--nproc_per_node", "2"}, write_environment),
                           {{"OMP_NUM_THREADS", "7"}});
    CHECK(finished.exit_code == 0);
    for (int rank : {0, 1}) CHECK(read_environment(dir / ("env." + std::to_string(rank)))["OMP_NUM_THREADS"] == "7");
    CHECK(count_of(finished.err, notice) == 0);
  }
  SUBCASE("one rank, unset: left unset") {
    ScratchDir dir;
    auto finished = launch(dir, ranks_running(dir, {}, write_environment), {{"OMP_NUM_THREADS", std::nullopt}});
    CHECK(finished.exit_code == 0);
    CHECK_FALSE(read_environment(dir / "env.0").contains("OMP_NUM_THREADS"));
    CHECK(count_of(finished.err, notice) == 0);
  }
}

TEST_CASE("a rank that exits with 3 stops the others at once, and the launcher exits with 3" *
          doctest::test_suite("integration")) {
  ScratchDir dir;
  // Ranks 0 and 2 record their pid and become a long sleep; rank 1 fails once they have.
  const std::string script =
      "if [ \"$RANK\" = 1 ]; then"
      "  while [ ! -e \"$D/pid.0\" ] || [ ! -e \"$D/pid.2\" ]; do sleep 0.01; done; exit 3; "
      "fi; echo $$ > \"$D/pid.tmp.$RANK\" && mv \"$D/pid.tmp.$RANK\" \"$D/pid.$RANK\"; exec sleep 30";
  auto finished = launch(dir, ranks_running(dir, {"--nproc_per_node", "3"}, script));
  CHECK(finished.exited);
  CHECK(finished.exit_code == 3);
  CHECK(finished.seconds < 5);  // not the ranks' 30 s sleep, nor the 30 s grace period
  CHECK(finished.err.find("rank 1 (pid ") != std::string::npos);
  CHECK(finished.err.find(") exited with status 3; stopping the other ranks") != std::string::npos);
  for (int rank : {0, 2}) {
    CAPTURE(rank);
    REQUIRE(fs::exists(dir / ("pid." + std::to_string(rank))));
    CHECK_FALSE(is_running(read_pid(dir / ("pid." + std::to_string(rank)))));
  }
}

TEST_CASE("a rank killed by SIGKILL makes the launcher exit with 137" *
          doctest::test_suite("integration")) {
  ScratchDir dir;
  auto finished = launch(dir, ranks_running(dir, {"--nproc_per_node", "2"},
                                            "if [ \"$RANK\" = 0 ]; then kill -KILL $$; fi; exec sleep 30"));
  CHECK(finished.exited);
  CHECK(finished.exit_code == 137);
  CHECK(finished.seconds < 5);
  CHECK(finished.err.find("rank 0 (pid ") != std::string::npos);
  CHECK(finished.err.find(") was killed by SIGKILL") != std::string::npos);
}

TEST_CASE("ranks that ignore SIGTERM after a failure are killed when --stop_timeout runs out" *
          doctest::test_suite("integration")) {
  ScratchDir dir;
  const std::string script =
      "if [ \"$RANK\" = 1 ]; then while [ ! -e \"$D/pid.0\" ]; do sleep 0.01; done; exit 5; fi; "
      "trap '' TERM; echo $$ > \"$D/pid.tmp\" && mv \"$D/pid.tmp\" \"$D/pid.0\"; exec sleep 30";
  auto finished = launch(dir, ranks_running(dir, {"--nproc_per_node", "2", "--stop_timeout", "0.3"}, script));
  CHECK(finished.exit_code == 5);
  CHECK(finished.seconds >= 0.3);
  CHECK(finished.seconds < 5);
  CHECK(finished.err.find("did not stop within 0.3 s; sending SIGKILL") != std::string::npos);
  REQUIRE(fs::exists(dir / "pid.0"));
  CHECK_FALSE(is_running(read_pid(dir / "pid.0")));
}

TEST_CASE("SIGTERM sent to the launcher reaches every rank, and the launcher ends by it" *
          doctest::test_suite("integration")) {
  ScratchDir dir;
  // A rank notes the SIGTERM it gets in a file. It waits in short foreground sleeps, between which
  // its trap runs: the quicker `sleep 30 & wait`, with the sleep killed and waited for in the trap,
  // now and then leaves dash blocked in the trap's `wait` for good.
  const std::string script =
      "trap 'echo > \"$D/term.$RANK\"; exit 0' TERM; echo > \"$D/ready.$RANK\"; "
      "while :; do sleep 0.02; done";
  Launched launched(dir, ranks_running(dir, {"--nproc_per_node", "3"}, script));
  REQUIRE(files_appear(dir, {"ready.0", "ready.1", "ready.2"}));
  REQUIRE(::kill(launched.pid(), SIGTERM) == 0);
  auto finished = launched.wait();
  CHECK(finished.seconds < 5);
  CHECK_FALSE(finished.exited);
  CHECK(finished.term_signal == SIGTERM);
  CHECK(finished.err.find("received SIGTERM") != std::string::npos);
  for (const char* marker : {"term.0", "term.1", "term.2"}) {
    CAPTURE(marker);
    CHECK(fs::exists(dir / marker));
  }
}

TEST_CASE("SIGUSR1 sent to the launcher reaches every rank without stopping the job" *
          doctest::test_suite("integration")) {
  ScratchDir dir;
  // A rank waits for its SIGUSR1, then ends normally.
  const std::string script =
      "trap 'echo > \"$D/usr1.$RANK\"' USR1; echo > \"$D/ready.$RANK\"; "
      "while [ ! -e \"$D/usr1.$RANK\" ]; do sleep 0.01; done";
  Launched launched(dir, ranks_running(dir, {"--nproc_per_node", "2"}, script));
  REQUIRE(files_appear(dir, {"ready.0", "ready.1"}));
  REQUIRE(::kill(launched.pid(), SIGUSR1) == 0);
  auto finished = launched.wait();
  CHECK(finished.exited);
  CHECK(finished.exit_code == 0);
  CHECK(fs::exists(dir / "usr1.0"));
  CHECK(fs::exists(dir / "usr1.1"));
}

#if defined(__linux__)
TEST_CASE("ranks do not outlive a launcher killed by SIGKILL" *
          doctest::test_suite("integration")) {
  // Orphaned ranks are adopted by this process rather than by init, so that the test can see how
  // they ended and reap them.
  REQUIRE(::prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  struct NoLongerSubreaper {
    ~NoLongerSubreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 0); }
  } restore;

  ScratchDir dir;
  const std::string script = "echo $$ > \"$D/pid.tmp.$RANK\" && mv \"$D/pid.tmp.$RANK\" \"$D/pid.$RANK\"; exec sleep 30";
  Launched launched(dir, ranks_running(dir, {"--nproc_per_node", "2"}, script));
  REQUIRE(files_appear(dir, {"pid.0", "pid.1"}));
  REQUIRE(::kill(launched.pid(), SIGKILL) == 0);
  auto finished = launched.wait();
  CHECK(finished.term_signal == SIGKILL);
  for (const char* pid_file : {"pid.0", "pid.1"}) {
    CAPTURE(pid_file);
    const pid_t rank = read_pid(dir / pid_file);
    int status = 0;
    const bool ended = wait_until([&] { return ::waitpid(rank, &status, WNOHANG) == rank; }, 2000ms);
    if (!ended) {
      ::kill(rank, SIGKILL);
      ::waitpid(rank, nullptr, 0);
    }
    REQUIRE(ended);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
  }
}
#endif

TEST_CASE("trainpp-launch rejects bad command lines with exit status 2 and one clear line" *
          doctest::test_suite("integration")) {
  ScratchDir dir;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--nproc_per_node", "abc", "true"}, "argument --nproc_per_node: invalid int value: 'abc'"},
      {{"--nproc_per_node=0", "true"}, "argument --nproc_per_node: must be between 1 and 4096, got 0"},
      {{"--nproc_per_node", "99999999999999999999", "true"}, "argument --nproc_per_node: must be between 1 and 4096"},
      {{"--nnodes", "0", "true"}, "argument --nnodes: must be between 1 and"},
      {{"--nnodes", "2", "--node_rank", "2", "true"}, "argument --node_rank: 2 is out of range for --nnodes 2"},
      {{"--node_rank", "-1", "true"}, "argument --node_rank: must be between 0 and"},
      {{"--master_port", "65536", "true"}, "argument --master_port: must be between 1 and 65535, got 65536"},
      {{"--master_port", "0", "true"}, "argument --master_port: must be between 1 and 65535, got 0"},
      {{"--master_addr=", "true"}, "argument --master_addr: must not be empty"},
      {{"--stop_timeout", "soon", "true"}, "argument --stop_timeout: invalid float value: 'soon'"},
      {{"--nprocs_per_node", "2", "true"}, "unrecognized argument: --nprocs_per_node (did you mean --nproc_per_node?)"},
      {{"--standalone", "true"}, "argument --standalone: a torchrun option that trainpp-launch does not have"},
      {{"--nproc_per_node"}, "argument --nproc_per_node: expected one argument"},
      {{"--nproc_per_node", "2"}, "missing the program to run"},
      {{}, "missing the program to run"},
  };
  for (const auto& [args, message] : cases) {
    std::string command_line;
    for (const auto& arg : args) command_line += " " + arg;
    CAPTURE(command_line);
    auto finished = launch(dir, args);
    CHECK(finished.exit_code == 2);
    CHECK(finished.err.starts_with("trainpp-launch: error: "));
    CHECK(count_of(finished.err, "\n") == 1);
    CHECK(finished.err.find(message) != std::string::npos);
  }
}

TEST_CASE("trainpp-launch reports a program it cannot run and exits non-zero" *
          doctest::test_suite("integration")) {
  ScratchDir dir;
  auto finished = launch(dir, {"--nproc_per_node", "2", "trainpp-no-such-program", "--flag"});
  CHECK(finished.exited);
  CHECK(finished.exit_code == 127);
  CHECK(finished.err.find("trainpp-launch: error: cannot run 'trainpp-no-such-program': No such file or directory") !=
        std::string::npos);
}

TEST_CASE("trainpp-launch --help describes its options and exits 0" *
          doctest::test_suite("integration")) {
  ScratchDir dir;
  auto finished = launch(dir, {"--help"});
  CHECK(finished.exit_code == 0);
  CHECK(finished.out.starts_with("usage: trainpp-launch"));
  for (const char* flag : {"--nproc_per_node", "--nnodes", "--node_rank", "--master_addr", "--master_port", "--stop_timeout"})
    CHECK(finished.out.find(flag) != std::string::npos);
}

}  // namespace launch_test
