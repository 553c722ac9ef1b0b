"""The memory metric names transformers' Trainer reports with skip_memory_metrics=False, for
tests/trainpp/detail/memory_tracker_test.cpp: a tiny model trained (with an evaluation inside
training), then evaluated and predicted on its own.

    memory_tracker_hf.py <out.json>      exit 77 when transformers cannot be imported
"""

import json
import sys
import tempfile

try:
    import torch
    from transformers import Trainer, TrainingArguments
except ImportError as e:
    print(f"cannot import: {e}", file=sys.stderr)
    sys.exit(77)


class Rows(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return {"x": torch.full((2,), float(i)), "labels": torch.tensor(i % 3)}


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(2, 3)

    def forward(self, x, labels=None):
        logits = self.fc(x)
        return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}


with tempfile.TemporaryDirectory() as out:
    args = TrainingArguments(output_dir=out, per_device_train_batch_size=4, num_train_epochs=1, eval_strategy="steps",
                             eval_steps=1, save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True,
                             skip_memory_metrics=False)
    trainer = Trainer(model=Tiny(), args=args, train_dataset=Rows(), eval_dataset=Rows())
    train = trainer.train().metrics
    inside = [sorted(k for k in e if "_mem_" in k) for e in trainer.state.log_history if "eval_loss" in e]
    evaluate = trainer.evaluate()
    predict = trainer.predict(Rows()).metrics
    memory = lambda m: sorted(k for k in m if "_mem_" in k)
    json.dump({"train": memory(train), "log_history_train": memory(trainer.state.log_history[-2]),
               "evaluations_inside_training": inside, "evaluate": memory(evaluate), "predict": memory(predict),
               "evaluate_log_history": memory(trainer.state.log_history[-1])}, open(sys.argv[1], "w"))
