// The C++ contestants of bench/run (bench/README.md is the specification):
//
//   bench_cpp --contestant cpp_loop|trainpp --workload mlp|cnn|encoder --init F --data F
//             [--batch_size B] --mode steps --warmup W --steps N      -> {"steps_per_s": ..., "seconds": ...}
//             --mode losses --steps 5                                 -> {"losses": [...]}
//             --mode accuracy --target 0.90 --max_epochs 5 (cnn)      -> {"seconds": ..., "epochs": e, "accuracy": a}
//   bench_cpp --contestant loader --data cnn_data.safetensors --num_workers 0|2 [--warmup W] --steps N
//                                                                     -> {"samples_per_s": ...}
//
// cpp_loop is the loop a LibTorch user writes by hand (torch::optim::AdamW, clip_grad_norm_); trainpp is
// trainpp::Trainer with its defaults for everything the README leaves open. Both train the same module
// from the same initial weights on the same batches. The JSON object is always the last stdout line.

#include "bench_models.hpp"

#include <trainpp/trainpp.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point begin, Clock::time_point end) {
  return std::chrono::duration<double>(end - begin).count();
}

// ---- the command line ---------------------------------------------------------------------------

struct BenchArgs {
  std::string contestant;
  std::string workload;
  std::string init;
  std::string data;
  std::optional<std::int64_t> batch_size;  ///< default: the workload's (README)
  std::string mode = "steps";
  std::int64_t warmup = 20;
  std::int64_t steps = 100;
  double target = 0.90;
  std::int64_t max_epochs = 5;
  std::int64_t num_workers = 0;

  /// Called by the parser: the checks that make every later step safe to assume its inputs.
  void finalize() {
    auto one_of = [](const std::string& value, std::initializer_list<const char*> choices) {
      return std::ranges::any_of(choices, [&](const char* c) { return value == c; });
    };
    if (!one_of(contestant, {"cpp_loop", "trainpp", "loader"}))
      throw trainpp::error("--contestant must be cpp_loop, trainpp or loader, got '{}'", contestant);
    // The loader reads the cnn training data; other workloads are not defined for it.
    if (contestant == "loader" && workload.empty()) workload = "cnn";
    if (!one_of(workload, {"mlp", "cnn", "encoder"}))
      throw trainpp::error("--workload must be mlp, cnn or encoder, got '{}'", workload);
    if (contestant == "loader" && workload != "cnn") throw trainpp::error("--contestant loader reads the cnn data only");
    if (!one_of(mode, {"steps", "losses", "accuracy"}))
      throw trainpp::error("--mode must be steps, losses or accuracy, got '{}'", mode);
    if (mode == "accuracy" && workload != "cnn") throw trainpp::error("--mode accuracy is defined for --workload cnn only");
    if (data.empty()) throw trainpp::error("--data is required");
    if (contestant != "loader" && init.empty()) throw trainpp::error("--init is required");
    if (!batch_size) batch_size = workload == "cnn" ? 64 : 32;
    if (*batch_size < 1) throw trainpp::error("--batch_size must be positive, got {}", *batch_size);
    if (warmup < 0) throw trainpp::error("--warmup must be >= 0, got {}", warmup);
    if (steps < 1) throw trainpp::error("--steps must be positive, got {}", steps);
    if (max_epochs < 1) throw trainpp::error("--max_epochs must be positive, got {}", max_epochs);
    if (num_workers < 0) throw trainpp::error("--num_workers must be >= 0, got {}", num_workers);
  }
};

template <class V>
void visit_fields(BenchArgs& a, V&& v) {
  v(trainpp::FieldInfo{"contestant", "cpp_loop, trainpp or loader."}, a.contestant);
  v(trainpp::FieldInfo{"workload", "mlp, cnn or encoder (loader: cnn)."}, a.workload);
  v(trainpp::FieldInfo{"init", "The initial weights (<workload>_init.safetensors)."}, a.init);
  v(trainpp::FieldInfo{"data", "The data (<workload>_data.safetensors)."}, a.data);
  v(trainpp::FieldInfo{"batch_size", "Examples per step (default: the workload's)."}, a.batch_size);
  v(trainpp::FieldInfo{"mode", "steps (throughput), losses (the first steps' losses) or accuracy (cnn)."}, a.mode);
  v(trainpp::FieldInfo{"warmup", "Untimed steps (loader: batches) before the timed ones."}, a.warmup);
  v(trainpp::FieldInfo{"steps", "Timed steps; in losses mode, the losses printed; loader: batches drawn."}, a.steps);
  v(trainpp::FieldInfo{"target", "accuracy mode: the test accuracy that stops training."}, a.target);
  v(trainpp::FieldInfo{"max_epochs", "accuracy mode: the most epochs trained."}, a.max_epochs);
  v(trainpp::FieldInfo{"num_workers", "dataloader_num_workers (loader and trainpp)."}, a.num_workers);
}

