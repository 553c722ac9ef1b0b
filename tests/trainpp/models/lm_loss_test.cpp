// The language models' token-level losses (models/lm_loss.hpp): what they count, and that a Trainer
// step under accumulation is the summed token loss of the window over the window's label tokens —
// for GPT-2 (labels shifted: the first position is never counted) and BERT-MLM (every label counted).

#include <trainpp/models/lm_loss.hpp>
#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <vector>

namespace lm_loss_test {

/// Two micro-batches that score very different numbers of tokens.
std::vector<trainpp::Batch> micro_batches(std::int64_t vocab, std::int64_t length) {
  torch::manual_seed(5);
  std::vector<trainpp::Batch> out;
  for (std::int64_t b = 0; b < 2; ++b) {
    const auto ids = torch::randint(4, vocab, {2, length}, torch::kLong);
    auto labels = ids.clone();
    if (b == 0) labels.slice(1, 2).fill_(-100);  // 2 rows x 2 labels, one of each row scoreable when shifted
    else labels.index_put_({0, 0}, -100);
    out.push_back(trainpp::Batch{{"input_ids", ids}, {"labels", labels}});
  }
  return out;
}

/// Batches as a dataset: row i of batch i / 2, in order.
struct Rows {
  std::vector<trainpp::Batch> rows;
  explicit Rows(const std::vector<trainpp::Batch>& batches) {
    for (const auto& b : batches)
      for (std::int64_t r = 0; r < b.at("input_ids").size(0); ++r)
        rows.push_back(trainpp::Batch{{"input_ids", b.at("input_ids")[r]}, {"labels", b.at("labels")[r]}});
  }
  [[nodiscard]] std::size_t size() const { return rows.size(); }
  [[nodiscard]] trainpp::Batch get(std::size_t i) const { return rows.at(i); }
};

struct Scratch {
  std::filesystem::path path = std::filesystem::temp_directory_path() / fmt::format("trainpp-lm-loss-{}", ::getpid());
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

/// One optimizer step over the two micro-batches (accumulation 2, SGD at learning rate 0, so the weights
/// stay): the logged loss and grad_norm, next to the window's token loss computed by hand and the norm
/// of its gradient.
template <class Model>
void check_window_loss(Model model, const std::vector<trainpp::Batch>& batches) {
  // By hand: both micro-batches' summed token losses over all their tokens.
  torch::Tensor loss_sum = torch::zeros({});
  torch::Tensor count = torch::zeros({}, torch::kLong);
  for (const auto& batch : batches) {
    const trainpp::TokenLossOutput out = model->forward(batch);
    CHECK(out.loss.item<double>() == doctest::Approx((out.loss_sum / out.num_tokens).item<double>()));
    CHECK(model->num_items_in_batch(batch).template item<std::int64_t>() == out.num_tokens.template item<std::int64_t>());
    loss_sum = loss_sum + out.loss_sum;
    count = count + out.num_tokens;
  }
  const auto expected = loss_sum / count;
  expected.backward();
  double squares = 0;
  for (auto& p : model->parameters())
    if (p.grad().defined()) {
      squares += p.grad().pow(2).sum().template item<double>();
      p.mutable_grad() = torch::Tensor();
    }
  // The old rule, for contrast: the mean of the micro-batches' means.
  const double mean_of_means =
      (model->forward(batches[0]).loss.template item<double>() + model->forward(batches[1]).loss.template item<double>()) / 2;

  Scratch scratch;
  trainpp::TrainingArguments args;
  args.output_dir = scratch.path.string();
  args.per_device_train_batch_size = 2;
  args.gradient_accumulation_steps = 2;
  args.max_steps = 1;
  args.logging_steps = 1;
  args.learning_rate = 0;
  args.optim = trainpp::OptimizerName::sgd;
  args.max_grad_norm = 1e9;
  args.save_strategy = trainpp::SaveStrategy::no;
  args.report_to = {"none"};
  args.disable_tqdm = true;
  args.train_sampling_strategy = trainpp::SamplingStrategy::sequential;
  args.use_cpu = true;
  trainpp::Trainer trainer(model, args, trainpp::train_dataset = Rows(batches));
  trainer.train();
  const nlohmann::json& logged = trainer.state().log_history.at(0);
  INFO("logged " << logged.dump() << ", by hand " << expected.item<double>() << ", mean of means " << mean_of_means);
  CHECK(logged["loss"].get<double>() == doctest::Approx(expected.item<double>()).epsilon(1e-6));
  CHECK(logged["grad_norm"].get<double>() == doctest::Approx(std::sqrt(squares)).epsilon(1e-5));
  CHECK(std::abs(mean_of_means - expected.item<double>()) > 1e-3);  // the data tells the two rules apart
}

}  // namespace lm_loss_test

TEST_CASE("GPT-2's token loss: labels counted after the first position, the window's tokens normalise the step") {
  trainpp::GPT2Config config{.vocab_size = 50, .n_positions = 16, .n_embd = 16, .n_layer = 1, .n_head = 2,
                             .resid_pdrop = 0, .embd_pdrop = 0, .attn_pdrop = 0};
  torch::manual_seed(0);
  trainpp::GPT2LMHeadModel model(config);
  const auto batches = lm_loss_test::micro_batches(config.vocab_size, 6);
  // Batch 0 keeps labels at positions 0 and 1 only: the shifted loss scores position 1 of each row.
  CHECK(model->num_items_in_batch(batches[0]).item<std::int64_t>() == 2);
  CHECK(model->num_items_in_batch(batches[1]).item<std::int64_t>() == 10);
  lm_loss_test::check_window_loss(model, batches);
}

TEST_CASE("BERT-MLM's token loss: every label counted, the window's tokens normalise the step") {
  trainpp::BertConfig config;
  config.vocab_size = 50;
  config.hidden_size = 16;
  config.num_hidden_layers = 1;
  config.num_attention_heads = 2;
  config.intermediate_size = 32;
  config.hidden_dropout_prob = 0;
  config.attention_probs_dropout_prob = 0;
  config.max_position_embeddings = 16;
  torch::manual_seed(0);
  trainpp::BertForMaskedLM model(config);
  const auto batches = lm_loss_test::micro_batches(config.vocab_size, 6);
  CHECK(model->num_items_in_batch(batches[0]).item<std::int64_t>() == 4);
  CHECK(model->num_items_in_batch(batches[1]).item<std::int64_t>() == 11);
  lm_loss_test::check_window_loss(model, batches);
}

TEST_CASE("a batch without labels has nothing to count: the model says which key is missing") {
  trainpp::GPT2Config config{.vocab_size = 50, .n_positions = 16, .n_embd = 16, .n_layer = 1, .n_head = 2};
  trainpp::GPT2LMHeadModel model(config);
  CHECK_THROWS_WITH_AS(model->num_items_in_batch(trainpp::Batch{{"input_ids", torch::zeros({1, 4}, torch::kLong)}}),
                       doctest::Contains("GPT2LMHeadModel: the batch has no \"labels\""), trainpp::Error);
}

namespace lm_loss_test {

/// Process 0 of two whose twin holds the same data: a sum over the processes is twice this one's
/// value. Gradients are left as they are (the twin's are equal, so their average is this one's).
struct TwinProcesses : trainpp::SingleDevice {
  int* reductions = nullptr;
  [[nodiscard]] int world_size() const { return 2; }
  void all_reduce_sum(torch::Tensor& t) {
    ++*reductions;
    t.mul_(2);
  }
};

}  // namespace lm_loss_test

TEST_CASE("under data parallelism the window's tokens are summed over the processes and the loss scaled back, as HF") {
  trainpp::GPT2Config config{.vocab_size = 50, .n_positions = 16, .n_embd = 16, .n_layer = 1, .n_head = 2,
                             .resid_pdrop = 0, .embd_pdrop = 0, .attn_pdrop = 0};
  torch::manual_seed(0);
  trainpp::GPT2LMHeadModel model(config);
  // One row, repeated: whichever rows the data shard gives this process, each micro-batch is two copies.
  const auto batch = lm_loss_test::micro_batches(config.vocab_size, 6)[1];
  std::vector<trainpp::Batch> rows(8, trainpp::Batch{{"input_ids", batch.at("input_ids")[0]}, {"labels", batch.at("labels")[0]}});
  const double token_mean =
      model->forward(trainpp::Batch{{"input_ids", batch.at("input_ids").slice(0, 0, 1)}, {"labels", batch.at("labels").slice(0, 0, 1)}})
          .loss.item<double>();
  struct Dataset {
    std::vector<trainpp::Batch> rows;
    [[nodiscard]] std::size_t size() const { return rows.size(); }
    [[nodiscard]] trainpp::Batch get(std::size_t i) const { return rows.at(i); }
  };
  for (const bool across : {true, false}) {
    INFO("average_tokens_across_devices " << across);
    lm_loss_test::Scratch scratch;
    trainpp::TrainingArguments args;
    args.output_dir = scratch.path.string();
    args.per_device_train_batch_size = 2;
    args.gradient_accumulation_steps = 2;
    args.max_steps = 1;
    args.logging_steps = 1;
    args.learning_rate = 0;
    args.optim = trainpp::OptimizerName::sgd;
    args.save_strategy = trainpp::SaveStrategy::no;
    args.report_to = {"none"};
    args.disable_tqdm = true;
    args.use_cpu = true;
    args.average_tokens_across_devices = across;
    int reductions = 0;
    lm_loss_test::TwinProcesses sharding;
    sharding.reductions = &reductions;
    trainpp::Trainer trainer(model, args, trainpp::train_dataset = Dataset{rows}, trainpp::sharding = sharding);
    trainer.train();
    const nlohmann::json& logged = trainer.state().log_history.at(0);
    // The count of both processes divides, the loss is multiplied by 2, the logged loss is averaged
    // over the processes: the token mean, as with one process (without the scaling: half of it).
    CHECK(logged["loss"].get<double>() == doctest::Approx(token_mean).epsilon(1e-6));
    // The logged loss and train_loss take one reduction each; the window's count one more when asked;
    // the flop count (HF's store_flos) one before the log and one at the end.
    CHECK(reductions == (across ? 5 : 4));
    // Each twin's flops, summed: 6 x tokens x parameters outside the embeddings, over 2 micro-batches.
    const double tokens = 2.0 * static_cast<double>(batch.at("input_ids").numel());  // 2 micro-batches of 2 rows
    const double flops_per_process = 6.0 * tokens * static_cast<double>(trainpp::detail::non_embedding_parameters(*model));
    CHECK(trainer.state().total_flos == doctest::Approx(2 * flops_per_process));
  }
}
