// The command line: HF's flag names and value forms, a JSON arguments file, and clear errors.

#include <trainpp/cli.hpp>
#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <unistd.h>

namespace cli_test {

using trainpp::TrainingArguments;
using namespace std::string_literals;

TrainingArguments parse(std::vector<std::string> argv) {
  return std::get<0>(trainpp::parse_args_into<TrainingArguments>(argv));
}

TEST_CASE("an HF command line carries over") {
  const auto a = parse({"--learning_rate", "2e-5", "--num_train_epochs", "3", "--output_dir", "out", "--do_train",
                        "--eval_strategy", "steps", "--eval_steps", "100", "--lr_scheduler_type", "cosine",
                        "--lr_scheduler_kwargs", R"({"num_cycles": 2})", "--label_names", "start", "end",
                        "--no_dataloader_pin_memory", "--warmup_steps=0.1", "--max_grad_norm", "0",
                        "--logging_first_step", "false", "--data_seed", "7", "--optim", "sgd"});
  CHECK(a.learning_rate == 2e-5);
  CHECK(a.num_train_epochs == 3);
  CHECK(a.output_dir == "out");
  CHECK(a.do_train);
  CHECK(a.eval_strategy == trainpp::IntervalStrategy::steps);
  CHECK(*a.eval_steps == 100);
  CHECK(a.lr_scheduler_type == trainpp::SchedulerType::cosine);
  CHECK(a.lr_scheduler_kwargs["num_cycles"] == 2);
  CHECK(a.label_names == std::vector<std::string>{"start", "end"});
  CHECK_FALSE(a.dataloader_pin_memory);
  CHECK(a.warmup_steps == 0.1);
  CHECK(a.max_grad_norm == 0);
  CHECK_FALSE(a.logging_first_step);
  CHECK(*a.data_seed == 7);
  CHECK(a.optim == trainpp::OptimizerName::sgd);
}

TEST_CASE("HF's defaults and derived values") {
  const auto a = parse({"--eval_strategy", "steps", "--logging_steps", "50", "--load_best_model_at_end",
                        "--save_steps", "100"});
  CHECK(a.per_device_train_batch_size == 8);
  CHECK(a.learning_rate == 5e-5);
  CHECK(a.optim == trainpp::OptimizerName::adamw_torch_fused);
  CHECK(*a.eval_steps == 50);                        // falls back to logging_steps
  CHECK(*a.metric_for_best_model == "loss");         // load_best_model_at_end's default metric
  CHECK_FALSE(*a.greater_is_better);                 // a loss: lower is better
  CHECK(a.output_dir == "trainer_output");
}

TEST_CASE("bad flags and values name the problem") {
  CHECK_THROWS_WITH_AS(parse({"--learning_rat", "1"}), doctest::Contains("did you mean --learning_rate?"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--learning_rate", "fast"}), doctest::Contains("argument --learning_rate: invalid float value: 'fast'"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--max_steps", "1.5"}), doctest::Contains("invalid int value"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--eval_strategy", "often"}), doctest::Contains("choose from no, steps, epoch"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--seed"}), doctest::Contains("--seed: expected a value"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--lr_scheduler_kwargs", "{num_cycles: 2}"}), doctest::Contains("invalid JSON value"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"extra"}), doctest::Contains("unexpected argument 'extra'"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--per_device_train_batch_size", "0"}), doctest::Contains("must be a positive number"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--bf16", "--fp16"}), doctest::Contains("fp16 and bf16"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--do_train", "maybe"}), doctest::Contains("unexpected argument 'maybe'"), trainpp::Error);
}

TEST_CASE("a JSON arguments file, with the command line winning") {
  const auto path = std::filesystem::temp_directory_path() / "trainpp_cli_test_args.json";
  {
    std::ofstream f(path);
    f << R"({"learning_rate": 0.001, "num_train_epochs": 2, "label_names": ["y"], "eval_strategy": "epoch"})";
  }
  const auto a = parse({path.string(), "--num_train_epochs", "4"});
  CHECK(a.learning_rate == 0.001);
  CHECK(a.num_train_epochs == 4);
  CHECK(a.label_names == std::vector<std::string>{"y"});
  CHECK(a.eval_strategy == trainpp::IntervalStrategy::epoch);
  {
    std::ofstream f(path);
    f << R"({"learning_rate": "high"})";
  }
  CHECK_THROWS_WITH_AS(parse({path.string()}), doctest::Contains("expected a number"), trainpp::Error);
  {
    std::ofstream f(path);
    f << R"({"learning_rate": 0.1,)";
  }
  CHECK_THROWS_WITH_AS(parse({path.string()}), doctest::Contains("not valid JSON"), trainpp::Error);
  std::filesystem::remove(path);
}

