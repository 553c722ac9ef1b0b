// The compile-cost benchmark's Trainer program (bench/compile/run): a small classifier trained and
// evaluated through trainpp::Trainer with HF's flags, as a user's program would be. torch_loop.cpp is the
// same program as a hand-written LibTorch loop.
#if TRAINPP_BENCH_TRAINER_HEADER
#include <trainpp/trainer.hpp>  // the lighter entry point: no model families, generation, Seq2Seq
#else
#include <trainpp/trainpp.hpp>
#endif

struct ClassifierImpl : torch::nn::Module {
  torch::nn::Sequential layers{torch::nn::Linear(2, 32), torch::nn::ReLU(), torch::nn::Linear(32, 3)};
  ClassifierImpl() { register_module("layers", layers); }
  trainpp::ModelOutput forward(const trainpp::Batch& batch) {
    trainpp::ModelOutput out{.logits = layers->forward(batch.at("features"))};
    if (batch.contains("labels")) out.loss = torch::nn::functional::cross_entropy(out.logits, batch.at("labels"));
    return out;
  }
};
TORCH_MODULE(Classifier);

static trainpp::TensorDataset make_blobs(std::int64_t n, std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto labels = torch::randint(0, 3, {n}, gen);
  const auto centers = torch::tensor({{0.0f, 0.0f}, {1.5f, 0.5f}, {0.5f, 1.5f}});
  return trainpp::TensorDataset{{"features", centers.index_select(0, labels) + torch::randn({n, 2}, gen) * 0.8},
                                {"labels", labels}};
}

int main(int argc, char** argv) {
  return trainpp::run_main([&] {
    auto args = trainpp::parse_args(argc, argv, trainpp::TrainingArguments{
        .output_dir = "out/compile_cost", .learning_rate = 1e-2, .eval_strategy = trainpp::IntervalStrategy::epoch});
    trainpp::Trainer trainer([] { return Classifier{}; }, args, trainpp::train_dataset = make_blobs(3000, 1),
                             trainpp::eval_dataset = make_blobs(1000, 2), trainpp::compute_metrics = trainpp::accuracy);
    trainer.run();
    return 0;
  });
}
