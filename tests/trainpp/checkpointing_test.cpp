// The loop's checkpoints: save strategies and what a checkpoint holds, best-model tracking and
// load_best_model_at_end, rotation during and after training, exact resume in-process, the O(1) data
// skip, and the refusals (nothing to resume, another model, another world size, a model-only
// checkpoint, a fresh run over old checkpoints). Kill-and-resume with the real example binary is in
// tests/examples/kill_and_resume.py.

#include <trainpp/checkpointing.hpp>
#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace loop_checkpoint_test {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() /
                  fmt::format("trainpp-loop-checkpoint-test-{}-{}", ::getpid(), std::random_device{}());
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Dropout draws from the CPU generator: an exact resume must restore it.
struct NetImpl : torch::nn::Module {
  torch::nn::Linear fc1{4, 8}, fc2{8, 3};
  torch::nn::Dropout dropout{0.3};
  explicit NetImpl(int hidden = 8) : fc1(4, hidden), fc2(hidden, 3) {
    register_module("fc1", fc1);
    register_module("fc2", fc2);
    register_module("dropout", dropout);
  }
  trainpp::ModelOutput forward(const trainpp::Batch& b) {
    trainpp::ModelOutput out{.logits = fc2(dropout(torch::relu(fc1(b.at("x")))))};
    if (b.contains("labels")) out.loss = torch::nn::functional::cross_entropy(out.logits, b.at("labels"));
    return out;
  }
};
TORCH_MODULE(Net);

trainpp::TensorDataset data(std::int64_t n, std::uint64_t seed = 3) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto x = torch::randn({n, 4}, gen);
  auto labels = (x.select(1, 0) > 0).to(torch::kLong) + (x.select(1, 1) > 0.5).to(torch::kLong);
  return trainpp::TensorDataset{{"x", x}, {"labels", labels}};
}

/// A dataset that counts the examples it hands out: the proof that a resumed run does not read the
/// batches it skips.
struct CountingDataset {
  trainpp::TensorDataset inner;
  std::shared_ptr<std::atomic<std::int64_t>> reads = std::make_shared<std::atomic<std::int64_t>>(0);
  [[nodiscard]] std::size_t size() const { return inner.size(); }
  [[nodiscard]] trainpp::Batch get(std::size_t i) const {
    ++*reads;
    return inner.get(i);
  }
};

trainpp::TrainingArguments args_in(const fs::path& out) {
  trainpp::TrainingArguments a;
  a.output_dir = out.string();
  a.disable_tqdm = true;
  a.per_device_train_batch_size = 4;
  a.per_device_eval_batch_size = 8;
  a.learning_rate = 0.05;
  a.max_steps = 10;
  a.logging_steps = 2;
  a.save_strategy = trainpp::SaveStrategy::steps;
  a.save_steps = 3;
  a.full_determinism = true;
  return a;
}

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}
std::set<std::string> checkpoints_in(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& name : names_in(dir))
    if (name.starts_with("checkpoint-")) out.insert(name);
  return out;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const trainpp::Error& e) {
    return e.what();
  }
  return "<no error>";
}

/// What a function writes to stderr (through file descriptor 2, as the library's warnings do).
std::string stderr_of(const std::function<void()>& f) {
  std::fflush(stderr);
  std::FILE* capture = std::tmpfile();
  const int saved = ::dup(2);
  ::dup2(::fileno(capture), 2);
  try {
    f();
  } catch (...) {
    std::fflush(stderr);
    ::dup2(saved, 2);
    ::close(saved);
    std::fclose(capture);
    throw;
  }
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::rewind(capture);
  std::string out;
  char buffer[4096];
  while (const auto n = std::fread(buffer, 1, sizeof buffer, capture)) out.append(buffer, n);
  std::fclose(capture);
  return out;
}

/// log_history without the entries' timing keys.
nlohmann::json history_without_timing(nlohmann::json history) {
  for (auto& entry : history)
    for (const char* key : {"train_runtime", "train_samples_per_second", "train_steps_per_second", "eval_runtime",
                            "eval_samples_per_second", "eval_steps_per_second"})
      entry.erase(key);
  return history;
}

std::vector<torch::Tensor> weights_of(Net& net) {
  std::vector<torch::Tensor> out;
  // On the CPU: the Trainer's model sits on a GPU when there is one, a fresh Net on the CPU.
  for (const auto& p : net->parameters()) out.push_back(p.detach().to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true));
  return out;
}
bool same_weights(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!torch::equal(a[i], b[i])) return false;
  return true;
}

