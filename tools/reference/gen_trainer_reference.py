#!/usr/bin/env python3
"""Runs transformers' own Trainer on tiny, fully specified problems and records what it logs, so the
C++ loop can be checked against it step by step (tests/trainpp/loop_test.cpp).

Each case fixes the initial weights, the data, the sample order and every argument; the JSON holds
all of them plus HF's log_history and final weights. Run with the project's venv:
    .venv/bin/python tools/reference/gen_trainer_reference.py
"""
import json
import os
import sys
import tempfile

import torch
from torch import nn
import transformers
from transformers import Trainer, TrainerCallback, TrainingArguments

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "trainer", "hf_loop_reference.json")


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(4, 8)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 3)

    def forward(self, features, labels=None, index=None, poison=None):
        logits = self.head(torch.tanh(self.norm(self.hidden(features))))
        if labels is None:
            return (logits,)
        loss = nn.functional.cross_entropy(logits, labels)
        if poison is not None:
            # An infinite loss whose gradient is still the finite cross-entropy one: the case for
            # logging_nan_inf_filter without poisoning the weights.
            loss = loss + torch.where(poison.any(), torch.tensor(float("inf")), torch.tensor(0.0))
        return (loss, logits)


class Rows(torch.utils.data.Dataset):
    def __init__(self, x, y, poison=None):
        self.x, self.y, self.poison = x, y, poison

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        row = {"features": self.x[i], "labels": self.y[i]}
        if self.poison is not None:
            row["poison"] = self.poison[i]
        return row


EVENTS = ["on_init_end", "on_train_begin", "on_epoch_begin", "on_step_begin", "on_substep_end",
          "on_pre_optimizer_step", "on_optimizer_step", "on_step_end", "on_log", "on_evaluate",
          "on_prediction_step", "on_save", "on_epoch_end", "on_train_end", "on_predict"]


class Recorder(TrainerCallback):
    """Records every event with the global step at which it fired."""

    def __init__(self):
        self.events = []


for _event in EVENTS:
    def _hook(self, args, state, control, _name=_event, **kwargs):
        self.events.append([_name, state.global_step])
    setattr(Recorder, _event, _hook)


def tensors_to_lists(model):
    return {k: v.detach().reshape(-1).tolist() for k, v in model.state_dict().items()}


def shapes(model):
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def run_case(name, n_train, n_eval, args_kwargs, poisoned_rows=()):
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(n_train, 4, generator=g)
    y = torch.randint(0, 3, (n_train,), generator=g)
    ex = torch.randn(n_eval, 4, generator=g)
    ey = torch.randint(0, 3, (n_eval,), generator=g)
    poison = None
    if poisoned_rows:
        poison = torch.zeros(n_train)
        poison[list(poisoned_rows)] = 1.0
    torch.manual_seed(99)
    model = Mlp()
    init = tensors_to_lists(model)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, report_to="none", use_cpu=True, save_strategy="no",
                                 disable_tqdm=True, **args_kwargs)
        recorder = Recorder()
        trainer = Trainer(model=model, args=args, train_dataset=Rows(x, y, poison),
                          eval_dataset=Rows(ex, ey) if n_eval else None, callbacks=[recorder])
        result = trainer.train()
        history = list(trainer.state.log_history)  # before the final evaluate() adds its entry
        final_eval = trainer.evaluate() if n_eval else None
    return {
        "name": name,
        "args": args_kwargs,
        "train_features": x.reshape(-1).tolist(), "train_labels": y.tolist(),
        "train_poison": poison.tolist() if poison is not None else None,
        "eval_features": ex.reshape(-1).tolist(), "eval_labels": ey.tolist(),
        "shapes": shapes(model),
        "initial_weights": init,
        "final_weights": tensors_to_lists(model),
        "log_history": history,
        "train_loss": result.training_loss,
        "global_step": result.global_step,
        "final_eval": final_eval,
        "events": recorder.events,
    }


