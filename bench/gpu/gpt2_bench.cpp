// trainpp's contestant in bench/gpu/run: GPT-2 small (examples/causal_lm/gpt.hpp) trained by
// trainpp::Trainer on random tokens, timed in windows of steps between device synchronisations.
//
//   gpt2_bench [HF's training flags] [--n_layer 12 --n_embd 768 --n_head 12 --vocab_size 50257
//              --seq_len 1024 --warmup 10 --steps 30 --windows 3 --loss_steps 5]
//
// Prints one JSON object as its last stdout line: tokens_per_s of each window, the first losses,
// the parameter count and the allocator's peak device memory. bench/gpu/run compares it with HF's
// Trainer on the same architecture (bench/gpu/gpt2_hf.py) and prints the table.

#include "../../examples/causal_lm/gpt.hpp"

#include <trainpp/trainpp.hpp>

#ifdef TRAINPP_BENCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct GPTBenchArgs {
  std::int64_t n_layer = 12;
  std::int64_t n_embd = 768;
  std::int64_t n_head = 12;
  std::int64_t vocab_size = 50257;
  std::int64_t seq_len = 1024;
  std::int64_t warmup = 10;
  std::int64_t steps = 30;
  std::int64_t windows = 3;
  std::int64_t loss_steps = 5;

  void finalize() {
    for (auto [name, value] : {std::pair{"n_layer", n_layer}, {"n_embd", n_embd}, {"n_head", n_head},
                               {"vocab_size", vocab_size}, {"seq_len", seq_len}, {"steps", steps}, {"windows", windows}})
      if (value < 1) throw trainpp::error("--{} must be positive, got {}", name, value);
    // The first window starts at the end of a warm-up step (a sync point), so at least one is needed.
    if (warmup < 1) throw trainpp::error("--warmup must be >= 1, got {}", warmup);
    if (loss_steps < 0) throw trainpp::error("--loss_steps must be >= 0, got {}", loss_steps);
    if (n_embd % n_head != 0) throw trainpp::error("--n_embd ({}) must be a multiple of --n_head ({})", n_embd, n_head);
    if (loss_steps > warmup + steps * windows)
      throw trainpp::error("--loss_steps ({}) exceeds the steps trained ({})", loss_steps, warmup + steps * windows);
  }
};

template <class V>
void visit_fields(GPTBenchArgs& a, V&& v) {
  v(trainpp::FieldInfo{"n_layer", "Transformer blocks.", "model"}, a.n_layer);
  v(trainpp::FieldInfo{"n_embd", "Model width.", "model"}, a.n_embd);
  v(trainpp::FieldInfo{"n_head", "Attention heads.", "model"}, a.n_head);
  v(trainpp::FieldInfo{"vocab_size", "Vocabulary size.", "model"}, a.vocab_size);
  v(trainpp::FieldInfo{"seq_len", "Tokens per sequence (and the position table's size).", "model"}, a.seq_len);
  v(trainpp::FieldInfo{"warmup", "Untimed steps before the first window.", "timing"}, a.warmup);
  v(trainpp::FieldInfo{"steps", "Steps per timed window.", "timing"}, a.steps);
  v(trainpp::FieldInfo{"windows", "Timed windows (the table shows their median and spread).", "timing"}, a.windows);
  v(trainpp::FieldInfo{"loss_steps", "The first steps whose losses are printed (a host sync each).", "timing"}, a.loss_steps);
}