TEST_CASE("values that are not quite numbers are refused") {
  // Python's int() and float() refuse these too; std::stod would read a prefix, hex or inf.
  for (const char* text : {"", " 5", "5 ", "0x10", "5e", "1_000", "1,5", "--", "+-1", "++1", "5\n"}) {
    CAPTURE(text);
    CHECK_THROWS_WITH_AS(parse({"--seed", text}), doctest::Contains("argument --seed: invalid int value"), trainpp::Error);
  }
  for (const char* text : {"", " 1e-3", "1e-3 ", "0x1p3", "inf", "-inf", "nan", "Infinity", "1e-3x", ".", "e5"}) {
    CAPTURE(text);
    CHECK_THROWS_WITH_AS(parse({"--learning_rate", text}), doctest::Contains("argument --learning_rate: invalid float value"),
                         trainpp::Error);
  }
  CHECK_THROWS_WITH_AS(parse({"--seed", "9223372036854775808"}), doctest::Contains("int value out of range: '9223372036854775808'"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--learning_rate", "1e400"}), doctest::Contains("float value out of range: '1e400'"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--eval_steps", "nan"}), doctest::Contains("argument --eval_steps: invalid float value: 'nan'"),
                       trainpp::Error);
  // What Python accepts stays accepted.
  CHECK(parse({"--seed", "+7"}).seed == 7);
  CHECK(parse({"--seed", "-7"}).seed == -7);
  CHECK(parse({"--learning_rate", ".5"}).learning_rate == 0.5);
  CHECK(parse({"--learning_rate", "+1E-3"}).learning_rate == 1e-3);
  CHECK(parse({"--seed", "9223372036854775807"}).seed == INT64_MAX);
}

TEST_CASE("malformed flags name the flag and the problem") {
  CHECK_THROWS_WITH_AS(parse({"--"}), doctest::Contains("unexpected argument '--'"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"-x"}), doctest::Contains("unexpected argument '-x'"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--=3"}), doctest::Contains("unexpected argument '--=3'"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--seed="}), doctest::Contains("argument --seed: invalid int value: ''"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--do_train=maybe"}), doctest::Contains("argument --do_train: invalid bool value: 'maybe'"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--do_train="}), doctest::Contains("invalid bool value: ''"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--no_dataloader_pin_memory=true"}),
                       doctest::Contains("argument --no_dataloader_pin_memory: ignored explicit argument 'true'"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--no_do_train"}), doctest::Contains("did you mean --do_train?"), trainpp::Error);
  // A list flag's = form carries one value; a second word after it is a stray positional, as with argparse.
  CHECK(parse({"--label_names=y"}).label_names == std::vector<std::string>{"y"});
  CHECK_THROWS_WITH_AS(parse({"--label_names=a", "b"}), doctest::Contains("unexpected argument 'b'"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--label_names="}), doctest::Contains("argument --label_names: invalid value: ''"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--label_names", "a", ""}), doctest::Contains("list items must not be empty"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--label_names", "--seed", "1"}), doctest::Contains("--label_names: expected at least one value"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--seed", "1", "args.json"}), doctest::Contains("an arguments file must come first"), trainpp::Error);
  // The same flag twice: the last wins, as with argparse.
  CHECK(parse({"--seed", "1", "--seed", "2"}).seed == 2);
}