// ---- inputs --------------------------------------------------------------------------------------

/// The tensors of a data file that a run uses.
struct Data {
  torch::Tensor train_x, train_y;
  torch::Tensor test_x, test_y;  ///< cnn only
};

Data load_data(const BenchArgs& args) {
  const auto file = trainpp::load_safetensors(args.data);
  auto tensor = [&](const char* name) {
    for (const auto& [key, t] : file.tensors)
      if (key == name) return t;
    throw trainpp::error("{} has no tensor '{}'", args.data, name);
  };
  Data data{.train_x = tensor("train_x"), .train_y = tensor("train_y")};
  if (args.mode == "accuracy") {
    data.test_x = tensor("test_x");
    data.test_y = tensor("test_y");
  }
  return data;
}

/// The rows every contestant trains on in steps and losses modes: whole batches only (for cnn the
/// first 937 * 64 = 59968 rows), so that batch i is the same rows for all of them, epoch after epoch.
std::int64_t whole_batch_rows(const torch::Tensor& x, std::int64_t batch_size) {
  const std::int64_t rows = x.size(0) / batch_size * batch_size;
  if (rows == 0) throw trainpp::error("the data has {} rows, fewer than one batch of {}", x.size(0), batch_size);
  return rows;
}

/// Test accuracy, in eval mode and without gradients, in batches of 1000; the model is back in train
/// mode afterwards. Both contestants evaluate with this, so only their training differs.
template <class Model>
double test_accuracy(Model& model, const torch::Tensor& x, const torch::Tensor& y) {
  torch::NoGradGuard no_grad;
  model->eval();
  constexpr std::int64_t eval_batch = 1000;
  const std::int64_t n = x.size(0);
  std::int64_t correct = 0;
  for (std::int64_t begin = 0; begin < n; begin += eval_batch) {
    const std::int64_t len = std::min(eval_batch, n - begin);
    const trainpp::Batch batch{{"x", x.narrow(0, begin, len)}};  // no labels: no loss computed
    const auto predicted = model->forward(batch).logits.argmax(1);
    correct += predicted.eq(y.narrow(0, begin, len)).sum().template item<std::int64_t>();
  }
  model->train();
  return static_cast<double>(correct) / static_cast<double>(n);
}

// ---- cpp_loop: LibTorch by hand ---------------------------------------------------------------------

template <class Model>
nlohmann::json run_cpp_loop(Model model, const Data& data, const BenchArgs& args) {
  const std::int64_t batch_size = *args.batch_size;
  model->train();
  auto parameters = model->parameters();
  torch::optim::AdamW optimizer(
      parameters, torch::optim::AdamWOptions(1e-3).betas({0.9, 0.999}).eps(1e-8).weight_decay(0.0));

  // One optimizer step on rows [begin, begin + len): contiguous slices, no copy.
  auto train_step = [&](std::int64_t begin, std::int64_t len) {
    const trainpp::Batch batch{{"x", data.train_x.narrow(0, begin, len)},
                               {"labels", data.train_y.narrow(0, begin, len)}};
    optimizer.zero_grad();
    auto loss = model->forward(batch).loss;
    loss.backward();
    torch::nn::utils::clip_grad_norm_(parameters, 1.0);
    optimizer.step();
    return loss;
  };

  if (args.mode == "accuracy") {
    // Whole epochs over all rows, the last batch partial; test accuracy after each epoch.
    const std::int64_t rows = data.train_x.size(0);
    const auto start = Clock::now();
    double accuracy = 0;
    std::int64_t epochs = 0;
    while (epochs < args.max_epochs) {
      for (std::int64_t begin = 0; begin < rows; begin += batch_size) train_step(begin, std::min(batch_size, rows - begin));
      ++epochs;
      accuracy = test_accuracy(model, data.test_x, data.test_y);
      if (accuracy >= args.target) break;
    }
    return {{"seconds", seconds_between(start, Clock::now())}, {"epochs", epochs}, {"accuracy", accuracy}};
  }

  const std::int64_t batches = whole_batch_rows(data.train_x, batch_size) / batch_size;
  auto batch_start = [&](std::int64_t step) { return step % batches * batch_size; };
  if (args.mode == "losses") {
    std::vector<double> losses;
    for (std::int64_t step = 0; step < args.steps; ++step)
      losses.push_back(train_step(batch_start(step), batch_size).template item<double>());
    return {{"losses", losses}};
  }

  for (std::int64_t step = 0; step < args.warmup; ++step) train_step(batch_start(step), batch_size);
  const auto start = Clock::now();
  for (std::int64_t step = args.warmup; step < args.warmup + args.steps; ++step) train_step(batch_start(step), batch_size);
  const double seconds = seconds_between(start, Clock::now());
  return {{"steps_per_s", static_cast<double>(args.steps) / seconds}, {"seconds", seconds}};
}