def main():
    cases = [
        # Accumulation with a smaller last window (22 rows / 4 = 6 batches; GA 4 -> windows 4 + 2),
        # clipping that bites, cosine warmup, AdamW with decay only on weights.
        run_case("adamw_accumulation_clip_cosine", 22, 0, dict(
            per_device_train_batch_size=4, gradient_accumulation_steps=4, num_train_epochs=3,
            learning_rate=0.05, weight_decay=0.1, warmup_steps=2, lr_scheduler_type="cosine",
            max_grad_norm=0.5, optim="adamw_torch", logging_steps=1, seed=7,
            train_sampling_strategy="sequential")),
        # Shuffled order, fused AdamW, max_steps past one epoch, linear schedule, periodic evaluation
        # with an uneven last eval batch.
        run_case("fused_shuffled_eval", 19, 10, dict(
            per_device_train_batch_size=5, per_device_eval_batch_size=4, max_steps=7, learning_rate=0.02,
            warmup_steps=0.3, optim="adamw_torch_fused", logging_steps=2, eval_strategy="steps",
            eval_steps=3, seed=11, max_grad_norm=1.0, gradient_accumulation_steps=2)),
        # SGD without clipping, logging every 3 steps, epoch-fraction epochs.
        run_case("sgd_no_clip", 16, 0, dict(
            per_device_train_batch_size=3, num_train_epochs=1.5, learning_rate=0.1, optim="sgd",
            max_grad_norm=0.0, logging_steps=3, seed=3, lr_scheduler_type="constant",
            train_sampling_strategy="sequential")),
        # reduce_lr_on_plateau: stepped by each evaluation's eval_loss, never by the optimizer step.
        run_case("plateau_by_eval", 12, 6, dict(
            per_device_train_batch_size=4, per_device_eval_batch_size=6, num_train_epochs=4, learning_rate=0.5,
            optim="sgd", lr_scheduler_type="reduce_lr_on_plateau",
            lr_scheduler_kwargs={"patience": 0, "factor": 0.5, "threshold": 0.5}, logging_steps=1,
            eval_strategy="steps", eval_steps=1, seed=5, train_sampling_strategy="sequential")),
        # The logging switches: per-epoch logging with the first step logged too, evaluation every 2
        # steps after a delay of 3, and an evaluation before training starts.
        run_case("logging_epoch_first_step_eval_delay", 16, 6, dict(
            per_device_train_batch_size=4, per_device_eval_batch_size=4, num_train_epochs=3, learning_rate=0.05,
            logging_strategy="epoch", logging_first_step=True, eval_strategy="steps", eval_steps=2,
            eval_delay=3, eval_on_start=True, seed=2, train_sampling_strategy="sequential")),
        # Ratio-valued logging_steps (a quarter of max_steps), evaluation per epoch.
        run_case("ratio_logging_epoch_eval", 14, 5, dict(
            per_device_train_batch_size=4, per_device_eval_batch_size=5, max_steps=8, learning_rate=0.05,
            logging_steps=0.25, eval_strategy="epoch", seed=4, train_sampling_strategy="sequential")),
        # Infinite step losses (rows 5 and 9, in sequential order the 2nd and 3rd batches) under
        # logging_nan_inf_filter: each is replaced by the mean of the losses since the last log.
        run_case("nan_inf_filter", 20, 0, dict(
            per_device_train_batch_size=4, num_train_epochs=2, learning_rate=0.05, logging_steps=3,
            logging_nan_inf_filter=True, seed=6, train_sampling_strategy="sequential"),
            poisoned_rows=(5, 9)),
    ]
    meta = {"transformers": transformers.__version__, "torch": torch.__version__}
    with open(OUT, "w") as f:
        json.dump({"meta": meta, "cases": cases}, f)
    print(f"wrote {OUT} ({len(cases)} cases)")


if __name__ == "__main__":
    sys.exit(main())
