// Text classification in the shape of HF's run_glue / run_classification: a small transformer encoder
// trained from scratch with a word-level vocabulary built from the training split (nothing to
// download), driven by HF's flags.
//
//   text_classification --do_train --do_eval --output_dir out/text_classification
//       # a generated task where the label depends on negation and clause order (see README.md)
//   text_classification --do_train --do_eval --train_file tweets.csv --text_column_names text
//       --label_column_name sentiment --max_seq_length 128 --output_dir out/tweets
//       # a CSV with a header row; without --validation_file, validation_split_percentage is held out

#include "encoder_classifier.hpp"
#include "text_data.hpp"

#include <trainpp/trainpp.hpp>

#include <map>
#include <string>

int main(int argc, char** argv) {
  using namespace text_classification;
  return trainpp::run_main([&] {
    // This example's defaults: a model trained from scratch wants a larger learning rate than the
    // 2e-5 of fine-tuning a pretrained BERT; flags override all of these.
    trainpp::TrainingArguments defaults;
    defaults.output_dir = "out/text_classification";
    defaults.learning_rate = 1e-3;
    defaults.weight_decay = 0.01;
    defaults.warmup_steps = 0.1;
    defaults.per_device_train_batch_size = 32;
    defaults.per_device_eval_batch_size = 256;
    defaults.logging_steps = 100;
    defaults.save_strategy = trainpp::SaveStrategy::no;
    auto [data, args] = trainpp::parse_args(argc, argv, DataTrainingArguments{}, defaults);
    if (args.should_log()) trainpp::logger().set_level(trainpp::LogLevel::info);
    auto [train, eval] = load_splits(data, args.seed);

    // Label ids in sorted order of the label names, as HF's run_classification assigns them.
    std::map<std::string, std::int64_t> label_ids;
    for (const auto& e : train) label_ids.emplace(e.label, 0);
    std::int64_t next = 0;
    for (auto& [name, id] : label_ids) id = next++;
    const WordTokenizer tokenizer(train, data.min_word_frequency);
    trainpp::note("{} training and {} evaluation examples, {} labels, a vocabulary of {} words", train.size(),
                  eval.size(), label_ids.size(), tokenizer.vocab_size());

    EncoderConfig config;
    config.vocab_size = tokenizer.vocab_size();
    config.num_labels = static_cast<std::int64_t>(label_ids.size());
    config.max_position_embeddings = data.max_seq_length;
    trainpp::set_seed(args.seed);  // the same initial weights on every run
    trainpp::Trainer trainer(EncoderClassifier(config), args,
                             trainpp::train_dataset = to_dataset(train, tokenizer, label_ids, data.max_seq_length),
                             trainpp::eval_dataset = to_dataset(eval, tokenizer, label_ids, data.max_seq_length),
                             trainpp::compute_metrics = trainpp::accuracy);
    if (args.do_train) {
      auto result = trainer.train();
      trainer.log_metrics("train", result.metrics);
      trainer.save_metrics("train", result.metrics);
      trainer.save_model();
      trainer.save_state();
    }
    if (args.do_eval) {
      auto metrics = trainer.evaluate();
      trainer.log_metrics("eval", metrics);
      trainer.save_metrics("eval", metrics);
    }
    return 0;
  });
}