/// Records the checkpoint directories present after each save.
struct SaveWatcher {
  std::shared_ptr<std::vector<std::set<std::string>>> seen = std::make_shared<std::vector<std::set<std::string>>>();
  void on_save(const trainpp::TrainingArguments& args, const trainpp::TrainerState&, trainpp::TrainerControl&) const {
    seen->push_back(checkpoints_in(args.output_dir));
  }
};

TEST_CASE("checkpoint content and the save strategies: steps (int and ratio), epoch, save_only_model") {
  TempDir dir;
  {
    auto args = args_in(dir.path / "steps");
    args.save_steps = 0.25;  // a ratio of max_steps 8: every 2 steps
    args.max_steps = 8;
    trainpp::Trainer trainer(Net{}, args, trainpp::train_dataset = data(32));
    trainer.train();
    CHECK(checkpoints_in(args.output_dir) ==
          std::set<std::string>{"checkpoint-2", "checkpoint-4", "checkpoint-6", "checkpoint-8"});
    CHECK(names_in(dir.path / "steps" / "checkpoint-8") ==
          std::set<std::string>{"checkpoint_manifest.json", "model.safetensors", "optimizer.safetensors",
                                "process_state.safetensors", "scheduler.json", "trainer_state.json",
                                "training_args.json"});
    const auto state = trainpp::read_trainer_state(dir.path / "steps" / "checkpoint-4" / "trainer_state.json");
    CHECK(state.global_step == 4);
    CHECK(state.save_steps == 2);
    CHECK(state.max_steps == 8);
    const auto saved_args = trainpp::read_json_file(dir.path / "steps" / "checkpoint-4" / "training_args.json");
    CHECK(saved_args.at("save_steps") == 0.25);
    CHECK(saved_args.at("learning_rate") == 0.05);
    // Values finalize() derives are saved as the run used them (HF saves its post-init arguments).
    CHECK(saved_args.at("logging_dir") == (dir.path / "steps").string() + "/runs");
    // The checkpoint's weights are those of its step: load them into a fresh model and compare.
    Net fresh;
    trainpp::load_model(*fresh, dir.path / "steps" / "checkpoint-8");
    CHECK(same_weights(weights_of(fresh), weights_of(trainer.model())));
  }
  {
    auto args = args_in(dir.path / "epoch");
    args.max_steps = -1;
    args.num_train_epochs = 2;
    args.save_strategy = trainpp::SaveStrategy::epoch;
    trainpp::Trainer trainer(Net{}, args, trainpp::train_dataset = data(30));  // 8 batches an epoch
    trainer.train();
    CHECK(checkpoints_in(args.output_dir) == std::set<std::string>{"checkpoint-8", "checkpoint-16"});
  }
  {
    auto args = args_in(dir.path / "model_only");
    args.save_only_model = true;
    trainpp::Trainer trainer(Net{}, args, trainpp::train_dataset = data(32));
    trainer.train();
    CHECK(names_in(dir.path / "model_only" / "checkpoint-9") ==
          std::set<std::string>{"checkpoint_manifest.json", "model.safetensors", "trainer_state.json",
                                "training_args.json"});
    // Such a checkpoint cannot resume training, and says why.
    args.resume_from_checkpoint = "true";
    trainpp::Trainer again(Net{}, args, trainpp::train_dataset = data(32));
    const auto message = message_of([&] { again.train(); });
    CHECK_MESSAGE(message.find("holds the model only (saved with save_only_model)") != std::string::npos, message);
  }
}

TEST_CASE("resume in-process is exact: weights, log_history and the following checkpoints" *
          doctest::test_suite("integration")) {
  TempDir dir;
  auto args = args_in(dir.path / "full");
  args.gradient_accumulation_steps = 2;
  args.max_steps = 12;
  args.logging_steps = 5;  // off the save grid: the pending loss sum must survive the resume
  args.save_steps = 4;
  args.eval_strategy = trainpp::IntervalStrategy::steps;
  args.eval_steps = 4;
  args.lr_scheduler_type = trainpp::SchedulerType::cosine;
  args.warmup_steps = 3;
  const auto train = data(28);  // 7 micro-batches an epoch: windows of 2, 2, 2, 1
  const auto eval = data(16, 9);
  trainpp::Trainer full(Net{}, args, trainpp::train_dataset = train, trainpp::eval_dataset = eval);
  const auto full_out = full.train();
  const auto full_weights = weights_of(full.model());

  for (const char* from : {"checkpoint-4", "checkpoint-8"}) {
    CAPTURE(from);
    auto resumed_args = args;
    resumed_args.output_dir = (dir.path / from).string();
    fs::create_directories(dir.path / from);
    fs::copy(dir.path / "full" / from, dir.path / from / from, fs::copy_options::recursive);
    resumed_args.resume_from_checkpoint = (dir.path / from / from).string();
    trainpp::Trainer resumed(Net{}, resumed_args, trainpp::train_dataset = train, trainpp::eval_dataset = eval);
    const auto out = resumed.train();
    CHECK(same_weights(weights_of(resumed.model()), full_weights));
    CHECK(history_without_timing(resumed.state().log_history) == history_without_timing(full.state().log_history));
    CHECK(out.training_loss == full_out.training_loss);
    CHECK(out.global_step == 12);
    for (const char* file : {"model.safetensors", "optimizer.safetensors", "process_state.safetensors", "scheduler.json"})
      CHECK_MESSAGE(trainpp::read_file(dir.path / from / "checkpoint-12" / file) ==
                        trainpp::read_file(dir.path / "full" / "checkpoint-12" / file), file);
  }
}

