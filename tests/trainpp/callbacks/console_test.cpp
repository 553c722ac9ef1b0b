// What a person sees: the live progress line on a terminal (with the nested evaluation count), plain
// periodic lines elsewhere, nothing but the logs with disable_tqdm, and HF's PrinterCallback format.

#include <trainpp/callbacks/console.hpp>
#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include <unistd.h>

namespace console_test {

/// What `body` writes to stdout and stderr (file descriptors 1 and 2, so C stdio is caught too).
struct Output {
  std::string out, err;
};
Output capture(const std::function<void()>& body) {
  const auto dir = std::filesystem::temp_directory_path();
  const auto out_path = dir / fmt::format("trainpp-console-out-{}", ::getpid());
  const auto err_path = dir / fmt::format("trainpp-console-err-{}", ::getpid());
  std::fflush(stdout);
  std::fflush(stderr);
  const int saved_out = ::dup(1), saved_err = ::dup(2);
  FILE* out = std::fopen(out_path.c_str(), "w");
  FILE* err = std::fopen(err_path.c_str(), "w");
  ::dup2(::fileno(out), 1);
  ::dup2(::fileno(err), 2);
  body();
  std::fflush(stdout);
  std::fflush(stderr);
  ::dup2(saved_out, 1);
  ::dup2(saved_err, 2);
  ::close(saved_out);
  ::close(saved_err);
  std::fclose(out);
  std::fclose(err);
  auto slurp = [](const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    std::filesystem::remove(p);
    return s.str();
  };
  return {slurp(out_path), slurp(err_path)};
}

struct FakeTrainer {
  [[nodiscard]] std::size_t current_eval_batches() const { return 3; }
};

/// Drives a ConsoleProgress through a 4-step run with one log and one 3-batch evaluation.
Output drive(trainpp::ConsoleProgress progress, std::optional<bool> disable_tqdm) {
  return capture([&] {
    trainpp::TrainingArguments args;
    args.disable_tqdm = disable_tqdm;
    trainpp::TrainerState state;
    state.max_steps = 4;
    trainpp::TrainerControl control;
    FakeTrainer trainer;
    progress.on_train_begin(args, state, control);
    for (int step = 1; step <= 4; ++step) {
      state.global_step = step;
      progress.on_step_end(args, state, control);
      if (step == 2) {
        progress.on_log(args, state, control, nlohmann::json{{"loss", 0.123456}, {"epoch", 0.5}});
        for (int b = 0; b < 3; ++b) progress.on_prediction_step(args, state, control, trainer);
        progress.on_evaluate(args, state, control, trainpp::Metrics{{"eval_loss", 0.2}});
      }
    }
    progress.on_train_end(args, state, control);
  });
}

TEST_CASE("on a terminal: one live line, redrawn, with the nested evaluation count") {
  const auto o = drive(trainpp::ConsoleProgress(/*live=*/true), std::nullopt);
  CHECK(o.err.find("\r\033[2K") != std::string::npos);
  CHECK(o.err.find("100%|########################| 4/4 [") != std::string::npos);
  CHECK(o.err.find("it/s, loss=0.1235]") != std::string::npos);  // the latest logged loss
  CHECK(o.err.find("  eval 3/3") != std::string::npos);
  CHECK(o.out == "{'epoch': 0.5, 'loss': 0.1235}\n");
}

TEST_CASE("not on a terminal: plain progress lines beside the logs") {
  const auto o = drive(trainpp::ConsoleProgress(/*live=*/false, /*plain_interval_s=*/0.0), std::nullopt);
  CHECK(o.err.find('\r') == std::string::npos);
  CHECK(o.err.find("1/4 [") != std::string::npos);
  CHECK(o.err.find("4/4 [") != std::string::npos);
  CHECK(o.out == "{'epoch': 0.5, 'loss': 0.1235}\n");
}

TEST_CASE("disable_tqdm: the logs only, as HF's PrinterCallback") {
  const auto o = drive(trainpp::ConsoleProgress(std::nullopt, 0.0), true);
  CHECK(o.err.empty());
  CHECK(o.out == "{'epoch': 0.5, 'loss': 0.1235}\n");
}

TEST_CASE("Printer prints HF's format: floats as '.4g' strings, no total_flos") {
  const auto o = capture([] {
    trainpp::Printer printer;
    trainpp::TrainingArguments args;
    trainpp::TrainerState state;
    trainpp::TrainerControl control;
    printer.on_log(args, state, control,
                   nlohmann::json{{"train_loss", 0.98765}, {"total_flos", 1e9}, {"epoch", 2}, {"note", "x"}});
    state.is_local_process_zero = false;  // other processes print nothing
    printer.on_log(args, state, control, nlohmann::json{{"loss", 1.0}});
  });
  CHECK(o.out == "{'epoch': 2, 'note': 'x', 'train_loss': '0.9877'}\n");
}

}  // namespace console_test
