# The same program as main.cpp + weighted_loss.hpp, written with Hugging Face's Trainer: the seed's
# CustomTrainer (class weights [1, 2, 3]) on three imbalanced Gaussian blobs.
#
#   python hf_trainer.py --output_dir out/weighted --num_train_epochs 3

import numpy as np
import torch
from torch import nn
from transformers import HfArgumentParser, Trainer, TrainingArguments


class WeightedLossTrainer(Trainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        weight = torch.tensor([1.0, 2.0, 3.0], device=outputs["logits"].device)
        loss = nn.functional.cross_entropy(outputs["logits"].view(-1, 3), labels.view(-1), weight=weight)
        return (loss, outputs) if return_outputs else loss


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 3))

    def forward(self, features, labels=None):
        logits = self.layers(features)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return {"loss": loss, "logits": logits} if loss is not None else {"logits": logits}


def make_blobs(n, seed):
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(n, generator=gen)
    labels = (u >= 0.6).long() + (u >= 0.9).long()
    centers = torch.tensor([[0.0, 0.0], [1.5, 0.5], [0.5, 1.5]])
    features = centers[labels] + torch.randn(n, 2, generator=gen) * 0.8
    return [{"features": f, "labels": l} for f, l in zip(features, labels)]


def accuracy(prediction):
    return {"accuracy": float((np.argmax(prediction.predictions, -1) == prediction.label_ids).mean())}


def main():
    parser = HfArgumentParser(TrainingArguments)
    parser.set_defaults(output_dir="out/weighted_loss", per_device_train_batch_size=32, learning_rate=1e-2,
                        logging_steps=50, eval_strategy="epoch", save_strategy="no")
    (args,) = parser.parse_args_into_dataclasses()
    trainer = WeightedLossTrainer(model_init=Classifier, args=args, train_dataset=make_blobs(3000, 1),
                                  eval_dataset=make_blobs(1000, 2), compute_metrics=accuracy)
    result = trainer.train()
    trainer.save_model()
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()
    metrics = trainer.evaluate()
    trainer.log_metrics("eval", metrics)
    trainer.save_metrics("eval", metrics)


if __name__ == "__main__":
    main()