TEST_CASE("a resumed epoch skips its trained batches without reading them, and ignore_data_skip reads them") {
  TempDir dir;
  auto args = args_in(dir.path);
  args.per_device_train_batch_size = 2;
  args.max_steps = 120;
  args.save_steps = 100;
  args.logging_steps = 50;
  const CountingDataset dataset{data(1000)};  // 500 batches an epoch
  {
    trainpp::Trainer trainer(Net{}, args, trainpp::train_dataset = std::ref(dataset));
    trainer.train();
  }
  const auto reads_full = dataset.reads->exchange(0);
  CHECK(reads_full == 120 * 2);

  args.resume_from_checkpoint = (dir.path / "checkpoint-100").string();
  {
    trainpp::Trainer trainer(Net{}, args, trainpp::train_dataset = std::ref(dataset));
    trainer.train();
  }
  // Only the 20 remaining steps' examples: the 100 skipped batches were never built. The loader's
  // prefetching may build a batch or two past the end.
  CHECK(dataset.reads->exchange(0) <= (20 + 4) * 2);

  args.ignore_data_skip = true;
  args.overwrite_output_dir = false;
  {
    trainpp::Trainer trainer(Net{}, args, trainpp::train_dataset = std::ref(dataset));
    trainer.train();
  }
  CHECK(dataset.reads->load() >= 20 * 2);  // the epoch restarted from its first batch: steps 101..120
  CHECK(dataset.reads->load() <= (20 + 4) * 2);
}

TEST_CASE("best model: tracked across evaluations, kept by rotation, loaded at the end") {
  TempDir dir;
  auto args = args_in(dir.path);
  args.max_steps = 12;
  args.save_steps = 2;
  args.eval_strategy = trainpp::IntervalStrategy::steps;
  args.eval_steps = 2;
  args.save_total_limit = 1;
  args.load_best_model_at_end = true;
  args.metric_for_best_model = "accuracy";
  args.learning_rate = 0.3;  // large steps: accuracy goes up and down, so the best is not the last
  // The best model is the one the test picks: the accuracy that compute_metrics reports is a
  // schedule, so the test knows which step is best.
  auto schedule = std::make_shared<std::vector<double>>(std::vector<double>{0.2, 0.9, 0.5, 0.95, 0.3, 0.4});
  auto calls = std::make_shared<std::size_t>(0);
  auto metrics = [schedule, calls](const trainpp::EvalPrediction&) {
    return trainpp::Metrics{{"accuracy", (*schedule)[(*calls)++ % schedule->size()]}};
  };
  SaveWatcher watcher;
  trainpp::Trainer trainer(Net{}, args, trainpp::train_dataset = data(40), trainpp::eval_dataset = data(16, 9),
                           trainpp::compute_metrics = metrics, trainpp::callbacks = trainpp::callback_list(watcher));
  trainer.train();
  CHECK(trainer.state().best_metric == 0.95);
  CHECK(trainer.state().best_global_step == 8);
  CHECK(trainer.state().best_model_checkpoint == (dir.path / "checkpoint-8").string());
  // With save_total_limit 1 the best and the newest both stay during training...
  REQUIRE(watcher.seen->size() == 6);
  CHECK((*watcher.seen)[1] == std::set<std::string>{"checkpoint-4"});
  CHECK((*watcher.seen)[2] == std::set<std::string>{"checkpoint-4", "checkpoint-6"});
  CHECK((*watcher.seen)[4] == std::set<std::string>{"checkpoint-8", "checkpoint-10"});
  CHECK((*watcher.seen)[5] == std::set<std::string>{"checkpoint-8", "checkpoint-12"});
  // ...and at the end only the best remains, and its weights are the model's.
  CHECK(checkpoints_in(dir.path) == std::set<std::string>{"checkpoint-8"});
  Net best;
  trainpp::load_model(*best, dir.path / "checkpoint-8");
  CHECK(same_weights(weights_of(best), weights_of(trainer.model())));
  const auto state = trainpp::read_trainer_state(dir.path / "checkpoint-8" / "trainer_state.json");
  CHECK(state.best_model_checkpoint == (dir.path / "checkpoint-8").string());
}

