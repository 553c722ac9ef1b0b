// transformers' TrainingArguments fields that trainpp does not implement: the values that say what
// trainpp does are accepted from the command line and from files, any other is refused with the reason;
// together with TrainingArguments they cover every field of transformers' dataclass, so HF's own
// training_args.json loads; docs/arguments.md is generated from the code.

#include <trainpp/args/unimplemented.hpp>
#include <trainpp/cli.hpp>

#include "skip.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace unimplemented_test {

namespace fs = std::filesystem;

std::string message_of(const std::vector<std::string>& argv) {
  try {
    (void)trainpp::parse_args_into<trainpp::TrainingArguments>(argv);
  } catch (const trainpp::Error& e) {
    return e.what();
  }
  return "<no error>";
}

// The command-line text of an accepted JSON value: strings bare, the rest as JSON.
std::string as_text(const nlohmann::json& value) { return value.is_string() ? value.get<std::string>() : value.dump(); }

TEST_CASE("an unimplemented argument takes what trainpp does, and refuses the rest with the reason") {
  const fs::path dir = fs::temp_directory_path() / fmt::format("trainpp-unimplemented-{}-{}", ::getpid(), std::random_device{}());
  fs::create_directories(dir);
  for (const auto& a : trainpp::unimplemented_arguments) {
    CAPTURE(a.name);
    const std::string flag = "--" + std::string(a.name);
    const auto accepted = trainpp::detail::accepted_values(a);
    for (const auto& value : accepted) {
      CAPTURE(value.dump());
      // In an arguments file (HF's training_args.json), every accepted value.
      const auto file = dir / "args.json";
      trainpp::write_file_atomic(file, nlohmann::json{{a.name, value}}.dump());
      CHECK(message_of({file.string()}) == "<no error>");
      // On the command line, those a command line can say (a boolean flag takes booleans only).
      if (a.is_list || (a.is_bool && !value.is_boolean())) continue;
      CHECK(message_of({flag, as_text(value)}) == "<no error>");
      CHECK(message_of({flag + "=" + as_text(value)}) == "<no error>");
    }
    // A value trainpp would not honour: the reason, not "unrecognized argument".
    std::string refused = "something-else";
    if (a.is_bool) {
      const bool takes_true = std::ranges::count(accepted, nlohmann::json(true)) > 0;
      const bool takes_false = std::ranges::count(accepted, nlohmann::json(false)) > 0;
      if (takes_true && takes_false) continue;  // both hold (remove_unused_columns)
      refused = takes_true ? "false" : "true";
    }
    const auto message = message_of({flag, refused});
    CHECK_MESSAGE(message.find("argument " + flag + ": ") == 0, message);
    CHECK_MESSAGE(message.find(std::string(a.reason)) != std::string::npos, message);
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  // The spellings trainpp's own flags have: bare, negated, hyphenated, lists.
  CHECK(message_of({"--torch_compile"}).find("LibTorch has no TorchDynamo") != std::string::npos);
  CHECK(message_of({"--torch-compile", "false"}) == "<no error>");
  CHECK(message_of({"--no_eval_do_concat_batches"}).find("always concatenates") != std::string::npos);
  CHECK(message_of({"--include_for_metrics", "inputs", "loss"}).find("passing inputs or losses") != std::string::npos);
  CHECK(message_of({"--neftune_noise_alpha", "null"}) == "<no error>");
  CHECK(message_of({"--neftune_noise_alpha", "5"}).find("NEFTune is not built in yet") != std::string::npos);
  // A typo near one of them is still a typo, with the suggestion.
  CHECK(message_of({"--torch_compil", "true"}).find("did you mean --torch_compile?") != std::string::npos);
  // --help lists them under their own heading, with the reason.
  const auto help = trainpp::help_text<trainpp::TrainingArguments>("program");
  CHECK(help.find("transformers arguments trainpp does not implement:") != std::string::npos);
  CHECK(help.find("--push_to_hub") != std::string::npos);
}

// A program's own arguments that implement one of transformers' fields trainpp does not.
struct Mine {
  double neftune_noise_alpha = 0.0;
};
template <class V>
void visit_fields(Mine& m, V&& v) {
  v(trainpp::FieldInfo{"neftune_noise_alpha", "mine"}, m.neftune_noise_alpha);
}

TEST_CASE("a program's own struct may implement one of transformers' fields itself") {
  auto [mine, args] = trainpp::parse_args_into<Mine, trainpp::TrainingArguments>({"--neftune_noise_alpha", "0.2"});
  CHECK(mine.neftune_noise_alpha == 0.2);
}

TEST_CASE("with TrainingArguments they cover every field of transformers' TrainingArguments, whose "
          "training_args.json loads" * doctest::test_suite("integration")) {
#ifndef TRAINPP_PYTHON
  TRAINPP_SKIP_TEST("needs a Python interpreter");
#else
  const fs::path dir = fs::temp_directory_path() / fmt::format("trainpp-unimplemented-{}-{}", ::getpid(), std::random_device{}());
  fs::create_directories(dir);
  const auto script = dir / "hf.py";
  std::ofstream(script) << "import dataclasses, json, sys\n"
                           "from transformers import TrainingArguments\n"
                           "names = [f.name for f in dataclasses.fields(TrainingArguments) if f.init]\n"
                           "json.dump(names, open(sys.argv[1] + '/fields.json', 'w'))\n"
                           "args = TrainingArguments(output_dir=sys.argv[1] + '/out', report_to='none')\n"
                           "open(sys.argv[1] + '/training_args.json', 'w').write(args.to_json_string())\n";
  const auto command = fmt::format("'{}' '{}' '{}' 2>/dev/null", TRAINPP_PYTHON, script.string(), dir.string());
  const int status = std::system(command.c_str());
  if (WIFEXITED(status) && WEXITSTATUS(status) == 1) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    TRAINPP_SKIP_TEST("transformers cannot be imported");
  }
  REQUIRE((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  std::tuple<trainpp::TrainingArguments> structs;
  std::set<std::string> ours;
  for (const auto& f : trainpp::detail::cli_fields(structs)) ours.insert(f.name);
  std::set<std::string> theirs;
  for (const auto& name : trainpp::read_json_file(dir / "fields.json")) theirs.insert(name.get<std::string>());
  for (const auto& name : theirs) {
    CAPTURE(name);
    CHECK(ours.contains(name));  // a new transformers field must be implemented or listed
  }
  for (const auto& a : trainpp::unimplemented_arguments) {
    CAPTURE(a.name);
    CHECK(theirs.contains(std::string(a.name)));  // no stale entries
  }
  // HF's own file, every field in it, loads as it is.
  const auto loaded = message_of({(dir / "training_args.json").string()});
  CHECK_MESSAGE(loaded == "<no error>", loaded);
  std::error_code ec;
  fs::remove_all(dir, ec);
#endif
}

TEST_CASE("docs/arguments.md is generated from the code") {
  const fs::path path = fs::path(TRAINPP_SOURCE_DIR) / "docs/arguments.md";
  const std::string expected = trainpp::arguments_reference_markdown();
  if (const char* write = std::getenv("TRAINPP_WRITE_DOCS"); write && std::string(write) == "1")
    trainpp::write_file_atomic(path, expected);
  std::string actual;
  if (fs::exists(path)) actual = trainpp::read_file(path);
  CHECK_MESSAGE(actual == expected,
                "docs/arguments.md is stale: run this test with TRAINPP_WRITE_DOCS=1 to rewrite it from the code");
  CHECK(expected.find("| `--torch_compile` |") != std::string::npos);
  CHECK(expected.find("| `--learning_rate` |") != std::string::npos);
}

}  // namespace unimplemented_test