// ---- trainpp: the Trainer ---------------------------------------------------------------------------

/// What the timing callbacks record. Callbacks are held by value inside the Trainer; this outlives them.
struct Marks {
  std::optional<Clock::time_point> start, end;
  std::int64_t epochs = 0;
  double accuracy = 0;
};

/// Marks the end of step `warmup` (or the start of training when there is no warm-up) and the end of
/// step warmup + steps: the same span the hand-written loop times.
struct StepTimer {
  std::shared_ptr<Marks> marks;
  std::int64_t warmup = 0, steps = 0;

  void on_train_begin(const trainpp::TrainingArguments&, const trainpp::TrainerState&, trainpp::TrainerControl&) {
    if (warmup == 0) marks->start = Clock::now();
  }
  void on_step_end(const trainpp::TrainingArguments&, const trainpp::TrainerState& state, trainpp::TrainerControl&) {
    if (state.global_step == warmup) marks->start = Clock::now();
    if (state.global_step == warmup + steps) marks->end = Clock::now();
  }
};

/// accuracy mode: the test accuracy after each epoch (test_accuracy, as the hand-written loop does);
/// training stops once it reaches the target. The time runs from the start of training to the end
/// of the last evaluation.
struct AccuracyStop {
  std::shared_ptr<Marks> marks;
  torch::Tensor test_x, test_y;
  double target = 0;

  void on_train_begin(const trainpp::TrainingArguments&, const trainpp::TrainerState&, trainpp::TrainerControl&) {
    marks->start = Clock::now();
  }
  void on_epoch_end(const trainpp::TrainingArguments&, const trainpp::TrainerState&, trainpp::TrainerControl& control,
                    auto& trainer) {
    marks->accuracy = test_accuracy(trainer.model(), test_x, test_y);
    ++marks->epochs;
    marks->end = Clock::now();
    if (marks->accuracy >= target) control.should_training_stop = true;
  }
};

/// A fresh directory for the Trainer's output (it writes training_curves.svg at the end), removed
/// when the run is over.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "bench_cpp.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw trainpp::error("cannot create a temporary directory {}", pattern);
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// The README's hyperparameters; everything else stays at trainpp's defaults (optim adamw_torch_fused).
trainpp::TrainingArguments trainer_arguments(const BenchArgs& args, const std::filesystem::path& output_dir) {
  trainpp::TrainingArguments t;
  t.output_dir = output_dir.string();
  t.per_device_train_batch_size = *args.batch_size;
  t.learning_rate = 1e-3;
  t.weight_decay = 0.0;
  t.adam_beta1 = 0.9;
  t.adam_beta2 = 0.999;
  t.adam_epsilon = 1e-8;
  t.max_grad_norm = 1.0;
  t.lr_scheduler_type = trainpp::SchedulerType::constant;
  t.warmup_steps = 0;
  t.logging_steps = 1e9;  // beyond the run: no logging while timing
  t.save_strategy = trainpp::SaveStrategy::no;
  t.report_to = {"none"};
  t.disable_tqdm = true;
  t.use_cpu = true;
  t.seed = 0;
  t.dataloader_num_workers = args.num_workers;
  t.train_sampling_strategy = trainpp::SamplingStrategy::sequential;
  return t;
}

