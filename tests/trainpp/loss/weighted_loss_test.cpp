// The seed's CustomTrainer example: class weights [1, 2, 3] change the loss as weighted cross entropy
// defines it, and the Trainer uses the policy in training and evaluation.

#include "../../../examples/weighted_loss/weighted_loss.hpp"

#include <doctest/doctest.h>

#include <numeric>

namespace weighted_loss_test {

TEST_CASE("WeightedLoss is cross entropy weighted [1, 2, 3]: sum_i w[y_i] * nll_i / sum_i w[y_i]") {
  const auto logits = torch::tensor({{2.0f, 0.5f, -1.0f}, {0.1f, 0.2f, 0.3f}, {-1.0f, 1.0f, 0.0f}, {0.3f, -0.2f, 2.0f}});
  const auto labels = torch::tensor({0, 2, 1, 2}, torch::kLong);
  const trainpp::Batch batch{{"labels", labels}};
  const double weighted = WeightedLoss{}(trainpp::ModelOutput{.logits = logits}, batch).item<double>();

  const auto nll = -torch::log_softmax(logits.to(torch::kDouble), 1).gather(1, labels.unsqueeze(1)).squeeze(1);
  const auto w = torch::tensor({1.0, 2.0, 3.0}, torch::kDouble).index_select(0, labels);
  const double expected = ((w * nll).sum() / w.sum()).item<double>();
  const double unweighted = nll.mean().item<double>();
  CHECK(weighted == doctest::Approx(expected).epsilon(1e-6));
  CHECK(std::abs(weighted - unweighted) > 1e-3);  // the weights matter for this batch

  // Equal weights give back the plain mean.
  WeightedLoss uniform{.weight = torch::tensor({1.0f, 1.0f, 1.0f})};
  CHECK(uniform(trainpp::ModelOutput{.logits = logits}, batch).item<double>() == doctest::Approx(unweighted).epsilon(1e-6));
}

TEST_CASE("the Trainer evaluates with the loss slot's loss, not the model's own") {
  trainpp::TrainingArguments args;
  args.disable_tqdm = true;
  args.per_device_eval_batch_size = 1000;
  auto eval = make_blobs(300, 3);
  trainpp::set_seed(0);
  Classifier model;
  trainpp::Trainer weighted(model, args, trainpp::loss = WeightedLoss{}, trainpp::eval_dataset = std::ref(eval));
  trainpp::Trainer plain(model, args, trainpp::eval_dataset = std::ref(eval));
  const double w = weighted.evaluate().at("eval_loss");
  const double p = plain.evaluate().at("eval_loss");

  torch::NoGradGuard no_grad;
  const auto all = eval.gather([] { std::vector<int64_t> v(300); std::iota(v.begin(), v.end(), 0); return v; }())
                       .to(weighted.device());
  const auto out = model->forward(all);
  CHECK(w == doctest::Approx(WeightedLoss{}(out, all).item<double>()).epsilon(1e-5));
  CHECK(p == doctest::Approx(out.loss.item<double>()).epsilon(1e-5));
  CHECK(std::abs(w - p) > 1e-4);
}

TEST_CASE("training with the weights raises recall on the rare class" *
          doctest::test_suite("integration")) {
  auto recall_of_rare = [](bool use_weights) {
    trainpp::TrainingArguments args;
    args.disable_tqdm = true;
    args.learning_rate = 1e-2;
    args.per_device_train_batch_size = 32;
    args.num_train_epochs = 3;
    args.logging_steps = 1000;
    args.save_strategy = trainpp::SaveStrategy::no;
    trainpp::set_seed(0);
    Classifier model;
    auto test = make_blobs(2000, 2);
    auto predict = [&](auto& trainer) {
      const auto out = trainer.predict(test);
      const auto rare = out.label_ids.cpu().eq(2);
      return out.predictions.cpu().argmax(-1).eq(2).logical_and(rare).sum().template item<double>() / rare.sum().template item<double>();
    };
    if (use_weights) {
      trainpp::Trainer t(model, args, trainpp::loss = WeightedLoss{}, trainpp::train_dataset = make_blobs(3000, 1));
      t.train();
      return predict(t);
    }
    trainpp::Trainer t(model, args, trainpp::train_dataset = make_blobs(3000, 1));
    t.train();
    return predict(t);
  };
  const double weighted = recall_of_rare(true), plain = recall_of_rare(false);
  INFO("rare-class recall: weighted " << weighted << ", plain " << plain);
  CHECK(weighted > plain + 0.05);
}

}  // namespace weighted_loss_test
