// detail/crash_point.hpp: TRAINPP_CRASH_AT=<point>:<step> parsed once per process (a malformed value an
// Error), and crash_point() flushing output and SIGKILLing the process at exactly that point and step.
// The plan is read once per process, so each setting runs in a child: this binary, only its child case.

#include <trainpp/detail/crash_point.hpp>

#include <doctest/doctest.h>

#include "skip.hpp"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace crash_point_test {

constexpr const char* child_case = "crash_point: the child process that the cases below start";
constexpr const char* calls_variable = "TRAINPP_CRASH_POINT_TEST_CALLS";

// Its output goes to a file, so stdout is fully buffered: a line printed just before a crash reaches
// the file only if crash_point flushes it.
// Run on its own (by ctest), it has no calls to make and says it was skipped.
TEST_CASE("crash_point: the child process that the cases below start") {
  if (std::getenv(calls_variable) == nullptr)
    TRAINPP_SKIP_TEST("runs only as the child process the other crash_point cases start");
  try {
    const auto& plan = trainpp::detail::crash_plan();
    std::printf("plan '%s' %lld\n", plan.point.c_str(), static_cast<long long>(plan.step));
  } catch (const trainpp::Error& e) {
    std::printf("error %s\n", e.what());
    return;
  }
  const char* calls = std::getenv(calls_variable);
  std::stringstream list(calls == nullptr ? "" : calls);
  for (std::string call; std::getline(list, call, ',');) {
    const auto colon = call.rfind(':');
    const std::string point = call.substr(0, colon);
    const std::int64_t step = std::stoll(call.substr(colon + 1));
    std::printf("reached %s\n", call.c_str());
    trainpp::detail::crash_point(point, step);
    std::printf("passed %s\n", call.c_str());
  }
}

struct Child {
  bool exited = false;
  int exit_code = -1;
  int signal = 0;
  std::string out;
};

/// Runs the child case with TRAINPP_CRASH_AT set to `crash_at` (unset when nullopt), calling the
/// crash points listed in `calls` ("point:step,point:step").
Child run_child(const std::optional<std::string>& crash_at, const std::string& calls) {
  static int counter = 0;
  const auto out_path = std::filesystem::temp_directory_path() /
                        ("trainpp_crash_point_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
  std::vector<std::string> argument_strings{exe, std::string("--test-case=") + child_case, "--no-skip",
                                            "--no-version", "--no-intro"};
  std::vector<std::string> environment_strings;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string variable = *entry;
    const std::string name = variable.substr(0, variable.find('='));
    if (name != "TRAINPP_CRASH_AT" && name != calls_variable) environment_strings.push_back(variable);
  }
  if (crash_at) environment_strings.push_back("TRAINPP_CRASH_AT=" + *crash_at);
  environment_strings.push_back(std::string(calls_variable) + "=" + calls);
  std::vector<char*> argv, envp;
  for (auto& s : argument_strings) argv.push_back(s.data());
  for (auto& s : environment_strings) envp.push_back(s.data());
  argv.push_back(nullptr);
  envp.push_back(nullptr);
  const std::string out_string = out_path.string();

  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {  // only async-signal-safe calls from here to exec
    const int out = ::open(out_string.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0 || ::dup2(out, STDOUT_FILENO) < 0) ::_exit(125);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(125);
  }
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool ended = false;
  while (!(ended = ::waitpid(pid, &status, WNOHANG) == pid) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (!ended) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  Child child;
  std::ifstream in(out_path);
  child.out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  in.close();
  std::filesystem::remove(out_path);
  INFO("child output: " << child.out);
  REQUIRE_MESSAGE(ended, "the child process was still running after 60 s");
  child.exited = WIFEXITED(status);
  if (child.exited) child.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) child.signal = WTERMSIG(status);
  return child;
}

bool has_line(const std::string& text, const std::string& line) {
  std::stringstream lines(text);
  for (std::string l; std::getline(lines, l);)
    if (l == line) return true;
  return false;
}