template <class Model>
nlohmann::json run_trainpp(Model model, const Data& data, const BenchArgs& args) {
  const TempDir output_dir;
  trainpp::TrainingArguments targs = trainer_arguments(args, output_dir.path());
  auto marks = std::make_shared<Marks>();

  if (args.mode == "accuracy") {
    targs.num_train_epochs = static_cast<double>(args.max_epochs);
    trainpp::TensorDataset train{{"x", data.train_x}, {"labels", data.train_y}};
    trainpp::Trainer trainer(model, targs, trainpp::train_dataset = std::move(train),
                             trainpp::callbacks = trainpp::callback_list(AccuracyStop{
                                 .marks = marks, .test_x = data.test_x, .test_y = data.test_y, .target = args.target}));
    trainer.train();
    return {{"seconds", seconds_between(*marks->start, *marks->end)},
            {"epochs", marks->epochs},
            {"accuracy", marks->accuracy}};
  }

  const std::int64_t rows = whole_batch_rows(data.train_x, *args.batch_size);
  trainpp::TensorDataset train{{"x", data.train_x.narrow(0, 0, rows)}, {"labels", data.train_y.narrow(0, 0, rows)}};
  if (args.mode == "losses") {
    targs.max_steps = args.steps;
    targs.logging_steps = 1;  // every step's loss, on its own
    trainpp::Trainer trainer(model, targs, trainpp::train_dataset = std::move(train));
    trainer.train();
    std::vector<double> losses;
    for (const auto& entry : trainer.state().log_history)
      if (entry.contains("loss")) losses.push_back(entry["loss"].template get<double>());
    return {{"losses", losses}};
  }

  targs.max_steps = args.warmup + args.steps;
  trainpp::Trainer trainer(model, targs, trainpp::train_dataset = std::move(train),
                           trainpp::callbacks = trainpp::callback_list(
                               StepTimer{.marks = marks, .warmup = args.warmup, .steps = args.steps}));
  trainer.train();
  if (!marks->start || !marks->end) throw trainpp::error("the Trainer stopped before step {}", targs.max_steps);
  const double seconds = seconds_between(*marks->start, *marks->end);
  return {{"steps_per_s", static_cast<double>(args.steps) / seconds}, {"seconds", seconds}};
}

// ---- loader: the data loading alone -----------------------------------------------------------------

/// trainpp's training DataLoader, built the way Trainer::train builds it (DefaultDataLoader::train_loader
/// from the same arguments), over the rows trainpp trains on in steps mode. Draws `warmup` batches
/// untimed, then `steps` timed ones, wrapping around epochs as training does; nothing else.
nlohmann::json run_loader(const Data& data, const BenchArgs& args) {
  const TempDir output_dir;
  trainpp::TrainingArguments targs = trainer_arguments(args, output_dir.path());
  targs.finalize();
  const std::int64_t rows = whole_batch_rows(data.train_x, *args.batch_size);
  const trainpp::TensorDataset dataset{{"x", data.train_x.narrow(0, 0, rows)}, {"labels", data.train_y.narrow(0, 0, rows)}};
  auto loader = trainpp::DefaultDataLoader{}.train_loader(dataset, targs, torch::Device(torch::kCPU));

  std::int64_t samples = 0;
  auto draw = [&](std::int64_t count) {
    for (std::int64_t i = 0; i < count;) {
      // nullopt ends an epoch; the next call starts the following one, as the training loop's set_epoch.
      if (auto batch = loader.next()) {
        samples += batch->batch_size();
        ++i;
      }
    }
  };
  draw(args.warmup);
  samples = 0;
  const auto start = Clock::now();
  draw(args.steps);
  const double seconds = seconds_between(start, Clock::now());
  return {{"samples_per_s", static_cast<double>(samples) / seconds}};
}

// ---- main ---------------------------------------------------------------------------------------

/// Intra-op threads: BENCH_THREADS, else every core; one inter-op thread (the README's rule for all
/// contestants). Called first, before any parallel work, which the inter-op setting requires.
void set_threads() {
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (const char* env = std::getenv("BENCH_THREADS"); env && *env) {
    char* end = nullptr;
    const long value = std::strtol(env, &end, 10);
    if (*end != '\0' || value < 1 || value > 4096) throw trainpp::error("BENCH_THREADS must be a positive integer, got '{}'", env);
    threads = static_cast<int>(value);
  }
  torch::set_num_threads(threads);
  torch::set_num_interop_threads(1);
}

/// The model of the workload, with the initial weights loaded (strictly: every name must match).
template <class F>
nlohmann::json with_model(const BenchArgs& args, F&& run) {
  auto load = [&](auto model) {
    trainpp::load_model(*model, args.init, /*strict=*/true);
    return run(std::move(model));
  };
  if (args.workload == "mlp") return load(bench::Mlp());
  if (args.workload == "cnn") return load(bench::Cnn());
  return load(bench::Encoder());
}

}  // namespace

int main(int argc, char** argv) {
  return trainpp::run_main([&] {
    set_threads();
    const auto args = trainpp::parse_args(argc, argv, BenchArgs{});
    const Data data = load_data(args);
    nlohmann::json result;
    if (args.contestant == "loader") {
      result = run_loader(data, args);
    } else if (args.contestant == "cpp_loop") {
      result = with_model(args, [&](auto model) { return run_cpp_loop(std::move(model), data, args); });
    } else {
      result = with_model(args, [&](auto model) { return run_trainpp(std::move(model), data, args); });
    }
    // The Trainer prints its own lines; the result is the last one.
    std::fflush(stdout);
    std::printf("%s\n", result.dump().c_str());
    std::fflush(stdout);
    return 0;
  });
}
