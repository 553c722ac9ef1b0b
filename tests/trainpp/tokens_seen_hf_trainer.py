"""include_num_input_tokens_seen in transformers' Trainer, for tests/trainpp/loop_test.cpp: writes
data.json (padded rows of a made-up token task) and, for each counting mode, the log_history HF's
Trainer records training a tiny model on those rows in order (batches of 3, accumulation 2, a short
last batch, evaluation every 2 steps).

    tokens_seen_hf_trainer.py <out dir>      exit 77 when transformers cannot be imported
"""

import json
import pathlib
import sys

try:
    import torch
    from transformers import Trainer, TrainingArguments
except ImportError as e:  # the C++ test reports itself as skipped
    print(f"cannot import: {e}", file=sys.stderr)
    sys.exit(77)

out = pathlib.Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)

# 13 rows of up to 7 tokens, right-padded with 0; lengths vary so that the modes count differently.
vocab, width, rows = 11, 7, 13
lengths = [(3 * i + 2) % width + 1 for i in range(rows)]
input_ids = [[(5 * i + 3 * j) % (vocab - 1) + 1 if j < n else 0 for j in range(width)] for i, n in enumerate(lengths)]
attention_mask = [[1 if j < n else 0 for j in range(width)] for n in lengths]
labels = [i % 2 for i in range(rows)]
eval_rows = 5
(out / "data.json").write_text(json.dumps({"input_ids": input_ids, "attention_mask": attention_mask,
                                           "labels": labels, "eval_rows": eval_rows}))


class Rows(torch.utils.data.Dataset):
    def __init__(self, count):
        self.count = count

    def __len__(self):
        return self.count

    def __getitem__(self, i):
        return {"input_ids": torch.tensor(input_ids[i]), "attention_mask": torch.tensor(attention_mask[i]),
                "labels": torch.tensor(labels[i])}


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, 4)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, input_ids, attention_mask, labels=None):
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1)
        logits = self.head(pooled)
        loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


for mode in ("all", "non_padding"):
    args = TrainingArguments(output_dir=str(out / f"run_{mode}"), per_device_train_batch_size=3,
                             per_device_eval_batch_size=2, gradient_accumulation_steps=2, num_train_epochs=2,
                             logging_steps=1, eval_strategy="steps", eval_steps=2, save_strategy="no",
                             include_num_input_tokens_seen=mode, train_sampling_strategy="sequential",
                             use_cpu=True, report_to="none", disable_tqdm=True, seed=3)
    torch.manual_seed(3)
    trainer = Trainer(model=Tiny(), args=args, train_dataset=Rows(rows), eval_dataset=Rows(eval_rows))
    trainer.train()
    (out / f"hf_log_history_{mode}.json").write_text(json.dumps(trainer.state.log_history))
    print(mode, trainer.state.num_input_tokens_seen)
