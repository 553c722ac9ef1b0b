// trainpp-launch: starts this node's ranks of a distributed job with torchrun's environment
// contract, for machines that have no Python and so no torchrun. It runs the program itself, as
// `torchrun --no_python` does, on a static group: no rendezvous, no restarts.
//
// Plain C++20 and POSIX on purpose: it builds in seconds and needs nothing from LibTorch.
//
// How it supervises: the signal handlers only write the signal's number into a pipe; one loop
// polls that pipe, forwards what arrived, reaps children with waitpid, and enforces the grace
// period. All the work happens in that loop, never inside a handler.

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

namespace {

constexpr std::string_view launcher_name = "trainpp-launch";
// A typo such as an extra zero should not fork a hundred thousand processes.
constexpr int max_nproc_per_node = 4096;

// ------------------------------------------------------------------------------------------------
// Messages

void print_line(const std::string& text) {
  std::string line = std::string(launcher_name) + ": " + text + "\n";
  // One write per line: the ranks share this stderr, and a line should not be split by theirs.
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

[[noreturn]] void usage_error(const std::string& text) {
  print_line("error: " + text);
  std::exit(2);
}

std::string signal_name(int sig) {
  switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGTRAP: return "SIGTRAP";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGUSR1: return "SIGUSR1";
    case SIGSEGV: return "SIGSEGV";
    case SIGUSR2: return "SIGUSR2";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGTERM: return "SIGTERM";
    case SIGXCPU: return "SIGXCPU";
    case SIGXFSZ: return "SIGXFSZ";
    default: return "signal " + std::to_string(sig);
  }
}

std::string seconds_text(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%g s", seconds);
  return text;
}

constexpr std::string_view help_text = R"(usage: trainpp-launch [options] [--] program [args...]

Starts --nproc_per_node copies of program on this node, each with torchrun's environment:
  RANK              node_rank * nproc_per_node + LOCAL_RANK
  LOCAL_RANK        0 .. nproc_per_node-1
  WORLD_SIZE        nnodes * nproc_per_node
  LOCAL_WORLD_SIZE  nproc_per_node
  GROUP_RANK        node_rank          (GROUP_WORLD_SIZE: nnodes)
  ROLE_RANK         same as RANK       (ROLE_WORLD_SIZE: WORLD_SIZE)
  MASTER_ADDR, MASTER_PORT
and OMP_NUM_THREADS=1 when more than one process shares the node and it is not set already.
The program is run as given (searched in PATH), like `torchrun --no_python`.

options (`--name value` or `--name=value`; '-' and '_' are interchangeable in names):
  --nproc_per_node N  processes to start on this node (default: 1)
  --nnodes M          nodes taking part in the job (default: 1)
  --node_rank R       this node's index, 0 to M-1 (default: 0)
  --master_addr A     address of node 0, where rank 0 listens (default: 127.0.0.1)
  --master_port P     port rank 0 listens on, 1 to 65535 (default: 29500)
  --stop_timeout S    seconds the processes get to stop before SIGKILL (default: 30)
  -h, --help          show this message and exit

SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are passed on to every process; after
SIGINT, SIGTERM or SIGHUP the launcher waits up to --stop_timeout seconds for them to end, kills
what is left, and ends by the same signal. When a process exits non-zero or is killed, the others
get SIGTERM (SIGKILL after --stop_timeout), and the launcher exits with the first failure's status:
its exit code, or 128 + N for signal N. It exits 0 when every process does.
)";

// ------------------------------------------------------------------------------------------------
// Command line

struct Options {
  int nproc_per_node = 1;
  int nnodes = 1;
  int node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  double stop_timeout_s = 30;
  std::vector<char*> command;  // the program and its arguments, null-terminated for execvp
};

constexpr std::string_view known_flags[] = {"nproc_per_node", "nnodes",      "node_rank", "master_addr",
                                            "master_port",    "stop_timeout", "help"};

// torchrun's own options that a static single-node group has no use for: named as such, so that a
// torchrun command line gets a better answer than "unrecognized".
constexpr std::string_view torchrun_only_flags[] = {
    "standalone", "rdzv_backend", "rdzv_endpoint", "rdzv_id", "rdzv_conf", "max_restarts",
    "monitor_interval", "start_method", "role", "module", "no_python", "run_path", "log_dir",
    "redirects", "tee", "local_ranks_filter", "local_addr", "logs_specs", "rdzv_timeout"};

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