TEST_CASE("save_strategy best saves only on a new best metric") {
  TempDir dir;
  auto args = args_in(dir.path);
  args.max_steps = 10;
  args.save_strategy = trainpp::SaveStrategy::best;
  args.eval_strategy = trainpp::IntervalStrategy::steps;
  args.eval_steps = 2;
  args.metric_for_best_model = "score";
  args.greater_is_better = false;
  auto values = std::make_shared<std::vector<double>>(std::vector<double>{5, 3, 4, 1, 2});
  auto calls = std::make_shared<std::size_t>(0);
  auto metrics = [values, calls](const trainpp::EvalPrediction&) { return trainpp::Metrics{{"score", (*values)[(*calls)++]}}; };
  trainpp::Trainer trainer(Net{}, args, trainpp::train_dataset = data(40), trainpp::eval_dataset = data(16, 9),
                           trainpp::compute_metrics = metrics);
  trainer.train();
  CHECK(checkpoints_in(dir.path) == std::set<std::string>{"checkpoint-2", "checkpoint-4", "checkpoint-8"});
  CHECK(trainer.state().best_metric == 1);
}

TEST_CASE("resume refuses what it cannot continue, with messages naming the problem" *
          doctest::test_suite("integration")) {
  TempDir dir;
  auto args = args_in(dir.path / "run");
  trainpp::Trainer first(Net{}, args, trainpp::train_dataset = data(32));
  first.train();

  SUBCASE("nothing to resume from") {
    auto a = args_in(dir.path / "empty");
    a.resume_from_checkpoint = "true";
    trainpp::Trainer t(Net{}, a, trainpp::train_dataset = data(32));
    CHECK(message_of([&] { t.train(); }).find("No valid checkpoint found in output directory") != std::string::npos);
    a.resume_from_checkpoint = (dir.path / "nowhere").string();
    trainpp::Trainer u(Net{}, a, trainpp::train_dataset = data(32));
    CHECK(message_of([&] { u.train(); }).find("Can't find a valid checkpoint at") != std::string::npos);
  }
  SUBCASE("another model: missing, unexpected and reshaped parameters are listed") {
    auto a = args_in(dir.path / "other");
    a.resume_from_checkpoint = (dir.path / "run" / "checkpoint-9").string();
    trainpp::Trainer t(Net{16}, a, trainpp::train_dataset = data(32));
    const auto message = message_of([&] { t.train(); });
    CHECK_MESSAGE(message.find("checkpoint-9/model.safetensors") != std::string::npos, message);
    CHECK_MESSAGE(message.find("fc1.weight: shape [16, 4] (model) vs [8, 4] (file)") != std::string::npos, message);
  }
  SUBCASE("another number of processes: a data-parallel checkpoint is resumed, as HF allows") {
    // The whole optimizer is in the checkpoint, so a one-process checkpoint continues on two (a
    // sharded optimizer is refused: tests/distributed/check_zero.py). No saving: the pretended
    // second process would write nothing.
    struct TwoProcesses : trainpp::SingleDevice {
      [[nodiscard]] int world_size() const { return 2; }
    };
    auto a = args_in(dir.path / "ranks");
    a.save_strategy = trainpp::SaveStrategy::no;
    a.resume_from_checkpoint = (dir.path / "run" / "checkpoint-9").string();
    trainpp::Trainer t(Net{}, a, trainpp::train_dataset = data(32), trainpp::sharding = TwoProcesses{});
    CHECK(message_of([&] { t.train(); }) == "<no error>");
    CHECK(t.state().global_step > 9);
  }
  SUBCASE("a corrupt optimizer state") {
    const auto path = dir.path / "run" / "checkpoint-10" / "optimizer.safetensors";
    auto bytes = trainpp::read_file(path);
    bytes.resize(bytes.size() - 10);
    trainpp::write_file_atomic(path, bytes);
    auto a = args;
    a.resume_from_checkpoint = "true";
    trainpp::Trainer t(Net{}, a, trainpp::train_dataset = data(32));
    const auto message = message_of([&] { t.train(); });
    CHECK_MESSAGE(message.find("checkpoint-10/optimizer.safetensors") != std::string::npos, message);
  }
  SUBCASE("a fresh run over another run's checkpoints, unless told to overwrite") {
    trainpp::Trainer again(Net{}, args, trainpp::train_dataset = data(32));
    const auto message = message_of([&] { again.train(); });
    CHECK_MESSAGE(message.find("already holds checkpoints (checkpoint-3 ... checkpoint-10)") != std::string::npos, message);
    CHECK_MESSAGE(message.find("--overwrite_output_dir") != std::string::npos, message);
    auto a = args;
    a.overwrite_output_dir = true;
    a.max_steps = 4;
    trainpp::Trainer fresh(Net{}, a, trainpp::train_dataset = data(32));
    fresh.train();
    CHECK(checkpoints_in(dir.path / "run") == std::set<std::string>{"checkpoint-3", "checkpoint-4"});
  }
}

