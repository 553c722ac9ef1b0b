// The seed's CustomTrainer: a classifier over three imbalanced classes, trained with a class-weighted
// cross entropy given to the Trainer's loss slot. Compiled against the single header. hf_trainer.py
// beside it is the same program with HF's Trainer; a test holds this one to its length.
//
//   weighted_loss --output_dir out/weighted --num_train_epochs 3

#include "weighted_loss.hpp"

int main(int argc, char** argv) {
  return trainpp::run_main([&] {
    auto args = trainpp::parse_args(argc, argv, trainpp::TrainingArguments{
        .output_dir = "out/weighted_loss", .per_device_train_batch_size = 32, .learning_rate = 1e-2,
        .logging_steps = 50, .eval_strategy = trainpp::IntervalStrategy::epoch,
        .save_strategy = trainpp::SaveStrategy::no});
    trainpp::Trainer trainer([] { return Classifier{}; }, args,  // built after seeding, as HF's model_init
                             trainpp::loss = WeightedLoss{},
                             trainpp::train_dataset = make_blobs(3000, 1),
                             trainpp::eval_dataset = make_blobs(1000, 2),
                             trainpp::compute_metrics = trainpp::accuracy);
    trainer.run();  // train, save, evaluate, log and save the metrics
    return 0;
  });
}
