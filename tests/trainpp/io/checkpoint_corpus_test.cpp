// The strict readers of a checkpoint's state files (trainer_state.json, scheduler.json,
// optimizer.safetensors, process_state.safetensors) against a corpus of broken files
// (tests/data/io/corrupt_checkpoint/, written by tools/reference/gen_corrupt_checkpoint.py) and against
// random corruptions of the corpus's valid files. Every broken file must be refused with trainpp::Error
// naming the file and the problem: never a crash, a hang, another exception, or a silent success.
// (The model file has its own corpus: tests/data/io/corrupt/, safetensors_test.cpp.)
//
// Each kind is read the way Trainer::load_training_state / resumed_state read it: the file's reader, then
// what consumes its result (control_from_state, LRScheduler::load_state, AdamW::load_state,
// restore_rng_state). load_state does not know the file, so its errors get the file's path in front, as
// the loop does.

#include <trainpp/io/checkpoint.hpp>
#include <trainpp/optim/adamw.hpp>
#include <trainpp/schedule/schedulers.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

namespace checkpoint_corpus_test {

namespace fs = std::filesystem;

const fs::path& corpus_dir() {
  static const fs::path dir = TRAINPP_TEST_DATA_DIR "/io/corrupt_checkpoint";
  return dir;
}
fs::path valid_file(const std::string& name) { return corpus_dir() / "valid" / name; }

struct TempDir {
  fs::path path = fs::temp_directory_path() /
                  fmt::format("trainpp-checkpoint-corpus-test-{}-{}", ::getpid(), std::random_device{}());
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

/// Runs `f`; an Error from it is rethrown with `path` in front (what the loop does around load_state).
void naming(const fs::path& path, const std::function<void()>& f) {
  try {
    f();
  } catch (const trainpp::Error& e) {
    throw trainpp::error("{}: {}", path.string(), e.what());
  }
}

// ---- the readers, kind by kind --------------------------------------------------------------------

void read_trainer_state_file(const fs::path& path) {
  const auto state = trainpp::read_trainer_state(path);
  (void)trainpp::control_from_state(state, path.string());
}

/// The schedule the generator's scheduler files belong to: learning_rate 0.001, no warmup, 8 steps.
trainpp::LRScheduler make_schedule(trainpp::SchedulerType type) {
  trainpp::TrainingArguments args;
  args.learning_rate = 1e-3;
  args.lr_scheduler_type = type;
  return trainpp::make_scheduler(args, 8);
}

/// scheduler/plateau_*.json and valid/scheduler_plateau.json belong to reduce_lr_on_plateau, the others
/// to linear.
trainpp::SchedulerType schedule_type_of(const fs::path& path) {
  const auto name = path.filename().string();
  return name.starts_with("plateau_") || name.starts_with("scheduler_plateau")
             ? trainpp::SchedulerType::reduce_lr_on_plateau
             : trainpp::SchedulerType::linear;
}

trainpp::LRScheduler read_scheduler_file(const fs::path& path, trainpp::SchedulerType type) {
  auto schedule = make_schedule(type);
  const auto state = trainpp::read_json_file(path);
  naming(path, [&] { schedule.load_state(state); });
  return schedule;
}

/// The parameters the generator's optimizer files belong to. Keep in step with PARAMS and GROUPS in
/// tools/reference/gen_corrupt_checkpoint.py.
std::vector<trainpp::ParamGroup> param_groups() {
  auto param = [](std::vector<std::int64_t> shape) { return torch::zeros(shape).requires_grad_(); };
  std::vector<trainpp::ParamGroup> groups(2);
  groups[0].params = {param({3, 2}), param({2, 3})};
  groups[0].names = {"fc1.weight", "fc2.weight"};
  groups[0].weight_decay = 0.01;
  groups[1].params = {param({3}), param({2})};
  groups[1].names = {"fc1.bias", "fc2.bias"};
  for (auto& group : groups) group.lr = group.initial_lr = 1e-3;
  return groups;
}

trainpp::AdamW read_optimizer_file(const fs::path& path) {
  const auto saved = trainpp::load_optimizer_state(path);
  trainpp::AdamW adam(param_groups());
  naming(path, [&] { adam.load_state(saved.state); });
  if (saved.groups.size() == adam.param_groups().size())  // the group rates, as the loop restores them
    for (std::size_t g = 0; g < saved.groups.size(); ++g) {
      adam.param_groups()[g].lr = saved.groups[g].lr;
      adam.param_groups()[g].initial_lr = saved.groups[g].initial_lr;
    }
  return adam;
}

torch::Tensor cpu_generator_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

/// Restoring a process state moves the global CPU generator: this puts it back afterwards.
struct KeepCpuGenerator {
  torch::Tensor saved = cpu_generator_state();
  KeepCpuGenerator() = default;
  KeepCpuGenerator(const KeepCpuGenerator&) = delete;
  KeepCpuGenerator& operator=(const KeepCpuGenerator&) = delete;
  ~KeepCpuGenerator() {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(saved);
  }
};

trainpp::ProcessState read_process_state_file(const fs::path& path) {
  const KeepCpuGenerator keep;
  auto state = trainpp::load_process_state(path);
  trainpp::restore_rng_state(state, path.string());
  return state;
}

/// Reads `path` as a file of `kind` (a directory name of the corpus).
void read_as(std::string_view kind, const fs::path& path) {
  if (kind == "trainer_state") read_trainer_state_file(path);
  else if (kind == "scheduler") (void)read_scheduler_file(path, schedule_type_of(path));
  else if (kind == "optimizer") (void)read_optimizer_file(path);
  else if (kind == "process_state") (void)read_process_state_file(path);
  else FAIL("unknown kind " << kind);
}

/// What reading `path` as `kind` says: the Error's message, or "" when it was accepted. Any other
/// exception fails the check here, with the file named.
std::string outcome(std::string_view kind, const fs::path& path) {
  try {
    read_as(kind, path);
  } catch (const trainpp::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL_CHECK("reading " << path.string() << " threw an exception other than trainpp::Error: "
                         << std::string(e.what()));
    return "<other exception>";
  }
  return "";
}

const nlohmann::json& expectations() {
  static const nlohmann::json expected = [] {
    std::ifstream in(corpus_dir() / "expected.json");
    REQUIRE(in.good());
    return nlohmann::json::parse(in);
  }();
  return expected;
}

/// Every file of corpus_dir()/kind is refused with a message naming it and containing its phrase, and
/// every file expected.json lists for `kind` is there.
void check_corpus(const std::string& kind, std::size_t at_least) {
  const auto& expected = expectations();
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(corpus_dir() / kind)) files.push_back(entry.path());
  std::ranges::sort(files);
  for (const auto& path : files) {
    const auto key = kind + "/" + path.filename().string();
    CAPTURE(key);
    REQUIRE(expected.contains(key));
    const auto phrase = expected.at(key).get<std::string>();
    const auto message = outcome(kind, path);
    CAPTURE(phrase);
    CAPTURE(message);
    CHECK_MESSAGE(!message.empty(), "the reader accepted a broken file");
    CHECK(message.find(path.string()) != std::string::npos);
    CHECK(message.find(phrase) != std::string::npos);
  }
  std::size_t listed = 0;
  for (const auto& item : expected.items()) listed += item.key().starts_with(kind + "/") ? 1 : 0;
  CHECK(files.size() == listed);
  CHECK(files.size() >= at_least);
}

// ---- random corruptions ---------------------------------------------------------------------------

/// `count` corruptions of `original` (a JSON file, or a safetensors file when `safetensors`), each
/// written to `path` and read as `kind`: each must be read or refused with an Error naming the file.
/// Returns how many were refused.
int mutate_and_read(std::string_view kind, const std::string& original, const fs::path& path, bool safetensors,
                    int count, std::uint64_t seed) {
  using namespace std::string_view_literals;
  const auto alphabet = "0123456789[]{},:\" -.eE\\u\xff\x00tfn"sv;  // NUL included
  std::uint64_t header_size = original.size();
  std::size_t header_begin = 0;
  if (safetensors) {
    REQUIRE(original.size() >= 8);
    std::memcpy(&header_size, original.data(), 8);
    REQUIRE(8 + header_size <= original.size());
    header_begin = 8;
  }
  std::mt19937_64 rng(seed);
  auto in_header = [&] { return header_begin + rng() % header_size; };
  int rejected = 0;
  for (int i = 0; i < count; ++i) {
    std::string bytes = original;
    std::string what;
    switch (i % 6) {
      case 0: {  // a JSON-significant character in place of one of the (header's) bytes
        const auto at = in_header();
        bytes[at] = alphabet[rng() % alphabet.size()];
        what = fmt::format("byte {} replaced", at);
        break;
      }
      case 1: {  // one bit flipped anywhere
        const auto at = rng() % bytes.size();
        bytes[at] = static_cast<char>(bytes[at] ^ (1 << (rng() % 8)));
        what = fmt::format("a bit of byte {} flipped", at);
        break;
      }
      case 2: {  // truncated
        bytes.resize(rng() % bytes.size());
        what = fmt::format("truncated to {} bytes", bytes.size());
        break;
      }
      case 3: {  // a character inserted
        const auto at = in_header();
        bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(at), alphabet[rng() % alphabet.size()]);
        what = fmt::format("a byte inserted at {}", at);
        break;
      }
      case 4: {  // a few bytes removed
        const auto at = in_header();
        const auto n = std::min<std::size_t>(1 + rng() % 8, bytes.size() - at);
        bytes.erase(at, n);
        what = fmt::format("{} bytes removed at {}", n, at);
        break;
      }
      case 5: {  // a random byte anywhere; for safetensors, the header size changed instead on every other try
        if (safetensors && rng() % 2 == 0) {
          const std::uint64_t n = header_size + (rng() % 64) - 32;
          std::memcpy(bytes.data(), &n, 8);
          what = fmt::format("header size {}", n);
        } else {
          const auto at = rng() % bytes.size();
          bytes[at] = static_cast<char>(rng());
          what = fmt::format("byte {} randomized", at);
        }
        break;
      }
    }
    CAPTURE(what);
    write_bytes(path, bytes);
    const auto message = outcome(kind, path);
    if (!message.empty()) {
      ++rejected;
      CAPTURE(message);
      CHECK(message.find(path.string()) != std::string::npos);
    }
  }
  return rejected;
}

