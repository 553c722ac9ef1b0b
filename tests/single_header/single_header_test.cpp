// Compiled with only single_include/ on the include path: the generated header is complete on its
// own and trains a model end to end.

#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

namespace single_header_test {

struct LinearImpl : torch::nn::Module {
  torch::nn::Linear fc{3, 1};
  LinearImpl() { register_module("fc", fc); }
  torch::Tensor forward(const trainpp::Batch& b) {  // a bare tensor output is the loss
    return torch::mse_loss(fc(b.at("x")).squeeze(1), b.at("labels"));
  }
};
TORCH_MODULE(Linear);

TEST_CASE("the single header trains a regression to a low loss") {
  torch::manual_seed(0);
  const auto x = torch::randn({256, 3});
  const auto y = x.matmul(torch::tensor({1.5f, -2.0f, 0.5f})) + 0.3;
  trainpp::TrainingArguments args;
  args.disable_tqdm = true;
  args.learning_rate = 0.05;
  args.num_train_epochs = 20;
  args.per_device_train_batch_size = 32;
  args.logging_steps = 40;
  args.save_strategy = trainpp::SaveStrategy::no;
  trainpp::Trainer trainer(Linear{}, args, trainpp::train_dataset = trainpp::TensorDataset{{"x", x}, {"labels", y}},
                           trainpp::eval_dataset = trainpp::TensorDataset{{"x", x}, {"labels", y}},
                           trainpp::compute_metrics = [](const trainpp::EvalPrediction&) { return trainpp::Metrics{}; });
  const auto result = trainer.train();
  CHECK(result.global_step == 160);
  const auto& history = trainer.state().log_history;
  REQUIRE(history.size() >= 2);
  CHECK(history.front()["loss"].get<double>() > 10 * history[history.size() - 2]["loss"].get<double>());
  CHECK(trainer.evaluate().at("eval_loss") < 0.01);
}

}  // namespace single_header_test