TEST_CASE("strings that no setting can hold are refused") {
  CHECK_THROWS_WITH_AS(parse({"--output_dir", "out\xff"}), doctest::Contains("argument --output_dir: invalid str value: 'out\\xff' is not valid UTF-8"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--run_name", "\xc0\xaf"}), doctest::Contains("not valid UTF-8"), trainpp::Error);  // overlong '/'
  CHECK_THROWS_WITH_AS(parse({"--run_name", "\xed\xa0\x80"}), doctest::Contains("not valid UTF-8"), trainpp::Error);  // a surrogate
  CHECK_THROWS_WITH_AS(parse({"--label_names", "ok", "\xfe"}), doctest::Contains("--label_names: invalid str value"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--output_dir", std::string("a\0b", 3)}), doctest::Contains("holds a NUL byte"), trainpp::Error);
  CHECK(parse({"--run_name", "\xc3\xa9t\xc3\xa9 \xf0\x9f\x9a\x80"}).run_name == "\xc3\xa9t\xc3\xa9 \xf0\x9f\x9a\x80");
  // A megabyte-long token gives a short message, and quickly.
  const std::string huge(1 << 20, 'x');
  for (const auto& argv : {std::vector<std::string>{"--" + huge}, {"--seed", huge}, {"--learning_rate", huge}, {huge}}) {
    try {
      (void)parse(argv);
      FAIL("accepted");
    } catch (const trainpp::Error& e) {
      CHECK(std::string_view(e.what()).size() < 300);
    }
  }
}

TEST_CASE("a JSON arguments file is read strictly") {
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("trainpp_cli_test_strict_{}", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto file_with = [&](std::string_view text) {
    const auto path = dir / "args.json";
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    return path.string();
  };
  auto refused = [&](std::string_view text, std::string_view message) {
    CAPTURE(text);
    CHECK_THROWS_WITH_AS(parse({file_with(text)}), doctest::Contains(doctest::String(message.data(), static_cast<unsigned>(message.size()))),
                         trainpp::Error);
  };
  refused(R"({"seed": 1, "seed": 2})", "duplicate key \"seed\"");
  refused(R"({"seed": 18446744073709551615})", "argument 'seed': expected an integer from -9223372036854775808 to 9223372036854775807");
  refused(R"({"seed": 9223372036854775808})", "expected an integer from");
  refused(R"({"seed": 1e30})", "argument 'seed': expected an integer, got 1e+30");
  refused(R"({"seed": 3.0})", "argument 'seed': expected an integer");
  refused(R"({"seed": true})", "argument 'seed': expected an integer, got true");
  refused(R"({"learning_rate": 1e999})", "number overflow parsing '1e999'");
  refused(R"({"learning_rate": -1e400})", "number overflow parsing '-1e400'");
  refused(R"({"output_dir": "a\u0000b"})", "argument --output_dir: invalid str value: 'a\\x00b' holds a NUL byte");
  refused("{\"output_dir\": \"a\0b\"}"s, "a NUL byte at offset 17");
  refused(R"({"label_names": ["a", 1]})", "argument 'label_names': expected a list of strings");
  refused(R"({"label_names": [""]})", "expected a list of non-empty strings");
  refused(R"({"eval_strategy": 1})", "argument 'eval_strategy': expected one of no, steps, epoch");
  refused(R"({"eval_strategy": "sometimes"})", "invalid choice: 'sometimes' (choose from no, steps, epoch)");
  refused(R"({"lerning_rate": 0.1})", "unrecognized key \"lerning_rate\" (did you mean \"learning_rate\"?)");
  refused(R"({"zzzzzzzzzzzzzzzzzzzz": 0.1})", "unrecognized key \"zzzzzzzzzzzzzzzzzzzz\" (see --help)");
  refused(R"([{"seed": 1}])", "must hold a JSON object, got array");
  refused("3", "must hold a JSON object, got number");
  refused(R"("seed")", "must hold a JSON object, got string");
  refused("", "not valid JSON");
  refused(std::string(100, '[') + std::string(100, ']'), "nested deeper than");
  refused(R"({"lr_scheduler_kwargs": {"a": 1, "a": 2}})", "duplicate key \"a\"");
  refused(R"({"lr_scheduler_kwargs": "{\"a\": 1, \"a\": 2}"})", "duplicate key");
  refused(R"({"lr_scheduler_kwargs": [1]})", "argument 'lr_scheduler_kwargs': expected a JSON object");
  refused("{\"run_name\": \"\xff\"}", "not valid JSON");
  refused(R"({"max_steps": 0})", "max_steps must be a positive number");
  // Every refusal names the file.
  const std::string path = file_with(R"({"seed": "1"})");
  CHECK_THROWS_WITH_AS(parse({path}), doctest::Contains(("the arguments file " + path + ": argument 'seed'").c_str()), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({(dir / "missing.json").string()}), doctest::Contains("missing.json: No such file"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({dir.string() + "/"}), doctest::Contains("unexpected argument"), trainpp::Error);
  std::filesystem::create_directories(dir / "folder.json");
  CHECK_THROWS_WITH_AS(parse({(dir / "folder.json").string()}), doctest::Contains("folder.json"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({(dir / "args.txt").string()}), doctest::Contains("unexpected argument"), trainpp::Error);
  // A device would never end.
  std::filesystem::create_symlink("/dev/zero", dir / "endless.json");
  CHECK_THROWS_WITH_AS(parse({(dir / "endless.json").string()}), doctest::Contains("endless.json is not a regular file"), trainpp::Error);
  // Values a file may legitimately hold.
  const auto a = parse({file_with(R"({"seed": 9223372036854775807, "learning_rate": 1, "label_names": "y", "data_seed": null,
                                     "lr_scheduler_kwargs": "{\"num_cycles\": 2}", "report_to": []})")});
  CHECK(a.seed == INT64_MAX);
  CHECK(a.learning_rate == 1.0);
  CHECK(a.label_names == std::vector<std::string>{"y"});
  CHECK_FALSE(a.data_seed.has_value());
  CHECK(a.lr_scheduler_kwargs["num_cycles"] == 2);
  CHECK(a.report_to.empty());
  std::filesystem::remove_all(dir);
}

struct MyArgs {
  std::string data_dir = "data";
  int64_t hidden = 16;
};
template <class V>
void visit_fields(MyArgs& a, V&& v) {
  v(trainpp::FieldInfo{"data_dir", "where the data is"}, a.data_dir);
  v(trainpp::FieldInfo{"hidden", "hidden width"}, a.hidden);
}

TEST_CASE("a user's own argument struct parses beside TrainingArguments") {
  auto [mine, args] = trainpp::parse_args_into<MyArgs, TrainingArguments>({"--hidden", "64", "--seed", "3"});
  CHECK(mine.hidden == 64);
  CHECK(mine.data_dir == "data");
  CHECK(args.seed == 3);
}

struct Clash {
  std::int64_t seed = 1;
};
template <class V>
void visit_fields(Clash& a, V&& v) {
  v(trainpp::FieldInfo{"seed", "a second seed"}, a.seed);
}

TEST_CASE("two argument structs declaring the same flag are refused") {
  CHECK_THROWS_WITH_AS((trainpp::parse_args_into<Clash, TrainingArguments>({})), doctest::Contains("argument --seed is declared twice"),
                       trainpp::Error);
}

TEST_CASE("--help lists the arguments and asks to exit") {
  CHECK_THROWS_AS(parse({"--help"}), trainpp::HelpRequested);
  CHECK_THROWS_AS(parse({"--learning_rat", "1", "-h"}), trainpp::HelpRequested);
}

/// The lines of `text` that list a flag: "  --name ...".
std::vector<std::string> flag_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("  --")) lines.push_back(line);
  return lines;
}

TEST_CASE("--help lists every argument once, grouped, with type, default and help") {
  MyArgs mine;
  mine.hidden = 32;
  const std::string text = trainpp::help_text("train", std::tuple<MyArgs, TrainingArguments>{mine, TrainingArguments{}});
  CHECK(text.starts_with("usage: train [args.json]"));
  std::vector<std::string> names;
  TrainingArguments probe;
  trainpp::visit_fields(probe, [&](const trainpp::FieldInfo& f, auto&) { names.emplace_back(f.name); });
  names.insert(names.end(), {"data_dir", "hidden"});
  for (const auto& a : trainpp::unimplemented_arguments) names.emplace_back(a.name);  // listed with the reason
  const auto lines = flag_lines(text);
  CHECK(lines.size() == names.size());
  for (const auto& name : names) {
    CAPTURE(name);
    const auto listed = std::ranges::count_if(lines, [&](const std::string& l) { return l.starts_with("  --" + name + " "); });
    CHECK(listed == 1);
    const auto at = text.find("  --" + name + " ");
    REQUIRE(at != std::string::npos);
    const auto end = text.find('\n', at);
    CHECK(text.substr(at, end - at).find("(default: ") != std::string::npos);
    // The help line follows, indented.
    CHECK(text.substr(end + 1, 6) == "      ");
    CHECK(text.find('\n', end + 1) > end + 8);
  }
  for (const char* group : {"\noutput:\n", "\nbatches:\n", "\noptimizer:\n", "\nschedule:\n", "\nlogging:\n",
                            "\nevaluation:\n", "\nsaving:\n", "\nreproducibility:\n", "\ndevice:\n", "\ndata:\n",
                            "\narguments:\n"}) {
    CAPTURE(group);
    const auto first = text.find(group);
    CHECK(first != std::string::npos);
    CHECK(text.find(group, first + 1) == std::string::npos);  // each group once, its fields together
  }
  // Each flag sits under its own group's heading.
  CHECK(text.find("\noptimizer:\n") < text.find("  --learning_rate "));
  CHECK(text.find("  --learning_rate ") < text.find("\nschedule:\n"));
  CHECK(text.find("\narguments:\n") < text.find("  --hidden "));
  CHECK(text.find("float (default: 5e-05)") != std::string::npos);
  CHECK(text.find("{no, steps, epoch} (default: \"no\")") != std::string::npos);
  CHECK(text.find("{linear, cosine, cosine_with_restarts,") != std::string::npos);
  CHECK(text.find("int (optional) (default: null)") != std::string::npos);
  CHECK(text.find("bool, --no_dataloader_pin_memory for false (default: true)") != std::string::npos);
  CHECK(text.find("--hidden                           int (default: 32)") != std::string::npos);  // the given defaults
  CHECK(text.find("where the data is") != std::string::npos);
}

TEST_CASE("training_args.json round-trips through the parser") {
  auto a = parse({"--learning_rate", "0.3", "--label_names", "a", "b", "--eval_strategy", "epoch"});
  const auto j = trainpp::args_json(a);
  CHECK(j["learning_rate"] == 0.3);
  CHECK(j["eval_strategy"] == "epoch");
  CHECK(j["resume_from_checkpoint"].is_null());
  const auto path = std::filesystem::temp_directory_path() / "trainpp_cli_roundtrip.json";
  std::ofstream(path) << j.dump();
  const auto b = parse({path.string()});
  CHECK(trainpp::args_json(b) == j);
  std::filesystem::remove(path);
}

TEST_CASE("hyphenated flags are HfArgumentParser's second spelling") {
  const auto underscored = parse({"--per_device_train_batch_size", "16", "--learning_rate=0.1", "--no_log_on_each_node",
                                  "--label_names", "a", "b", "--do_train"});
  const auto hyphenated = parse({"--per-device-train-batch-size", "16", "--learning-rate=0.1", "--no-log-on-each-node",
                                 "--label-names", "a", "b", "--do-train"});
  CHECK(hyphenated.per_device_train_batch_size == 16);
  CHECK_FALSE(hyphenated.log_on_each_node);
  CHECK(trainpp::args_json(hyphenated) == trainpp::args_json(underscored));
  // A name mixing both is neither spelling, as with argparse; the message names the flag as given.
  CHECK_THROWS_WITH_AS(parse({"--per-device_train_batch_size", "16"}),
                       doctest::Contains("unrecognized argument: --per-device_train_batch_size (did you mean --per_device_train_batch_size?)"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--learning-rat", "1"}), doctest::Contains("unrecognized argument: --learning-rat (did you mean --learning_rate?)"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--seed-", "1"}), doctest::Contains("unrecognized argument: --seed-"), trainpp::Error);
  // Values are untouched: a hyphen in a value stays.
  CHECK(parse({"--run-name", "a-b_c"}).run_name == "a-b_c");
}

/// Writes `text` to a file of that name in a fresh temporary folder; removes the folder at the end.
struct ArgumentsFile {
  std::filesystem::path dir;
  std::string path;
  ArgumentsFile(std::string_view name, std::string_view text)
      : dir(std::filesystem::temp_directory_path() / fmt::format("trainpp_cli_test_yaml_{}", ::getpid())) {
    std::filesystem::create_directories(dir);
    path = (dir / name).string();
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  }
  ~ArgumentsFile() { std::filesystem::remove_all(dir); }
};

TEST_CASE("a YAML arguments file, as HfArgumentParser.parse_yaml_file reads it") {
  const ArgumentsFile file("args.yaml", R"(# a comment line
---
output_dir: out/yaml   # a trailing comment
learning_rate: 5e-5
num_train_epochs: 2
do_train: yes
eval_strategy: no            # the choice "no", not false
save_strategy: 'epoch'
label_names:
  - start
  - end
report_to: [tensorboard, "jsonl"]
lr_scheduler_kwargs:
  num_cycles: 2
  note: "a # b"
run_name: "caf\u00e9 # not a comment"
data_seed: ~
seed: 7
)");
  const auto a = parse({file.path, "--seed", "9"});
  CHECK(a.output_dir == "out/yaml");
  CHECK(a.learning_rate == 5e-5);
  CHECK(a.num_train_epochs == 2);
  CHECK(a.do_train);
  CHECK(a.eval_strategy == trainpp::IntervalStrategy::no);
  CHECK(a.save_strategy == trainpp::SaveStrategy::epoch);
  CHECK(a.label_names == std::vector<std::string>{"start", "end"});
  CHECK(a.report_to == std::vector<std::string>{"tensorboard", "jsonl"});
  CHECK(a.lr_scheduler_kwargs == nlohmann::json{{"num_cycles", 2}, {"note", "a # b"}});
  CHECK(a.run_name == "caf\xc3\xa9 # not a comment");
  CHECK_FALSE(a.data_seed.has_value());
  CHECK(a.seed == 9);  // the command line wins
  // .yml too, and flow mappings, and a block list at the key's own indentation.
  const ArgumentsFile yml("args.yml", "{learning_rate: 0.5, label_names: [y]}\n");
  CHECK(parse({yml.path}).learning_rate == 0.5);
  const ArgumentsFile same_indent("same.yaml", "report_to:\n- jsonl\n- curves\nseed: 3\n");
  CHECK(parse({same_indent.path}).report_to == std::vector<std::string>{"jsonl", "curves"});
  CHECK(parse({same_indent.path}).seed == 3);
}

TEST_CASE("a YAML arguments file is read strictly, each refusal naming the line") {
  auto refused = [](std::string_view text, std::string_view message) {
    CAPTURE(text);
    const ArgumentsFile file("args.yaml", text);
    CHECK_THROWS_WITH_AS(parse({file.path}), doctest::Contains(doctest::String(message.data(), static_cast<unsigned>(message.size()))),
                         trainpp::Error);
  };
  refused("lerning_rate: 0.1\n", "unrecognized key \"lerning_rate\" (did you mean \"learning_rate\"?)");
  refused("seed: 1\nzzzzzzzzzzzzzzzzzzzz: 2\n", "unrecognized key \"zzzzzzzzzzzzzzzzzzzz\" (see --help)");
  refused("seed: 1\nlearning_rate: fast\n", "args.yaml: line 2: argument --learning_rate: invalid float value: 'fast'");
  refused("seed: 1\nseed: 2\n", "line 2: duplicate key \"seed\"");
  refused("seed: '1'\n", "line 1: argument 'seed': expected an integer, got \"1\"");  // quoted: a string, as in JSON
  refused("label_names:\n  - a\n  - [b]\n", "argument 'label_names': expected a list of strings");
  refused("eval_strategy: sometimes\n", "invalid choice: 'sometimes' (choose from no, steps, epoch)");
  refused("output_dir:\n\tout\n", "line 2: a tab in the indentation");
  refused("output_dir: &dir out\n", "line 1: anchors and aliases are not read");
  refused("output_dir: !!str out\n", "line 1: tags are not read");
  refused("run_name: |\n  text\n", "line 1: block scalars (| and >) are not read");
  refused("- seed\n- 1\n", "must hold a mapping of argument names to values, got a list");
  refused("just text\n", "must hold a mapping of argument names to values, got 'just text'");
  refused("", "holds no arguments");
  refused("# only a comment\n", "holds no arguments");
  refused("seed: 1\n---\nseed: 2\n", "line 2: a second document");
  refused("run_name: \"open\n", "line 1: a quoted value that does not close on its line");
  refused("report_to: [jsonl,\n", "line 1: a '[' that is not closed");
  refused("seed: 1\n  learning_rate: 2\n", "line 2: unexpected indentation");
  refused("run_name: a: b\n", "line 1: a value holding ': ' must be quoted");
  refused("run_name: \"\\q\"\n", "unknown escape '\\q'");
  refused("seed: 1\nrun_name: \"a\\u0000b\"\n", "line 2: argument --run_name: invalid str value: 'a\\x00b' holds a NUL byte");
  refused("output_dir: out\x00x\n"s, "a NUL byte at offset 15");
  refused("max_steps: 0\n", "max_steps must be a positive number");  // validation as for any other source
  refused(std::string(100, '[') + std::string(100, ']'), "got a list");
  refused("report_to: " + std::string(100, '[') + std::string(100, ']') + "\n", "nested deeper than 64 levels");
  // A YAML file anywhere but first is a stray word, as a JSON one.
  CHECK_THROWS_WITH_AS(parse({"--seed", "1", "args.yaml"}), doctest::Contains("an arguments file must come first"), trainpp::Error);
}

}  // namespace cli_test
