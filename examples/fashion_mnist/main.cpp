// Fashion-MNIST: a small CNN trained with HF-style flags; prints the final eval metrics as HF's
// log_metrics does and saves the model into output_dir.
//
//   fashion_mnist --output_dir out --num_train_epochs 2 --learning_rate 1e-3

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
};
template <class V>
void visit_fields(DataArgs& a, V&& v) {
  v(trainpp::FieldInfo{"data_dir", "Folder with the Fashion-MNIST idx files (gzipped or not).", "data"}, a.data_dir);
}

int main(int argc, char** argv) {
  return trainpp::run_main([&] {
    // This example's defaults: a few minutes on two CPU cores to beyond 90% test accuracy.
    trainpp::TrainingArguments defaults;
    defaults.output_dir = "out/fashion_mnist";
    defaults.num_train_epochs = 3;
    defaults.per_device_train_batch_size = 64;
    defaults.per_device_eval_batch_size = 512;
    defaults.learning_rate = 2e-3;
    defaults.weight_decay = 0.01;
    defaults.logging_steps = 100;
    defaults.eval_strategy = trainpp::IntervalStrategy::epoch;
    defaults.save_strategy = trainpp::SaveStrategy::no;
    defaults.dataloader_num_workers = 1;
    auto [data, args] = trainpp::parse_args(argc, argv, DataArgs{}, defaults);

    using FM = trainpp::FashionMnist;
    auto train = FM::load(data.data_dir, FM::Split::train);
    auto test = FM::load(data.data_dir, FM::Split::test);

    trainpp::set_seed(args.seed);  // the same initial weights on every run
    trainpp::Trainer trainer(Net{}, args,
                             trainpp::train_dataset = std::move(train),
                             trainpp::eval_dataset = std::move(test),
                             trainpp::compute_metrics = trainpp::accuracy);
    auto result = trainer.train();
    trainer.log_metrics("train", result.metrics);
    trainer.save_model();

    auto metrics = trainer.evaluate();
    trainer.log_metrics("eval", metrics);
    trainer.save_metrics("eval", metrics);
    return 0;
  });
}
