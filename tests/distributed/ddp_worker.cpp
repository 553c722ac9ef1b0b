// One process of a data-parallel training job, for tests/distributed/check_ddp.py: a small MLP on a
// fixed synthetic classification set, trained by trainpp::Trainer with the DataParallel sharding
// slot, then evaluated and (rank 0) saved. Run alone it is the single-process reference.
//
//   ddp_worker --output_dir D [HF's training flags] [--rows N] [--fail_at_step S --fail_rank R]

#include <trainpp/trainpp.hpp>

#ifdef TRAINPP_BENCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <cstdlib>

namespace {

struct WorkerArgs {
  std::int64_t rows = 384;
  std::int64_t fail_at_step = -1;  ///< this rank exits with status 3 at that step (fault tests)
  std::int64_t fail_rank = 1;
  void finalize() {
    if (rows < 1) throw trainpp::error("--rows must be positive, got {}", rows);
  }
};

template <class V>
void visit_fields(WorkerArgs& a, V&& v) {
  v(trainpp::FieldInfo{"rows", "Training examples (evaluation: a quarter as many).", "worker"}, a.rows);
  v(trainpp::FieldInfo{"fail_at_step", "Exit with status 3 at this step on --fail_rank.", "worker"}, a.fail_at_step);
  v(trainpp::FieldInfo{"fail_rank", "The rank that fails.", "worker"}, a.fail_rank);
}

struct MLPImpl : torch::nn::Module {
  torch::nn::Linear fc1{nullptr}, fc2{nullptr}, unused{nullptr};
  MLPImpl() {
    fc1 = register_module("fc1", torch::nn::Linear(16, 32));
    fc2 = register_module("fc2", torch::nn::Linear(32, 4));
    // A parameter no forward uses: DDP must not wait for its gradient (find_unused_parameters).
    unused = register_module("unused", torch::nn::Linear(2, 2));
  }
  trainpp::ModelOutput forward(const trainpp::Batch& batch) {
    auto logits = fc2(torch::relu(fc1(batch.at("x"))));
    trainpp::ModelOutput out{.logits = logits};
    if (batch.contains("labels")) out.loss = torch::nn::functional::cross_entropy(logits, batch.at("labels"));
    return out;
  }
};
TORCH_MODULE(MLP);

trainpp::TensorDataset make_data(std::int64_t rows, std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto x = at::randn({rows, 16}, gen);
  auto w = at::randn({16, 4}, gen);
  auto y = (x.matmul(w) + 0.5 * at::randn({rows, 4}, gen)).argmax(1);
  return trainpp::TensorDataset{{"x", x}, {"labels", y}};
}

struct FailAt {
  std::int64_t step, rank;
  void on_step_end(const trainpp::TrainingArguments&, const trainpp::TrainerState& state, trainpp::TrainerControl&) {
    if (step >= 0 && state.global_step == step && trainpp::process_index() == rank) std::_Exit(3);
  }
};

}  // namespace

int main(int argc, char** argv) {
  return trainpp::run_main([&] {
    trainpp::TrainingArguments defaults;
    defaults.use_cpu = true;
    defaults.report_to = {"none"};
    defaults.disable_tqdm = true;
    defaults.save_strategy = trainpp::SaveStrategy::no;
    auto [args, worker] = trainpp::parse_args(argc, argv, defaults, WorkerArgs{});
    auto train = make_data(worker.rows, 1);
    auto eval = make_data(worker.rows / 4 + 1, 2);  // + 1: a size no world size divides evenly
    const auto eval_copy = eval;                    // shares the tensors
    torch::manual_seed(0);
    MLP model;
    trainpp::Trainer trainer(model, args, trainpp::sharding = trainpp::DataParallel{},
                             trainpp::train_dataset = std::move(train), trainpp::eval_dataset = std::move(eval),
                             trainpp::compute_metrics = trainpp::accuracy,
                             trainpp::callbacks = trainpp::callback_list(FailAt{worker.fail_at_step, worker.fail_rank}));
    trainer.train();
    auto metrics = trainer.evaluate();
    auto predictions = trainer.predict(eval_copy);
    if (trainer.state().is_world_process_zero) {
      trainer.save_model();
      trainer.save_state();
      nlohmann::json out(metrics);
      out["predict_rows"] = predictions.predictions.size(0);
      out["peak_memory_bytes"] = -1;
#ifdef TRAINPP_BENCH_CUDA
      if (trainer.device().is_cuda())
        out["peak_memory_bytes"] = c10::cuda::CUDACachingAllocator::getDeviceStats(trainer.device().index()).allocated_bytes[0].peak;
#endif
      const auto argmax = predictions.predictions.argmax(1).contiguous();
      out["predict_argmax"] = std::vector<std::int64_t>(argmax.data_ptr<std::int64_t>(),
                                                          argmax.data_ptr<std::int64_t>() + argmax.numel());
      trainpp::write_file_atomic(std::filesystem::path(args.output_dir) / "worker_results.json", out.dump(2));
    }
    return 0;
  });
}