/// Waits for the device, so that a host clock read after it covers the work queued before it.
void synchronize(torch::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

/// Marks window borders (a device sync at each, nowhere else) and reads the first steps' losses.
struct WindowTimer {
  std::shared_ptr<std::vector<Clock::time_point>> marks;
  std::shared_ptr<std::vector<double>> losses;
  std::int64_t warmup = 0, steps = 0, windows = 0;

  template <class Trainer>
  void on_step_end(const trainpp::TrainingArguments&, const trainpp::TrainerState& state, trainpp::TrainerControl&,
                   Trainer& trainer) {
    const std::int64_t step = state.global_step;
    if (step >= warmup && (step - warmup) % steps == 0 && (step - warmup) / steps <= windows) {
      synchronize(trainer.device());
      marks->push_back(Clock::now());
    }
  }
  void on_log(const trainpp::TrainingArguments&, const trainpp::TrainerState&, trainpp::TrainerControl&,
              const nlohmann::json& logs) {
    if (logs.contains("loss")) losses->push_back(logs["loss"].get<double>());
  }
};

std::int64_t peak_device_bytes([[maybe_unused]] torch::Device device) {
#ifdef TRAINPP_BENCH_CUDA
  if (device.is_cuda())
    return c10::cuda::CUDACachingAllocator::getDeviceStats(device.index()).allocated_bytes[0].peak;
#endif
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  return trainpp::run_main([&] {
    trainpp::TrainingArguments defaults;
    defaults.output_dir = (std::filesystem::temp_directory_path() / "trainpp_gpt2_bench").string();
    defaults.overwrite_output_dir = true;
    defaults.per_device_train_batch_size = 16;
    defaults.bf16 = true;
    defaults.optim = trainpp::OptimizerName::adamw_torch_fused;
    defaults.save_strategy = trainpp::SaveStrategy::no;
    defaults.report_to = {"none"};
    defaults.disable_tqdm = true;
    defaults.train_sampling_strategy = trainpp::SamplingStrategy::sequential;
    auto [args, bench] = trainpp::parse_args(argc, argv, defaults, GPTBenchArgs{});

    const std::int64_t total_steps = bench.warmup + bench.steps * bench.windows;
    args.max_steps = total_steps;
    // A loss per step for the first loss_steps (each a host sync, before the timed windows), then none.
    args.logging_steps = 1;
    const std::int64_t batch = args.per_device_train_batch_size;

    // The same tokens as gpt2_hf.py: torch's CPU generator, seed 0, one row per sequence.
    torch::manual_seed(0);
    const auto tokens = torch::randint(bench.vocab_size, {batch * total_steps, bench.seq_len}, torch::kLong);
    trainpp::TensorDataset data{{"input_ids", tokens}, {"labels", tokens}};

    GPTConfig config;
    config.vocab_size = bench.vocab_size;
    config.n_positions = bench.seq_len;
    config.n_embd = bench.n_embd;
    config.n_layer = bench.n_layer;
    config.n_head = bench.n_head;
    GPT model(config);
    std::int64_t parameters = 0;
    for (const auto& p : model->parameters()) parameters += p.numel();

    auto marks = std::make_shared<std::vector<Clock::time_point>>();
    auto losses = std::make_shared<std::vector<double>>();
    struct StopLogging {  // logging only while the loss check needs it: no host sync in the windows
      std::int64_t loss_steps;
      void on_step_end(const trainpp::TrainingArguments&, const trainpp::TrainerState& state,
                       trainpp::TrainerControl& control) {
        if (state.global_step > loss_steps) control.should_log = false;
      }
    };
    trainpp::Trainer trainer(model, args, trainpp::train_dataset = std::move(data),
                             trainpp::callbacks = trainpp::callback_list(
                                 StopLogging{bench.loss_steps},
                                 WindowTimer{marks, losses, bench.warmup, bench.steps, bench.windows}));
    trainer.train();
    if (static_cast<std::int64_t>(marks->size()) != bench.windows + 1)
      throw trainpp::error("expected {} window marks, got {}", bench.windows + 1, marks->size());

    std::vector<double> tokens_per_s;
    for (std::size_t i = 1; i < marks->size(); ++i) {
      const double seconds = std::chrono::duration<double>((*marks)[i] - (*marks)[i - 1]).count();
      tokens_per_s.push_back(static_cast<double>(bench.steps * batch * bench.seq_len) / seconds);
    }
    losses->resize(std::min<std::size_t>(losses->size(), static_cast<std::size_t>(bench.loss_steps)));
    const nlohmann::json result{{"contestant", "trainpp"},
                                {"device", trainer.device().str()},
                                {"parameters", parameters},
                                {"batch_size", batch},
                                {"seq_len", bench.seq_len},
                                {"tokens_per_s", tokens_per_s},
                                {"losses", *losses},
                                {"peak_memory_bytes", peak_device_bytes(trainer.device())}};
    std::printf("%s\n", result.dump().c_str());
    return 0;
  });
}