/// The known flag a mistyped name most likely meant, if any is close: a prefix of exactly one, or
/// within two edits.
std::optional<std::string_view> closest_flag(std::string_view name) {
  std::optional<std::string_view> prefix_of;
  int prefix_count = 0;
  for (std::string_view flag : known_flags)
    if (!name.empty() && flag.starts_with(name)) prefix_of = flag, ++prefix_count;
  if (prefix_count == 1) return prefix_of;
  std::optional<std::string_view> best;
  std::size_t best_distance = 3;
  for (std::string_view flag : known_flags)
    if (std::size_t d = edit_distance(name, flag); d < best_distance) best = flag, best_distance = d;
  return best;
}

long long parse_integer(std::string_view flag, std::string_view text, long long low, long long high) {
  long long value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || end != text.data() + text.size() ||
      (error != std::errc{} && error != std::errc::result_out_of_range)) {
    std::string message = "argument --" + std::string(flag) + ": invalid int value: '" + std::string(text) + "'";
    if (flag == "nproc_per_node" && (text == "gpu" || text == "cpu" || text == "auto"))
      message += " (trainpp-launch does not count devices: give the number of processes)";
    if (flag == "nnodes" && text.find(':') != std::string_view::npos)
      message += " (elastic MIN:MAX ranges need torchrun's rendezvous: give one number)";
    usage_error(message);
  }
  if (error == std::errc::result_out_of_range || value < low || value > high)
    usage_error("argument --" + std::string(flag) + ": must be between " + std::to_string(low) + " and " +
                std::to_string(high) + ", got " + std::string(text));
  return value;
}

double parse_seconds(std::string_view flag, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || errno != 0 || !std::isfinite(value))
    usage_error("argument --" + std::string(flag) + ": invalid float value: '" + text + "'");
  if (value < 0) usage_error("argument --" + std::string(flag) + ": must not be negative, got " + text);
  return value;
}

Options parse_command_line(int argc, char** argv) {
  Options options;
  int i = 1;
  for (; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') break;  // the program: everything from here on is its own
    if (arg == "-h" || arg == "--help") {
      std::fwrite(help_text.data(), 1, help_text.size(), stdout);
      std::exit(0);
    }
    std::string_view spelled = arg.substr(0, arg.find('='));
    std::string name(spelled.substr(spelled.starts_with("--") ? 2 : 1));
    std::replace(name.begin(), name.end(), '-', '_');  // torchrun takes --nproc-per-node as well

    if (std::find(std::begin(known_flags), std::end(known_flags), name) == std::end(known_flags) ||
        name == "help") {
      if (std::find(std::begin(torchrun_only_flags), std::end(torchrun_only_flags), name) !=
          std::end(torchrun_only_flags))
        usage_error("argument " + std::string(spelled) +
                    ": a torchrun option that trainpp-launch does not have (it starts one static group, "
                    "without rendezvous or restarts, and runs the program itself)");
      std::string message = "unrecognized argument: " + std::string(spelled);
      if (auto guess = closest_flag(name)) message += " (did you mean --" + std::string(*guess) + "?)";
      usage_error(message);
    }

    std::string value;
    if (auto equals = arg.find('='); equals != std::string_view::npos) {
      value = arg.substr(equals + 1);
    } else {
      if (i + 1 >= argc) usage_error("argument " + std::string(spelled) + ": expected one argument");
      value = argv[++i];
    }

    if (name == "nproc_per_node")
      options.nproc_per_node = static_cast<int>(parse_integer(name, value, 1, max_nproc_per_node));
    else if (name == "nnodes")
      options.nnodes = static_cast<int>(parse_integer(name, value, 1, INT_MAX));
    else if (name == "node_rank")
      options.node_rank = static_cast<int>(parse_integer(name, value, 0, INT_MAX));
    else if (name == "master_port")
      options.master_port = static_cast<int>(parse_integer(name, value, 1, 65535));
    else if (name == "stop_timeout")
      options.stop_timeout_s = parse_seconds(name, value);
    else if (name == "master_addr") {
      if (value.empty()) usage_error("argument --master_addr: must not be empty");
      options.master_addr = value;
    }
  }

  // Checked once all flags are read, so that their order does not matter.
  if (options.node_rank >= options.nnodes)
    usage_error("argument --node_rank: " + std::to_string(options.node_rank) + " is out of range for --nnodes " +
                std::to_string(options.nnodes) + " (node ranks are 0 to " + std::to_string(options.nnodes - 1) + ")");
  if (static_cast<long long>(options.nnodes) * options.nproc_per_node > INT_MAX)
    usage_error("--nnodes " + std::to_string(options.nnodes) + " times --nproc_per_node " +
                std::to_string(options.nproc_per_node) + " is more ranks than WORLD_SIZE can hold");
  if (i >= argc)
    usage_error("missing the program to run (usage: trainpp-launch [options] [--] program [args...])");
  options.command.assign(argv + i, argv + argc);
  options.command.push_back(nullptr);
  return options;
}