TEST_CASE("a damaged checkpoint is never resumed: a flipped bit anywhere in any file is named") {
  // safetensors and JSON carry no checksum: without checkpoint_manifest.json most flips in tensor data,
  // and many in numbers of the JSON files, would resume without a word.
  TempDir dir;
  auto args = args_in(dir.path / "run");
  args.max_steps = 3;
  {
    trainpp::Trainer t(Net{}, args, trainpp::train_dataset = data(32));
    t.train();
  }
  const auto checkpoint = dir.path / "run" / "checkpoint-3";
  args.max_steps = 4;
  args.save_strategy = trainpp::SaveStrategy::no;  // the trials must not write checkpoints of their own
  args.resume_from_checkpoint = checkpoint.string();
  auto resume = [&] {
    trainpp::Trainer t(Net{}, args, trainpp::train_dataset = data(32));
    return message_of([&] { t.train(); });
  };
  std::mt19937_64 random(5);
  std::size_t trials = 0;
  for (const auto& name : names_in(checkpoint)) {
    const auto path = checkpoint / name;
    const std::string original = trainpp::read_file(path);
    REQUIRE(original.size() > 16);
    // The first bytes (a safetensors header's length, the JSON's opening), the middle, the last byte,
    // and random places, each with a bit of its own.
    std::vector<std::size_t> places{0, 1, 8, original.size() / 2, original.size() - 1};
    for (int k = 0; k < 6; ++k) places.push_back(random() % original.size());
    for (const auto place : places) {
      CAPTURE(name);
      CAPTURE(place);
      std::string damaged = original;
      damaged[place] = static_cast<char>(damaged[place] ^ (1 << (random() % 8)));
      trainpp::write_file_atomic(path, damaged);
      const auto message = resume();
      // Named: the damaged file, or (for a flip inside the manifest) the manifest or the entry it changed.
      CHECK_MESSAGE(message != "<no error>", "resumed from a damaged checkpoint");
      CHECK_MESSAGE((message.find(path.string()) != std::string::npos ||
                     message.find("checkpoint_manifest.json") != std::string::npos),
                    message);
      ++trials;
    }
    trainpp::write_file_atomic(path, original);
  }
  CHECK(trials >= 6 * 11);
  CHECK(resume() == "<no error>");  // restored: it resumes
}

TEST_CASE("resuming from the final checkpoint trains nothing more") {
  TempDir dir;
  auto args = args_in(dir.path);
  {
    trainpp::Trainer t(Net{}, args, trainpp::train_dataset = data(32));
    t.train();
  }
  args.resume_from_checkpoint = "true";
  trainpp::Trainer t(Net{}, args, trainpp::train_dataset = data(32));
  const auto out = t.train();
  CHECK(out.global_step == 10);
  Net saved;
  trainpp::load_model(*saved, dir.path / "checkpoint-10");
  CHECK(same_weights(weights_of(saved), weights_of(t.model())));
}

TEST_CASE("resume with other logging, save or batch settings warns and goes on") {
  TempDir dir;
  auto args = args_in(dir.path);
  {
    trainpp::Trainer t(Net{}, args, trainpp::train_dataset = data(32));
    t.train();
  }
  args.resume_from_checkpoint = (dir.path / "checkpoint-6").string();
  args.per_device_train_batch_size = 2;
  args.logging_steps = 4;
  trainpp::Trainer t(Net{}, args, trainpp::train_dataset = data(32));
  const auto err = stderr_of([&] { t.train(); });
  CHECK_MESSAGE(err.find("per_device_train_batch_size: 2 (from args) != 4") != std::string::npos, err);
  CHECK_MESSAGE(err.find("logging_steps: 4 (from args) != 2") != std::string::npos, err);
  CHECK(t.state().global_step == 10);
}

}  // namespace loop_checkpoint_test
