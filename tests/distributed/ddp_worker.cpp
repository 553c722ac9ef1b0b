// One process of a data-parallel training job, for tests/distributed/check_ddp.py and check_zero.py:
// a small residual MLP on a fixed synthetic classification set, trained by trainpp::Trainer with the
// AutoSharding slot (DataParallel, or ShardGradOp / FullShard as --fsdp says) or, with
// --slot full_shard, the FullShard type itself; then evaluated, saved, and its per-process memory
// reported. Run alone it is the single-process reference. --save_initial_weights writes the model's
// weights before training, for check_torch_ddp.py's torch run to start from.
//
// Under --fp16 each process writes the loss scale of every optimizer step and whether the step was
// skipped to fp16_scales_<rank>.json; --init_scale and --growth_interval set the loss scaler's
// (GradScalerOptions, which HF has no flags for), to force overflows.
//
//   ddp_worker --output_dir D [HF's training flags] [--rows N] [--fail_at_step S --fail_rank R]
//              [--slot auto|full_shard] [--save_initial_weights FILE] [--init_scale S] [--growth_interval N]

#include <trainpp/trainpp.hpp>

#ifdef TRAINPP_BENCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include <cstdlib>
#include <set>

namespace {

struct WorkerArgs {
  std::int64_t rows = 384;
  std::int64_t fail_at_step = -1;  ///< this rank exits with status 3 at that step (fault tests)
  std::int64_t fail_rank = 1;
  std::string slot = "auto";
  std::string save_initial_weights;  ///< empty: none written
  std::string process_report;  ///< empty: none; else a directory for each process's process_<rank>.json
  trainpp::GradScalerOptions scaler{};  ///< under --fp16
  void finalize() {
    if (rows < 1) throw trainpp::error("--rows must be positive, got {}", rows);
    if (slot != "auto" && slot != "full_shard") throw trainpp::error("--slot must be auto or full_shard, got {}", slot);
  }
};

template <class V>
void visit_fields(WorkerArgs& a, V&& v) {
  v(trainpp::FieldInfo{"rows", "Training examples (evaluation: a quarter as many).", "worker"}, a.rows);
  v(trainpp::FieldInfo{"fail_at_step", "Exit with status 3 at this step on --fail_rank.", "worker"}, a.fail_at_step);
  v(trainpp::FieldInfo{"fail_rank", "The rank that fails.", "worker"}, a.fail_rank);
  v(trainpp::FieldInfo{"slot", "The sharding slot: auto (AutoSharding) or full_shard (FullShard).", "worker"}, a.slot);
  v(trainpp::FieldInfo{"save_initial_weights", "Write the weights before training to this safetensors file (rank 0).", "worker"},
    a.save_initial_weights);
  v(trainpp::FieldInfo{"process_report", "Each process writes process_<rank>.json here: its place in the job, as the "
                                         "Trainer sees it, and the precision and sharding it trained with.", "worker"},
    a.process_report);
  v(trainpp::FieldInfo{"init_scale", "The loss scaler's first scale under --fp16.", "worker"}, a.scaler.init_scale);
  v(trainpp::FieldInfo{"growth_interval", "Clean steps before the loss scale grows, under --fp16.", "worker"},
    a.scaler.growth_interval);
}

/// A residual block: the unit FullShard wraps (fsdp_transformer_layer_cls_to_wrap "Block", or
/// min_num_params between 1057 and 1088: the block's own scale makes it larger than its Linear).
struct BlockImpl : torch::nn::Module {
  torch::nn::Linear fc{nullptr};
  torch::Tensor scale;
  BlockImpl() {
    fc = register_module("fc", torch::nn::Linear(32, 32));
    scale = register_parameter("scale", torch::ones({32}));
  }
  torch::Tensor forward(const torch::Tensor& x) { return x + scale * torch::relu(fc(x)); }
};
TORCH_MODULE(Block);

struct MLPImpl : torch::nn::Module {
  torch::nn::Linear fc1{nullptr}, fc2{nullptr}, unused{nullptr};
  torch::nn::ModuleList blocks;
  MLPImpl() {
    fc1 = register_module("fc1", torch::nn::Linear(16, 32));
    blocks = register_module("blocks", torch::nn::ModuleList(Block(), Block()));
    fc2 = register_module("fc2", torch::nn::Linear(32, 4));
    // A parameter no forward uses: DDP must not wait for its gradient (find_unused_parameters).
    unused = register_module("unused", torch::nn::Linear(2, 2));
  }
  trainpp::ModelOutput forward(const trainpp::Batch& batch) {
    auto h = torch::relu(fc1(batch.at("x")));
    // Through trainpp::call, so that FullShard can gather each block around its forward and backward.
    for (const auto& block : *blocks) h = trainpp::call(*block->as<BlockImpl>(), h);
    auto logits = fc2(h);
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

/// The bytes this process holds of parameters, gradients and optimizer state just before each
/// optimizer step (gradients exist then), each counted once per storage; the largest seen.
struct MemoryProbe {
  std::shared_ptr<nlohmann::json> peak = std::make_shared<nlohmann::json>(nlohmann::json{{"parameters", 0}, {"gradients", 0}, {"optimizer", 0}});
  void on_pre_optimizer_step(const trainpp::TrainingArguments&, const trainpp::TrainerState&, trainpp::TrainerControl&,
                             auto& trainer) {
    std::set<const void*> seen;
    auto bytes = [&](const std::vector<torch::Tensor>& tensors) {
      std::int64_t n = 0;
      for (const auto& t : tensors)
        if (t.defined() && t.has_storage() && seen.insert(t.storage().unsafeGetStorageImpl()).second)
          n += static_cast<std::int64_t>(t.storage().nbytes());
      return n;
    };
    auto params = trainer.module().parameters();
    std::vector<torch::Tensor> grads;
    for (const auto& p : params) grads.push_back(p.grad());
    for (const auto& p : trainer.optimizer().parameters()) grads.push_back(p.grad());
    if constexpr (requires { trainer.sharding().zero(); })
      if (auto* zero = trainer.sharding().zero()) {
        for (auto& t : zero->owned_tensors()) params.push_back(t);
        for (auto& t : zero->owned_gradients()) grads.push_back(t);
      }
    if constexpr (requires { trainer.sharding().owned_tensors(); }) {
      for (auto& t : trainer.sharding().owned_tensors()) params.push_back(t);
      for (auto& t : trainer.sharding().owned_gradients()) grads.push_back(t);
    }
    std::vector<torch::Tensor> state;
    for (const auto& entry : trainer.optimizer().state())
      for (const auto& [key, t] : entry) state.push_back(t);
    const auto p = bytes(params), g = bytes(grads), o = bytes(state);
    auto& peak = *this->peak;
    peak["parameters"] = std::max(peak["parameters"].get<std::int64_t>(), p);
    peak["gradients"] = std::max(peak["gradients"].get<std::int64_t>(), g);
    peak["optimizer"] = std::max(peak["optimizer"].get<std::int64_t>(), o);
  }
};

/// What this process was in the job and how it trained: check_launchers.py compares these with what
/// each launcher was asked for.
template <class Trainer>
void write_process_report(Trainer& trainer, const std::filesystem::path& dir) {
  const auto environment = trainpp::detect_launch_environment();
  const auto& state = trainer.state();
  nlohmann::json report = {{"rank", trainer.sharding().rank()},
                           {"world_size", trainer.sharding().world_size()},
                           {"local_rank", trainer.args().local_process_index()},
                           {"local_world_size", environment.local_world_size},
                           {"node_rank", environment.node_rank},
                           {"is_local_process_zero", state.is_local_process_zero},
                           {"is_world_process_zero", state.is_world_process_zero},
                           {"bf16", trainer.args().bf16},
                           {"fsdp", trainer.args().fsdp}};
  {  // the dtype a matrix product gets inside the training forward's autocast context
    auto context = trainer.precision().forward_context(trainer.device());
    report["autocast_dtype"] = c10::toString(torch::mm(torch::ones({2, 2}), torch::ones({2, 2})).scalar_type());
  }
  report["sharding"] = "data_parallel";
  if constexpr (requires { trainer.sharding().zero(); })
    if (auto* zero = trainer.sharding().zero()) {
      report["sharding"] = zero->label();
      report["shard_group_size"] = zero->shard_group_size();
      report["state_dict_type"] = zero->options().state_dict_type == trainpp::StateDictType::sharded_state_dict
                                      ? "SHARDED_STATE_DICT" : "FULL_STATE_DICT";
    }
  std::filesystem::create_directories(dir);
  trainpp::write_file_atomic(dir / fmt::format("process_{}.json", report["rank"].get<int>()), report.dump(2));
}
/// Under fp16: the scale each optimizer step's loss was multiplied by, and whether the step was
/// skipped (the scale then backs off; it never shrinks otherwise).
struct ScaleRecorder {
  std::shared_ptr<nlohmann::json> steps = std::make_shared<nlohmann::json>(nlohmann::json::array());
  std::shared_ptr<double> before = std::make_shared<double>(0.0);
  static const trainpp::FP16* fp16(auto& trainer) { return std::get_if<trainpp::FP16>(&trainer.precision().policy()); }
  void on_pre_optimizer_step(const trainpp::TrainingArguments&, const trainpp::TrainerState&, trainpp::TrainerControl&,
                             auto& trainer) {
    if (const auto* p = fp16(trainer)) *before = p->scaler.get_scale();
  }
  void on_optimizer_step(const trainpp::TrainingArguments&, const trainpp::TrainerState&, trainpp::TrainerControl&,
                         auto& trainer) {
    if (const auto* p = fp16(trainer)) {
      const double after = p->scaler.get_scale();
      steps->push_back({{"scale", *before}, {"skipped", after < *before}, {"scale_after", after}});
    }
  }
};

template <class Sharding>
int run(const trainpp::TrainingArguments& args, const WorkerArgs& worker, Sharding sharding) {
  auto train = make_data(worker.rows, 1);
  auto eval = make_data(worker.rows / 4 + 1, 2);  // + 1: a size no world size divides evenly
  const auto eval_copy = eval;                    // shares the tensors
  torch::manual_seed(0);
  MLP model;
  if (!worker.save_initial_weights.empty() && trainpp::process_index() == 0)
    trainpp::save_safetensors(worker.save_initial_weights, trainpp::state_dict(*model));
  std::int64_t trainable = 0;
  for (const auto& p : model->parameters()) trainable += p.numel();
  MemoryProbe memory;
  ScaleRecorder scales;
  trainpp::Trainer trainer(model, args, trainpp::sharding = std::move(sharding),
                           trainpp::precision = trainpp::MixedPrecision(worker.scaler),
                           trainpp::train_dataset = std::move(train), trainpp::eval_dataset = std::move(eval),
                           trainpp::compute_metrics = trainpp::accuracy,
                           trainpp::callbacks = trainpp::callback_list(FailAt{worker.fail_at_step, worker.fail_rank}, memory, scales));
  trainer.train();
  if (!worker.process_report.empty()) write_process_report(trainer, worker.process_report);
  if (args.fp16)
    trainpp::write_file_atomic(std::filesystem::path(args.output_dir) /
                                   fmt::format("fp16_scales_{}.json", trainer.sharding().rank()),
                               scales.steps->dump(1));
  auto metrics = trainer.evaluate();
  auto predictions = trainer.predict(eval_copy);
  trainer.save_model();  // every process: a sharded model is gathered for it
  if (trainer.state().is_world_process_zero) {
    trainer.save_state();
    nlohmann::json out(metrics);
    out["predict_rows"] = predictions.predictions.size(0);
    out["peak_memory_bytes"] = -1;
#ifdef TRAINPP_BENCH_CUDA
    if (trainer.device().is_cuda())
      out["peak_memory_bytes"] = c10::cuda::CUDACachingAllocator::getDeviceStats(trainer.device().index()).allocated_bytes[0].peak;
#endif
    const auto argmax = predictions.predictions.argmax(1).contiguous();
    const auto* first = static_cast<const std::int64_t*>(argmax.data_ptr());
    out["predict_argmax"] = std::vector<std::int64_t>(first, first + argmax.numel());
    out["memory"] = *memory.peak;
    out["trainable_parameters"] = trainable;
    out["world_size"] = trainer.sharding().world_size();
    trainpp::write_file_atomic(std::filesystem::path(args.output_dir) / "worker_results.json", out.dump(2));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return trainpp::run_main([&] {
    trainpp::TrainingArguments defaults;
    defaults.use_cpu = true;
    defaults.report_to = {"none"};
    defaults.disable_tqdm = true;
    defaults.save_strategy = trainpp::SaveStrategy::no;
    auto [args, worker] = trainpp::parse_args(argc, argv, defaults, WorkerArgs{});
    if (worker.slot == "full_shard") return run(args, worker, trainpp::FullShard{});
    return run(args, worker, trainpp::AutoSharding{});
  });
}