// ------------------------------------------------------------------------------------------------
// Signals

constexpr int forwarded_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

bool stops_the_job(int sig) { return sig == SIGINT || sig == SIGTERM || sig == SIGHUP; }

int signal_pipe_write_end = -1;

extern "C" void record_signal(int sig) {
  const int saved_errno = errno;
  const auto byte = static_cast<unsigned char>(sig);
  // Non-blocking: with the pipe full, the loop has plenty to wake up for already.
  (void)!::write(signal_pipe_write_end, &byte, 1);
  errno = saved_errno;
}

void set_flags(int fd, bool non_blocking) {
  ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC);
  if (non_blocking) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/// Routes the forwarded signals and SIGCHLD into a pipe the supervising loop polls.
class SignalPipe {
 public:
  SignalPipe() {
    if (::pipe(fds_) != 0) {
      print_line(std::string("error: pipe: ") + std::strerror(errno));
      std::exit(1);
    }
    set_flags(fds_[0], true);
    set_flags(fds_[1], true);
    signal_pipe_write_end = fds_[1];

    sigemptyset(&handled_);
    for (int sig : forwarded_signals) {
      struct sigaction current {};
      ::sigaction(sig, nullptr, &current);
      // A signal ignored when we start stays ignored, for us and (through exec) for the ranks:
      // under nohup, a hangup must not stop the job.
      if (current.sa_handler == SIG_IGN) continue;
      install(sig, SA_RESTART);
    }
    // Always caught, even if inherited as ignored: an ignored SIGCHLD would make the kernel reap the
    // ranks itself, and waitpid could no longer tell how they ended.
    install(SIGCHLD, SA_RESTART | SA_NOCLDSTOP);
  }

  [[nodiscard]] int read_end() const { return fds_[0]; }
  [[nodiscard]] const sigset_t& handled() const { return handled_; }

  /// In a fresh child, before exec: puts back the default action of what we catch, so that no
  /// signal runs our handler (and writes into our pipe) in the window before exec resets them.
  void restore_defaults_in_child() const {
    for (int sig = 1; sig < NSIG; ++sig)
      if (sigismember(&handled_, sig) == 1) ::signal(sig, SIG_DFL);
  }

