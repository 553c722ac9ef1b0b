// Fashion-MNIST: a small CNN trained with HF-style flags; prints the final eval metrics as HF's
// log_metrics does and saves the model, the metrics and trainer_state.json into output_dir.
//
//   fashion_mnist --output_dir out --num_train_epochs 2 --learning_rate 1e-3
//   fashion_mnist --output_dir out --save_strategy steps --save_steps 500      # checkpoints
//   fashion_mnist --output_dir out --save_strategy steps --resume_from_checkpoint true

#include <trainpp/data/fashion_mnist.hpp>  // not in trainpp.hpp: it needs zlib (CMake: trainpp::datasets)
#include <trainpp/trainpp.hpp>

namespace F = torch::nn::functional;

// The model follows HF's contract: given labels, its first output is the loss.
struct NetImpl : torch::nn::Module {
  torch::nn::Conv2d conv1{torch::nn::Conv2dOptions(1, 32, 3)};
  torch::nn::BatchNorm2d norm1{32};
  torch::nn::Conv2d conv2{torch::nn::Conv2dOptions(32, 64, 3)};
  torch::nn::BatchNorm2d norm2{64};
  torch::nn::Linear fc1{64 * 5 * 5, 128}, fc2{128, 10};
  torch::nn::Dropout dropout{0.25};

  NetImpl() {
    register_module("conv1", conv1);
    register_module("norm1", norm1);
    register_module("conv2", conv2);
    register_module("norm2", norm2);
    register_module("fc1", fc1);
    register_module("fc2", fc2);
    register_module("dropout", dropout);
  }

  trainpp::ModelOutput forward(const trainpp::Batch& batch) {
    auto x = F::max_pool2d(torch::relu(norm1(conv1(batch.at("pixel_values")))), F::MaxPool2dFuncOptions(2));
    x = F::max_pool2d(torch::relu(norm2(conv2(x))), F::MaxPool2dFuncOptions(2));
    x = dropout(torch::relu(fc1(x.flatten(1))));
    trainpp::ModelOutput out{.logits = fc2(x)};
    if (batch.contains("labels")) out.loss = F::cross_entropy(out.logits, batch.at("labels"));
    return out;
  }
};
TORCH_MODULE(Net);

/// This example's own flags, parsed beside TrainingArguments.
struct DataArgs {
  std::string data_dir = trainpp::FashionMnist::default_dir;
  std::optional<std::int64_t> max_train_samples;
  std::optional<std::int64_t> max_eval_samples;
};
template <class V>
void visit_fields(DataArgs& a, V&& v) {
  v(trainpp::FieldInfo{"data_dir", "Folder with the Fashion-MNIST idx files (gzipped or not).", "data"}, a.data_dir);
  v(trainpp::FieldInfo{"max_train_samples", "Train on the first N training examples only.", "data"}, a.max_train_samples);
  v(trainpp::FieldInfo{"max_eval_samples", "Evaluate on the first N test examples only.", "data"}, a.max_eval_samples);
}

int main(int argc, char** argv) {
  return trainpp::run_main([&] {
    // This example's defaults (a few minutes on two CPU cores to beyond 90% test accuracy); the
    // command line overrides any of them.
    auto [data, args] = trainpp::parse_args(argc, argv, DataArgs{}, trainpp::TrainingArguments{
        .output_dir = "out/fashion_mnist", .per_device_train_batch_size = 64, .per_device_eval_batch_size = 512,
        .num_train_epochs = 3, .learning_rate = 2e-3, .weight_decay = 0.01, .logging_steps = 100,
        .eval_strategy = trainpp::IntervalStrategy::epoch, .save_strategy = trainpp::SaveStrategy::no,
        .dataloader_num_workers = 1});
    // As HF's example scripts: info messages on the main process; --log_level / --log_level_replica
    // override it when the Trainer is built.
    if (args.should_log()) trainpp::logger().set_level(trainpp::LogLevel::info);

    using FM = trainpp::FashionMnist;
    auto train = FM::load(data.data_dir, FM::Split::train);
    auto test = FM::load(data.data_dir, FM::Split::test);
    for (auto [limit, name] : {std::pair{data.max_train_samples, "max_train_samples"}, {data.max_eval_samples, "max_eval_samples"}})
      if (limit && *limit <= 0) throw trainpp::error("--{} must be positive, got {}", name, *limit);
    if (data.max_train_samples) train = train.head(static_cast<std::size_t>(*data.max_train_samples));
    if (data.max_eval_samples) test = test.head(static_cast<std::size_t>(*data.max_eval_samples));

    // The model is built after seeding (HF's model_init): the same initial weights on every run.
    trainpp::Trainer trainer([] { return Net{}; }, args,
                             trainpp::train_dataset = std::move(train),
                             trainpp::eval_dataset = std::move(test),
                             trainpp::compute_metrics = trainpp::accuracy);
    // Train (resuming when --resume_from_checkpoint says so), save the model and trainer_state.json,
    // evaluate, and print and save the train and eval metrics, as HF's example scripts do.
    trainer.run();
    return 0;
  });
}