TEST_CASE("crash_point: without TRAINPP_CRASH_AT the plan is empty and no point fires") {
  if (std::getenv("TRAINPP_CRASH_AT") != nullptr) TRAINPP_SKIP_TEST("TRAINPP_CRASH_AT is set for this process");
  const auto& plan = trainpp::detail::crash_plan();
  CHECK(plan.point.empty());
  CHECK(plan.step == -1);
  CHECK(&trainpp::detail::crash_plan() == &plan);  // parsed once, kept
  // Reaching a point must not kill the process: the test would end here if it did.
  for (const char* point : {"substep", "step", "checkpoint", "rotate"})
    for (std::int64_t step = 0; step < 4; ++step) trainpp::detail::crash_point(point, step);
  CHECK(plan.step == -1);
}

TEST_CASE("crash_point: TRAINPP_CRASH_AT=step:3 kills the process at that point and step only, output flushed" *
          doctest::test_suite("integration")) {
  const Child child = run_child("step:3", "step:2,substep:3,checkpoint:3,rotate:3,step:3,step:4");
  INFO("child output: " << child.out);
  CHECK_FALSE(child.exited);
  CHECK(child.signal == SIGKILL);
  CHECK(has_line(child.out, "plan 'step' 3"));
  for (const char* other : {"step:2", "substep:3", "checkpoint:3", "rotate:3"}) {
    CHECK(has_line(child.out, std::string("reached ") + other));
    CHECK(has_line(child.out, std::string("passed ") + other));
  }
  CHECK(has_line(child.out, "reached step:3"));  // printed just before the kill: flushed
  CHECK_FALSE(has_line(child.out, "passed step:3"));
  CHECK_FALSE(has_line(child.out, "reached step:4"));
}

TEST_CASE("crash_point: each point name is accepted and fires at its step" * doctest::test_suite("integration")) {
  struct Case {
    const char* value;
    const char* plan;
    const char* calls;
  };
  for (const Case& c : {Case{"substep:0", "plan 'substep' 0", "step:0,substep:1,substep:0"},
                        Case{"checkpoint:12", "plan 'checkpoint' 12", "rotate:12,checkpoint:11,checkpoint:12"},
                        Case{"rotate:10000000000", "plan 'rotate' 10000000000", "rotate:9999999999,rotate:10000000000"}}) {
    CAPTURE(c.value);
    const Child child = run_child(c.value, c.calls);
    INFO("child output: " << child.out);
    CHECK(child.signal == SIGKILL);
    CHECK(has_line(child.out, c.plan));
    const std::string calls = c.calls;
    const std::string last = calls.substr(calls.rfind(',') + 1);
    CHECK(has_line(child.out, "reached " + last));
    CHECK_FALSE(has_line(child.out, "passed " + last));
  }
}

TEST_CASE("crash_point: an empty TRAINPP_CRASH_AT plans no crash" * doctest::test_suite("integration")) {
  const Child child = run_child("", "substep:0,step:0,checkpoint:0,rotate:0,step:1");
  INFO("child output: " << child.out);
  CHECK(child.exited);
  CHECK(child.exit_code == 0);
  CHECK(has_line(child.out, "plan '' -1"));
  CHECK(has_line(child.out, "passed step:1"));
}

TEST_CASE("crash_point: a malformed TRAINPP_CRASH_AT is an Error that quotes it" * doctest::test_suite("integration")) {
  // A request for a crash that silently never happens would let a resume test pass for the wrong reason.
  for (const char* value : {"step", "step:", "step:x", "step:3x", "step:-1", "explode:3", ":3", "Step:3", "step:3:4"}) {
    CAPTURE(value);
    const Child child = run_child(value, "step:3");
    INFO("child output: " << child.out);
    CHECK(child.exited);
    CHECK(has_line(child.out, std::string("error TRAINPP_CRASH_AT must be <point>:<step> with point substep, step, "
                                          "checkpoint or rotate and a step >= 0, got '") + value + "'"));
    CHECK_FALSE(has_line(child.out, "reached step:3"));
  }
}

}  // namespace crash_point_test
