// TrainingArguments: every field declared once reaches the command line (both spellings), --help,
// training_args.json and a YAML arguments file; validate() is the one check; HF's --local_rank and
// transformers 4's --warmup_ratio.

#include <trainpp/args.hpp>
#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <unistd.h>

namespace args_test {

using trainpp::TrainingArguments;

TrainingArguments parse(const std::vector<std::string>& argv) {
  return std::get<0>(trainpp::parse_args_into<TrainingArguments>(argv));
}

/// Sets an environment variable for one scope (unset: nullopt), and puts it back afterwards.
struct EnvVar {
  std::string name;
  std::optional<std::string> old;
  EnvVar(std::string n, std::optional<std::string> value) : name(std::move(n)) {
    if (const char* v = std::getenv(name.c_str())) old = v;
    if (value) ::setenv(name.c_str(), value->c_str(), 1);
    else ::unsetenv(name.c_str());
  }
  EnvVar(const EnvVar&) = delete;
  EnvVar& operator=(const EnvVar&) = delete;
  ~EnvVar() {
    if (old) ::setenv(name.c_str(), old->c_str(), 1);
    else ::unsetenv(name.c_str());
  }
};

/// No launcher in the environment, whatever the test runner was started by.
struct NoLauncher {
  EnvVar rank{"RANK", std::nullopt}, world{"WORLD_SIZE", std::nullopt}, local{"LOCAL_RANK", std::nullopt},
      local_world{"LOCAL_WORLD_SIZE", std::nullopt}, slurm{"SLURM_STEP_NUM_TASKS", std::nullopt},
      mpi{"OMPI_COMM_WORLD_SIZE", std::nullopt};
};

/// Captures the logger's messages for one scope.
struct Captured {
  trainpp::ScopedLoggerState restore;
  std::vector<std::string> messages;
  Captured() {
    trainpp::logger().set_sink([this](trainpp::LogLevel, std::string_view text) { messages.emplace_back(text); });
  }
  [[nodiscard]] bool has(std::string_view needle) const {
    for (const auto& m : messages)
      if (m.find(needle) != std::string::npos) return true;
    return false;
  }
};

/// A value of one field other than its default, as command-line words and as training_args.json
/// holds it, with the other flags it needs to be valid.
struct NonDefault {
  std::vector<std::string> words;
  nlohmann::json expected;
  std::vector<std::string> context = {};
};

template <class T> struct unwrap { using type = T; };
template <class T> struct unwrap<std::optional<T>> { using type = T; };

/// A non-default value for every field, by type, except where the field's own rules want another.
/// A new field of a type below needs nothing here; one whose generated value is refused makes the
/// test below fail until it gets an entry in `special`.
std::map<std::string, NonDefault> non_default_values() {
  const std::map<std::string, NonDefault> special{
      {"fsdp", {{"full_shard"}, "full_shard"}},
      {"fsdp_config", {{"{}"}, "{}"}},
      {"deepspeed", {{"{}"}, "{}"}},
      {"ddp_backend", {{"gloo"}, "gloo"}},
      {"report_to", {{"tensorboard", "jsonl"}, {"tensorboard", "jsonl"}}},
      {"local_rank", {{"0"}, 0}},  // the only local rank a process without a launcher has
      // Kept as given only where warmup_steps cannot say the same (see the warmup_ratio test).
      {"warmup_ratio", {{"1"}, 1.0}},
      {"dataloader_prefetch_factor", {{"3"}, 3, {"--dataloader_num_workers", "1"}}},
      {"dataloader_persistent_workers", {{"true"}, true, {"--dataloader_num_workers", "1"}}},
      {"load_best_model_at_end", {{"true"}, true, {"--eval_strategy", "steps"}}},
      {"lr_scheduler_type", {{"cosine"}, "cosine"}},
      {"optim_args", {{"momentum=0.9"}, "momentum=0.9", {"--optim", "sgd"}}},  // what the optimizer reads
  };
  std::map<std::string, NonDefault> values;
  TrainingArguments defaults;
  trainpp::visit_fields(defaults, [&](const trainpp::FieldInfo& info, auto& value) {
    using Field = std::remove_cvref_t<decltype(value)>;
    using T = typename unwrap<Field>::type;
    const std::string name(info.name);
    if (const auto it = special.find(name); it != special.end()) {
      values[name] = it->second;
      return;
    }
    NonDefault v;
    if constexpr (std::is_same_v<Field, bool>) {
      v = {{value ? "false" : "true"}, !value};
    } else if constexpr (std::is_same_v<T, bool>) {
      v = {{"true"}, true};
    } else if constexpr (std::is_integral_v<T>) {
      std::int64_t chosen = 3;
      if constexpr (std::is_same_v<Field, T>) chosen = static_cast<std::int64_t>(value) + 3;
      v = {{std::to_string(chosen)}, chosen};
    } else if constexpr (std::is_floating_point_v<T>) {
      v = {{"0.25"}, 0.25};
    } else if constexpr (std::is_same_v<T, std::string>) {
      v = {{"some/where"}, "some/where"};
    } else if constexpr (std::is_same_v<T, nlohmann::json>) {
      v = {{R"({"num_cycles": 2})"}, {{"num_cycles", 2}}};
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      v = {{"start", "end"}, {"start", "end"}};
    } else if constexpr (trainpp::NamedEnum<T>) {
      for (const auto& [e, spelled] : trainpp::enum_names<T>::values)
        if (e != value) {
          v = {{std::string(spelled)}, std::string(spelled)};
          break;
        }
    }
    values[name] = v;
  });
  return values;
}

// The field list macro counted directly: what the visitor, the JSON and --help list is measured
// against the declaration itself.
#define ARGS_TEST_COUNT_FIELD(type, name, default_value, group, help) +1
constexpr int declared_fields = 0 TRAINPP_TRAINING_ARGUMENTS_FIELDS(ARGS_TEST_COUNT_FIELD);
#undef ARGS_TEST_COUNT_FIELD

TEST_CASE("every declared field is visited, listed by --help and written to training_args.json") {
  TrainingArguments probe;
  std::vector<std::string> names;
  trainpp::visit_fields(probe, [&](const trainpp::FieldInfo& f, auto&) { names.emplace_back(f.name); });
  CHECK(static_cast<int>(names.size()) == declared_fields);
  const auto j = trainpp::args_json(TrainingArguments{});
  CHECK(static_cast<int>(j.size()) == declared_fields);
  const std::string help = trainpp::help_text("train", std::tuple<TrainingArguments>{});
  for (const auto& name : names) {
    CAPTURE(name);
    CHECK(j.contains(name));
    CHECK(help.find("  --" + name + " ") != std::string::npos);
  }
}

TEST_CASE("every field round-trips with a non-default value: command line, hyphens, JSON and YAML files") {
  const NoLauncher no_launcher;
  const Captured quiet;  // --warmup_ratio's note
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("trainpp_args_test_{}", ::getpid());
  std::filesystem::create_directories(dir);
  const nlohmann::json defaults = trainpp::args_json(TrainingArguments{});
  const auto values = non_default_values();
  CHECK(static_cast<int>(values.size()) == declared_fields);
  for (const auto& [name, v] : values) {
    CAPTURE(name);
    REQUIRE_FALSE(v.words.empty());
    REQUIRE(v.expected != defaults.at(name));
    std::vector<std::string> argv = v.context;
    argv.push_back("--" + name);
    argv.insert(argv.end(), v.words.begin(), v.words.end());
    const TrainingArguments parsed = parse(argv);
    const nlohmann::json j = trainpp::args_json(parsed);
    CHECK(j.at(name) == v.expected);

    // HfArgumentParser's hyphenated spelling says the same.
    std::string hyphenated = name;
    std::ranges::replace(hyphenated, '_', '-');
    argv[v.context.size()] = "--" + hyphenated;
    CHECK(trainpp::args_json(parse(argv)) == j);

    // training_args.json read back as an arguments file gives the same arguments.
    const auto json_file = (dir / "args.json").string();
    std::ofstream(json_file, std::ios::trunc) << j.dump(2);
    CHECK(trainpp::args_json(parse({json_file})) == j);

    // So does the same written as YAML: JSON values are YAML flow values.
    const auto yaml_file = (dir / "args.yaml").string();
    {
      std::ofstream out(yaml_file, std::ios::trunc);
      out << "# training_args.json as YAML\n";
      for (const auto& [key, value] : j.items()) out << key << ": " << value.dump() << "\n";
    }
    CHECK(trainpp::args_json(parse({yaml_file})) == j);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("validate() holds every check, and finalize() runs it before the derived defaults") {
  CHECK_NOTHROW(trainpp::validate(TrainingArguments{}));
  CHECK_THROWS_WITH_AS(trainpp::validate(TrainingArguments{.bf16 = true, .fp16 = true}),
                       doctest::Contains("At most one of fp16 and bf16"), trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::validate(TrainingArguments{.logging_strategy = trainpp::IntervalStrategy::no, .logging_steps = 0,
                                                           .eval_strategy = trainpp::IntervalStrategy::steps}),
                       doctest::Contains("eval_strategy steps requires either a non-zero --eval_steps or --logging_steps"),
                       trainpp::Error);
  // Derived values are valid ones: finalize() on its own result changes nothing.
  TrainingArguments a{.load_best_model_at_end = true};
  a.eval_strategy = trainpp::IntervalStrategy::steps;
  a.finalize();
  const auto once = trainpp::args_json(a);
  CHECK(*a.eval_steps == 500);
  CHECK(*a.metric_for_best_model == "loss");
  CHECK_NOTHROW(trainpp::validate(a));
  a.finalize();
  CHECK(trainpp::args_json(a) == once);
}

TEST_CASE("--warmup_ratio: transformers 4's ratio, noted as deprecated, read as warmup_steps") {
  {
    const Captured log;
    const auto a = parse({"--warmup_ratio", "0.1"});
    CHECK(log.has("--warmup_ratio is deprecated"));
    CHECK(a.warmup_steps == 0.1);  // as transformers 5.0 did: warmup_steps = warmup_ratio
    CHECK_FALSE(a.warmup_ratio.has_value());
    CHECK(a.get_warmup_steps(95) == 10);  // HF's get_warmup_steps: ceil(0.1 * 95)
    CHECK(a.get_warmup_steps(100) == 10);
  }
  {
    // 1 means every step in transformers 4, which warmup_steps (1 step) cannot say: kept as a ratio.
    const Captured log;
    const auto a = parse({"--warmup-ratio", "1"});
    CHECK(a.warmup_ratio == 1.0);
    CHECK(a.get_warmup_steps(40) == 40);
  }
  {
    // transformers 4: a positive warmup_steps wins over warmup_ratio.
    const Captured log;
    const auto a = parse({"--warmup_ratio", "0.5", "--warmup_steps", "5"});
    CHECK(log.has("warmup_steps wins"));
    CHECK(a.get_warmup_steps(100) == 5);
    CHECK_FALSE(a.warmup_ratio.has_value());
  }
  // transformers 5.x's warmup_steps below 1 is the same ratio.
  CHECK(parse({"--warmup_steps", "0.1"}).get_warmup_steps(95) == 10);
  CHECK(parse({"--warmup_steps", "7"}).get_warmup_steps(95) == 7);
  CHECK_THROWS_WITH_AS(parse({"--warmup_ratio", "1.5"}), doctest::Contains("warmup_ratio must lie in range [0, 1], got 1.5"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(parse({"--warmup_ratio", "-0.1"}), doctest::Contains("warmup_ratio must lie in range [0, 1]"),
                       trainpp::Error);
  // The schedule warms up for that many steps: linear's factor peaks at step ceil(0.1 * 95) = 10.
  {
    const Captured log;
    const auto scheduler = trainpp::make_scheduler(parse({"--warmup_ratio", "0.1"}), 95);
    CHECK(scheduler.num_warmup_steps() == 10);
    CHECK(scheduler.lr_factor(9) == doctest::Approx(0.9));
    CHECK(scheduler.lr_factor(10) == doctest::Approx(1.0));
    CHECK(trainpp::make_scheduler(parse({"--warmup_ratio", "1"}), 40).num_warmup_steps() == 40);
  }
}

TEST_CASE("--local_rank, as torch.distributed.launch and the deepspeed launcher pass it") {
  SUBCASE("without a launcher only 0 agrees") {
    const NoLauncher none;
    CHECK(parse({"--local_rank", "0"}).local_rank == 0);
    CHECK(parse({"--local-rank=0"}).local_rank == 0);
    CHECK(parse({}).local_rank == -1);
    CHECK_THROWS_WITH_AS(parse({"--local_rank", "1"}), doctest::Contains("--local_rank 1 but no launcher started this process"),
                         trainpp::Error);
    CHECK_THROWS_WITH_AS(parse({"--local_rank", "-2"}), doctest::Contains("local_rank must be -1 (not given)"), trainpp::Error);
  }
  SUBCASE("the launcher set RANK and WORLD_SIZE but not LOCAL_RANK: the flag is the local rank") {
    const NoLauncher none;
    const EnvVar rank("RANK", "3"), world("WORLD_SIZE", "4"), local_world("LOCAL_WORLD_SIZE", "2"),
        addr("MASTER_ADDR", "127.0.0.1"), port("MASTER_PORT", "29500");
    // Alone, the environment says local rank 3 (LOCAL_RANK defaults to RANK) of 2 on this node.
    CHECK_THROWS_WITH_AS((void)trainpp::detect_launch_environment(), doctest::Contains("the local rank (3) must be less than"),
                         trainpp::Error);
    CHECK_THROWS_WITH_AS(parse({"--local_rank", "2"}), doctest::Contains("the local rank (2) must be less than the local world size (2)"),
                         trainpp::Error);
    const auto a = parse({"--local_rank", "1"});
    CHECK(a.local_rank == 1);
    CHECK(trainpp::local_process_index() == 1);  // every reader of the rank now sees it
    CHECK(a.local_process_index() == 1);
  }
  SUBCASE("LOCAL_RANK set: the flag must agree with it") {
    const NoLauncher none;
    const EnvVar rank("RANK", "1"), world("WORLD_SIZE", "2"), local("LOCAL_RANK", "1"), addr("MASTER_ADDR", "127.0.0.1"),
        port("MASTER_PORT", "29500");
    CHECK(parse({"--local-rank", "1"}).local_rank == 1);
    CHECK_THROWS_WITH_AS(parse({"--local-rank=0"}), doctest::Contains("--local_rank 0 disagrees with LOCAL_RANK=1 in the environment"),
                         trainpp::Error);
  }
  SUBCASE("another launcher's local rank must agree too") {
    const NoLauncher none;
    const EnvVar size("OMPI_COMM_WORLD_SIZE", "2"), rank("OMPI_COMM_WORLD_RANK", "1"), local("OMPI_COMM_WORLD_LOCAL_RANK", "1");
    CHECK(parse({"--local_rank", "1"}).local_rank == 1);
    CHECK_THROWS_WITH_AS(parse({"--local_rank", "0"}), doctest::Contains("disagrees with this process's local rank 1 from the mpi environment"),
                         trainpp::Error);
  }
}

}  // namespace args_test

namespace args_test {

TEST_CASE("--train_sampling_strategy group_by_length and --length_column_name, as transformers 5.x spells them") {
  CHECK(TrainingArguments{}.length_column_name == "length");
  const TrainingArguments a =
      parse({"--train_sampling_strategy", "group_by_length", "--length_column_name", "n_tokens"});
  CHECK(a.train_sampling_strategy == trainpp::SamplingStrategy::group_by_length);
  CHECK(a.length_column_name == "n_tokens");
  // transformers 5.x dropped the --group_by_length flag for this strategy; it is not accepted here either.
  CHECK_THROWS_AS(parse({"--group_by_length"}), trainpp::Error);
}


TEST_CASE("args: finalize() reads --fsdp_config once, and fsdp_options() reads again only when its arguments changed") {
  const auto dir = std::filesystem::temp_directory_path() / ("trainpp_args_fsdp_read_once_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto config = dir / "fsdp.json";
  std::ofstream(config) << R"({"fsdp_min_num_params": 100})";

  TrainingArguments args;
  args.fsdp = "full_shard";
  args.fsdp_config = config.string();
  args.finalize();
  REQUIRE(args.finalized_sharding_options != nullptr);
  std::filesystem::remove_all(dir);
  // The file is gone: the options the run uses are still the ones finalize() read and validate() checked,
  // in every copy of the arguments (the Trainer and its sharding policy hold copies).
  CHECK(args.fsdp_options().min_num_params == 100);
  const TrainingArguments copy = args;
  CHECK(copy.fsdp_options().strategy == trainpp::ShardingStrategy::full_shard);
  CHECK(copy.fsdp_options().min_num_params == 100);

  // A changed argument is read anew, never answered from the old reading.
  TrainingArguments changed = args;
  changed.fsdp_config = R"({"fsdp_min_num_params": 7})";
  CHECK(changed.fsdp_options().min_num_params == 7);
  changed.fsdp_config = config.string();
  CHECK(changed.fsdp_options().min_num_params == 100);  // the same source as finalize()'s again
  changed.gradient_checkpointing = true;                   // part of the source: read again, and the file is gone
  CHECK_THROWS_WITH_AS((void)changed.fsdp_options(), doctest::Contains("fsdp.json"), trainpp::Error);

  // Arguments never finalized read the file each time.
  TrainingArguments unfinalized;
  unfinalized.fsdp = "full_shard";
  unfinalized.fsdp_config = config.string();
  CHECK_THROWS_WITH_AS((void)unfinalized.fsdp_options(), doctest::Contains("fsdp.json"), trainpp::Error);
}

}  // namespace args_test