// ---- the tests ------------------------------------------------------------------------------------

TEST_CASE("checkpoint corpus: the valid files load and write back the same") {
  TempDir dir;

  SUBCASE("trainer_state.json") {
    const auto path = valid_file("trainer_state.json");
    const auto state = trainpp::read_trainer_state(path);
    CHECK(state.to_json() == trainpp::read_json_file(path));
    CHECK(state.global_step == 4);
    CHECK(state.best_metric == 0.5);
    CHECK(state.log_history.size() == 2);
    const auto control = trainpp::control_from_state(state, path.string());
    REQUIRE(control.has_value());
    CHECK(control->should_save);
    CHECK_FALSE(control->should_training_stop);
  }

  SUBCASE("scheduler.json, linear") {
    const auto path = valid_file("scheduler.json");
    const auto schedule = read_scheduler_file(path, trainpp::SchedulerType::linear);
    CHECK(schedule.state() == trainpp::read_json_file(path));
  }

  SUBCASE("scheduler.json, reduce_lr_on_plateau") {
    const auto path = valid_file("scheduler_plateau.json");
    const auto schedule = read_scheduler_file(path, trainpp::SchedulerType::reduce_lr_on_plateau);
    CHECK(schedule.state() == trainpp::read_json_file(path));
    auto groups = param_groups();
    schedule.apply(groups, 0);  // the lrs of its last reduction
    CHECK(groups[0].lr == 1e-4);
    CHECK(groups[1].lr == 1e-4);
  }

  SUBCASE("optimizer.safetensors") {
    const auto path = valid_file("optimizer.safetensors");
    const auto saved = trainpp::load_optimizer_state(path);
    CHECK(saved.group_sizes == std::vector<std::size_t>{2, 2});
    CHECK(saved.groups[1].names == std::vector<std::string>{"fc1.bias", "fc2.bias"});
    auto adam = read_optimizer_file(path);
    const auto state = adam.state();
    REQUIRE(state.size() == 4);
    CHECK(state[3].empty());  // a parameter never updated has no state
    CHECK(state[0].at("step").item<float>() == 3.0f);
    const auto again = dir.path / "optimizer.safetensors";
    trainpp::save_optimizer_state(again, state, adam.param_groups());
    CHECK(trainpp::read_file(again) == trainpp::read_file(path));
  }

  SUBCASE("process_state.safetensors") {
    const auto path = valid_file("process_state.safetensors");
    const auto state = read_process_state_file(path);
    CHECK(state.tr_loss.item<float>() == 1.25f);
    CHECK(state.total_loss_scalar == 10.5);
    CHECK(state.globalstep_last_logged == 2);
    CHECK(state.scheduler_steps == 4);
    {
      const KeepCpuGenerator keep;
      torch::manual_seed(42);  // the generator's rng.cpu is this state
      CHECK(torch::equal(state.cpu_rng, cpu_generator_state()));
    }
    const auto again = dir.path / "process_state.safetensors";
    trainpp::save_process_state(again, state);
    CHECK(trainpp::read_file(again) == trainpp::read_file(path));
  }
}

