// The compile-cost benchmark's baseline (bench/compile/run): trainer_program.cpp's program written as a
// hand loop on LibTorch alone: AdamW with a linear decay, an evaluation per epoch, the model saved.
#include <torch/torch.h>

#include <cstdio>
#include <string>

struct ClassifierImpl : torch::nn::Module {
  torch::nn::Sequential layers{torch::nn::Linear(2, 32), torch::nn::ReLU(), torch::nn::Linear(32, 3)};
  ClassifierImpl() { register_module("layers", layers); }
  torch::Tensor forward(const torch::Tensor& x) { return layers->forward(x); }
};
TORCH_MODULE(Classifier);

static std::pair<torch::Tensor, torch::Tensor> make_blobs(std::int64_t n, std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto labels = torch::randint(0, 3, {n}, gen);
  const auto centers = torch::tensor({{0.0f, 0.0f}, {1.5f, 0.5f}, {0.5f, 1.5f}});
  return {centers.index_select(0, labels) + torch::randn({n, 2}, gen) * 0.8, labels};
}

int main(int argc, char** argv) {
  const std::string output_dir = argc > 1 ? argv[1] : "out/compile_cost_torch";
  torch::manual_seed(42);
  Classifier model;
  const auto [train_x, train_y] = make_blobs(3000, 1);
  const auto [eval_x, eval_y] = make_blobs(1000, 2);
  const std::int64_t batch = 8, epochs = 3, steps_per_epoch = (train_x.size(0) + batch - 1) / batch;
  const double lr = 1e-2;
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(lr).weight_decay(0.0));
  std::int64_t step = 0;
  for (std::int64_t epoch = 0; epoch < epochs; ++epoch) {
    model->train();
    const auto order = torch::randperm(train_x.size(0));
    for (std::int64_t begin = 0; begin < train_x.size(0); begin += batch) {
      const auto index = order.slice(0, begin, std::min(begin + batch, train_x.size(0)));
      const auto loss = torch::nn::functional::cross_entropy(model->forward(train_x.index_select(0, index)),
                                                             train_y.index_select(0, index));
      optimizer.zero_grad();
      loss.backward();
      torch::nn::utils::clip_grad_norm_(model->parameters(), 1.0);
      for (auto& group : optimizer.param_groups())
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr * (1.0 - double(step) / double(epochs * steps_per_epoch)));
      optimizer.step();
      ++step;
    }
    torch::NoGradGuard no_grad;
    model->eval();
    const auto logits = model->forward(eval_x);
    const auto accuracy = (logits.argmax(1) == eval_y).to(torch::kFloat).mean().item<double>();
    const auto eval_loss = torch::nn::functional::cross_entropy(logits, eval_y).item<double>();
    std::printf("epoch %lld: eval_loss %.4f eval_accuracy %.4f\n", static_cast<long long>(epoch + 1), eval_loss, accuracy);
  }
  torch::save(model, output_dir + "_model.pt");
  return 0;
}
