// The seed's CustomTrainer: a classifier over three imbalanced classes, trained with a class-weighted
// cross entropy given to the Trainer's loss slot. Compiled against the single header.
//
//   weighted_loss --output_dir out/weighted --num_train_epochs 3

#include "weighted_loss.hpp"

int main(int argc, char** argv) {
  return trainpp::run_main([&] {
    trainpp::TrainingArguments defaults;
    defaults.output_dir = "out/weighted_loss";
    defaults.learning_rate = 1e-2;
    defaults.per_device_train_batch_size = 32;
    defaults.logging_steps = 50;
    defaults.eval_strategy = trainpp::IntervalStrategy::epoch;
    defaults.save_strategy = trainpp::SaveStrategy::no;
    auto args = trainpp::parse_args(argc, argv, defaults);

    trainpp::set_seed(args.seed);
    trainpp::Trainer trainer(Classifier{}, args,
                             trainpp::loss = WeightedLoss{},
                             trainpp::train_dataset = make_blobs(3000, 1),
                             trainpp::eval_dataset = make_blobs(1000, 2),
                             trainpp::compute_metrics = trainpp::accuracy);
    auto result = trainer.train();
    trainer.log_metrics("train", result.metrics);
    trainer.save_model();
    trainer.log_metrics("eval", trainer.evaluate());
    return 0;
  });
}