TEST_CASE("checkpoint corpus: every broken trainer_state.json is refused, naming the file and the problem") {
  check_corpus("trainer_state", 50);
}

TEST_CASE("checkpoint corpus: every broken scheduler.json is refused, naming the file and the problem") {
  check_corpus("scheduler", 30);
}

TEST_CASE("checkpoint corpus: every broken optimizer.safetensors is refused, naming the file and the problem") {
  check_corpus("optimizer", 50);
}

TEST_CASE("checkpoint corpus: every broken process_state.safetensors is refused, naming the file and the problem") {
  check_corpus("process_state", 40);
}

TEST_CASE("checkpoint corpus: random corruptions of valid state files are read or refused cleanly, never crash") {
  // Whatever the damage, the readers answer with trainpp::Error naming the file (or read a file that is
  // still valid): no other exception, no out-of-bounds access (the sanitizer build shows those), no hang.
  TempDir dir;
  struct Base {
    std::string kind;
    std::string file;
    bool safetensors;
    int count;
    int min_rejected;
    std::uint64_t seed;
  };
  // At least half of the corruptions of each base must be refused: most break the JSON or the layout.
  for (const Base& base : {Base{"trainer_state", "trainer_state.json", false, 120, 60, 20240601},
                          Base{"scheduler", "scheduler.json", false, 60, 30, 20240602},
                          Base{"scheduler", "scheduler_plateau.json", false, 60, 30, 20240603},
                          Base{"optimizer", "optimizer.safetensors", true, 120, 60, 20240604},
                          Base{"process_state", "process_state.safetensors", true, 120, 60, 20240605}}) {
    CAPTURE(base.file);
    const auto original = trainpp::read_file(valid_file(base.file));
    // Named like the base, so that the scheduler files keep the prefix that picks their schedule.
    const auto path = dir.path / base.file;
    REQUIRE(outcome(base.kind, valid_file(base.file)).empty());
    const int rejected = mutate_and_read(base.kind, original, path, base.safetensors, base.count, base.seed);
    MESSAGE(base.file << ": " << rejected << " of " << base.count << " corruptions refused, the rest still valid");
    CHECK(rejected >= base.min_rejected);
  }
}

}  // namespace checkpoint_corpus_test