  /// The signals that arrived since the last call, in order; SIGCHLD included.
  std::vector<int> drain() const {
    std::vector<int> signals;
    unsigned char buffer[64];
    for (;;) {
      ssize_t n = ::read(fds_[0], buffer, sizeof buffer);
      if (n > 0) {
        signals.insert(signals.end(), buffer, buffer + n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return signals;  // EAGAIN: empty for now
    }
  }

 private:
  void install(int sig, int flags) {
    struct sigaction action {};
    action.sa_handler = record_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = flags;
    ::sigaction(sig, &action, nullptr);
    sigaddset(&handled_, sig);
  }

  int fds_[2] = {-1, -1};
  sigset_t handled_{};
};

// ------------------------------------------------------------------------------------------------
// Ranks

struct Rank {
  int local_rank = 0;
  int rank = 0;
  pid_t pid = -1;
  bool running = false;
};

std::string describe(const Rank& rank) {
  return "rank " + std::to_string(rank.rank) + " (pid " + std::to_string(rank.pid) + ")";
}

void set_env(const char* name, const std::string& value) { ::setenv(name, value.c_str(), 1); }

/// Exports what every rank of this node shares into our own environment, which the ranks inherit.
void export_job_environment(const Options& options) {
  const int world_size = options.nnodes * options.nproc_per_node;
  set_env("WORLD_SIZE", std::to_string(world_size));
  set_env("ROLE_WORLD_SIZE", std::to_string(world_size));
  set_env("LOCAL_WORLD_SIZE", std::to_string(options.nproc_per_node));
  set_env("GROUP_RANK", std::to_string(options.node_rank));
  set_env("GROUP_WORLD_SIZE", std::to_string(options.nnodes));
  set_env("MASTER_ADDR", options.master_addr);
  set_env("MASTER_PORT", std::to_string(options.master_port));
  // torchrun's default, for the same reason: N processes each starting one OpenMP thread per core
  // would run N times as many threads as there are cores.
  if (options.nproc_per_node > 1 && std::getenv("OMP_NUM_THREADS") == nullptr) {
    set_env("OMP_NUM_THREADS", "1");
    print_line("setting OMP_NUM_THREADS=1 for each of the " + std::to_string(options.nproc_per_node) +
               " processes so that they do not overload the system; set it yourself to tune performance");
  }
}

/// How starting a rank failed: the program could not be run (exec_errno), or no process could be
/// made for it (fork_errno).
struct StartFailure {
  int exec_errno = 0;
  int fork_errno = 0;
};

/// Starts one rank. The program's exec is confirmed through a close-on-exec pipe: it reaches EOF when
/// exec succeeds and carries errno when it fails, so a missing program is reported as such rather
/// than as an exit status 127.
std::optional<StartFailure> start_rank(Rank& rank, const Options& options, const SignalPipe& signals,
                                       const sigset_t& child_mask) {
  set_env("RANK", std::to_string(rank.rank));
  set_env("ROLE_RANK", std::to_string(rank.rank));
  set_env("LOCAL_RANK", std::to_string(rank.local_rank));

  int exec_status[2];
  if (::pipe(exec_status) != 0) return StartFailure{.fork_errno = errno};
  set_flags(exec_status[0], false);
  set_flags(exec_status[1], false);
  [[maybe_unused]] const pid_t launcher = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) {
    const int error = errno;
    ::close(exec_status[0]);
    ::close(exec_status[1]);
    return StartFailure{.fork_errno = error};
  }
  if (pid == 0) {
    ::close(exec_status[0]);
#if defined(__linux__)
    // Should the launcher itself be killed (SIGKILL, the OOM killer), its ranks go with it rather
    // than run on unsupervised.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != launcher) ::_exit(1);  // it died before prctl took effect
#endif
    signals.restore_defaults_in_child();
    ::sigprocmask(SIG_SETMASK, &child_mask, nullptr);
    ::execvp(options.command[0], options.command.data());
    const int error = errno;
    (void)!::write(exec_status[1], &error, sizeof error);
    ::_exit(error == ENOENT ? 127 : 126);  // the shell's codes for "not found" and "cannot run"
  }

  ::close(exec_status[1]);
  int error = 0;
  ssize_t n;
  do n = ::read(exec_status[0], &error, sizeof error);
  while (n < 0 && errno == EINTR);
  ::close(exec_status[0]);
  if (n == static_cast<ssize_t>(sizeof error)) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return StartFailure{.exec_errno = error};
  }
  rank.pid = pid;
  rank.running = true;
  return std::nullopt;
}

// ------------------------------------------------------------------------------------------------
// Supervision

using Clock = std::chrono::steady_clock;

class Supervisor {
 public:
  Supervisor(const Options& options, const SignalPipe& signals) : options_(options), signals_(signals) {}

  /// Starts every rank, watches them to the end, and returns the launcher's exit status; a stop by
  /// signal ends the launcher by that signal instead.
  int run() {
    // Blocked while the ranks are being started: a signal then waits until every started rank can
    // receive it, and a child never runs our handler between fork and exec.
    sigset_t original_mask;
    ::sigprocmask(SIG_BLOCK, &signals_.handled(), &original_mask);
    export_job_environment(options_);
    ranks_.resize(static_cast<std::size_t>(options_.nproc_per_node));
    for (int local = 0; local < options_.nproc_per_node; ++local) {
      Rank& rank = ranks_[static_cast<std::size_t>(local)];
      rank.local_rank = local;
      rank.rank = options_.node_rank * options_.nproc_per_node + local;
      if (auto failure = start_rank(rank, options_, signals_, original_mask)) {
        if (failure->exec_errno != 0) {
          print_line(std::string("error: cannot run '") + options_.command[0] + "': " +
                     std::strerror(failure->exec_errno));
          begin_stop(failure->exec_errno == ENOENT ? 127 : 126);
        } else {
          print_line("error: cannot start rank " + std::to_string(rank.rank) + ": " +
                     std::strerror(failure->fork_errno));
          begin_stop(1);
        }
        break;
      }
    }
    ::sigprocmask(SIG_SETMASK, &original_mask, nullptr);

    supervise();

    if (stop_signal_ != 0) end_by_signal(stop_signal_);
    return exit_status_;
  }

 private:
  void supervise() {
    while (std::any_of(ranks_.begin(), ranks_.end(), [](const Rank& r) { return r.running; })) {
      pollfd wake{.fd = signals_.read_end(), .events = POLLIN, .revents = 0};
      if (::poll(&wake, 1, poll_timeout_ms()) < 0 && errno != EINTR && !killed_) {
        // Unable to watch the ranks any longer: end them rather than leave them unsupervised.
        print_line(std::string("error: poll: ") + std::strerror(errno) + "; killing the ranks");
        send_to_running(SIGKILL);
        killed_ = true;
      }
      for (int sig : signals_.drain())
        if (sig != SIGCHLD) on_signal(sig);
      reap();
      if (kill_deadline_ && !killed_ && Clock::now() >= *kill_deadline_) kill_all_running();
    }
  }

  [[nodiscard]] int poll_timeout_ms() const {
    if (!kill_deadline_ || killed_) return -1;  // nothing to time: wait for a signal or a child
    auto left = std::chrono::ceil<std::chrono::milliseconds>(*kill_deadline_ - Clock::now()).count();
    return static_cast<int>(std::clamp<decltype(left)>(left, 0, INT_MAX));
  }

  void on_signal(int sig) {
    send_to_running(sig);
    if (stops_the_job(sig) && !stopping_) {
      stop_signal_ = sig;
      stopping_ = true;
      kill_deadline_ = Clock::now() + stop_timeout();
      print_line("received " + signal_name(sig) + ", passed it on to the ranks; waiting up to " +
                 seconds_text(options_.stop_timeout_s) + " for them to stop");
    }
  }

  void reap() {
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid == 0) return;
      if (pid < 0) {
        if (errno == EINTR) continue;
        // ECHILD: nothing is left to wait for, whatever our records say.
        for (Rank& rank : ranks_) rank.running = false;
        return;
      }
      auto rank = std::find_if(ranks_.begin(), ranks_.end(), [pid](const Rank& r) { return r.running && r.pid == pid; });
      if (rank == ranks_.end()) continue;
      rank->running = false;
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
      if (stopping_) continue;  // ranks ending because we stopped them are not news

      std::string how;
      int exit_status = 0;
      if (WIFEXITED(status)) {
        exit_status = WEXITSTATUS(status);
        how = "exited with status " + std::to_string(exit_status);
      } else {
        exit_status = 128 + WTERMSIG(status);
        how = "was killed by " + signal_name(WTERMSIG(status));
      }
      const bool others_running = std::any_of(ranks_.begin(), ranks_.end(), [](const Rank& r) { return r.running; });
      print_line(describe(*rank) + " " + how + (others_running ? "; stopping the other ranks" : ""));
      begin_stop(exit_status);
    }
  }

  /// Stops the job after a failure, which decides the exit status: SIGTERM now, SIGKILL after the
  /// grace period.
  void begin_stop(int exit_status) {
    stopping_ = true;
    exit_status_ = exit_status;
    kill_deadline_ = Clock::now() + stop_timeout();
    send_to_running(SIGTERM);
  }

  void send_to_running(int sig) {
    // A rank that ended but is not reaped yet keeps its pid, so this never reaches a stranger.
    for (const Rank& rank : ranks_)
      if (rank.running) ::kill(rank.pid, sig);
  }

  void kill_all_running() {
    for (const Rank& rank : ranks_)
      if (rank.running) {
        print_line(describe(rank) + " did not stop within " + seconds_text(options_.stop_timeout_s) +
                   "; sending SIGKILL");
        ::kill(rank.pid, SIGKILL);
      }
    killed_ = true;
  }

  [[nodiscard]] Clock::duration stop_timeout() const {
    // Capped at about three years, which is forever here, so that the deadline stays representable.
    const double seconds = std::min(options_.stop_timeout_s, 1e8);
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  }

  /// Ends the launcher the way the signal that stopped the job would have, so that whoever started it
  /// (a shell, a scheduler) sees an interrupted job rather than a failed one.
  [[noreturn]] static void end_by_signal(int sig) {
    ::signal(sig, SIG_DFL);
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, sig);
    ::sigprocmask(SIG_UNBLOCK, &only, nullptr);
    ::raise(sig);
    std::exit(128 + sig);  // not reached for the signals that stop the job; kept for safety
  }

  const Options& options_;
  const SignalPipe& signals_;
  std::vector<Rank> ranks_;
  bool stopping_ = false;
  bool killed_ = false;
  int stop_signal_ = 0;  // the signal that stopped the job, when one did before any failure
  int exit_status_ = 0;  // the first failure's status
  std::optional<Clock::time_point> kill_deadline_;
};

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse_command_line(argc, argv);
  std::fflush(stdout);  // nothing buffered may be written twice, once by each child
  SignalPipe signals;
  return Supervisor(options, signals).run();
}
