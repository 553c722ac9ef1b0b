#!/usr/bin/env python3
"""Runs transformers' own Trainer with a callback that records every event, so the C++ Trainer's
callback events can be checked against it (tests/trainpp/callbacks/hook_order_test.cpp).

Two scenarios, both on a tiny model and random data (the events depend on the sizes and the
arguments only, never on the values):

  hook_order     gradient accumulation with a shorter last window, logging (first step included),
                 periodic evaluation and saving, then predict() after training.
  control_flags  a steering callback sets TrainerControl flags: from on_step_end, log and save at one
                 step, evaluate at another, stop an epoch early, stop training; from on_epoch_end,
                 log and save. Every built-in trigger is off, so whatever happens comes from the
                 flags.

For each event the recorder, placed after any other user callback, writes the event's name, the
global step, the control flags set when it saw them, and for on_log / on_evaluate / on_predict the
sorted keys of the logs or metrics (the keys, not the values: some are timings). The JSON also holds
the arguments, the checkpoint directories left in output_dir and log_history as (step, keys, epoch).
Nothing in it depends on the machine or the time. Run with the project's venv:
    .venv/bin/python tools/reference/gen_callback_reference.py
"""
import json
import os
import sys
import tempfile

import torch
from torch import nn
import transformers
from transformers import Trainer, TrainerCallback, TrainingArguments

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "callbacks", "callback_reference.json")

FLAGS = ["should_epoch_stop", "should_evaluate", "should_log", "should_save", "should_training_stop"]


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(4, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, features, labels=None):
        logits = self.head(torch.tanh(self.hidden(features)))
        if labels is None:
            return (logits,)
        return (nn.functional.cross_entropy(logits, labels), logits)


class Rows(torch.utils.data.Dataset):
    def __init__(self, n, generator):
        self.x = torch.randn(n, 4, generator=generator)
        self.y = torch.randint(0, 3, (n,), generator=generator)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"features": self.x[i], "labels": self.y[i]}


class Recorder(TrainerCallback):
    """Records each event as {event, step, flags[, keys]}."""

    def __init__(self):
        self.events = []

    def add(self, event, state, control, keys=None):
        record = {"event": event, "step": state.global_step,
                  "flags": [flag for flag in FLAGS if getattr(control, flag)]}
        if keys is not None:
            record["keys"] = sorted(keys)
        self.events.append(record)

    def on_init_end(self, args, state, control, **kwargs):
        self.add("on_init_end", state, control)

    def on_train_begin(self, args, state, control, **kwargs):
        self.add("on_train_begin", state, control)

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.add("on_epoch_begin", state, control)

    def on_step_begin(self, args, state, control, **kwargs):
        self.add("on_step_begin", state, control)

    def on_substep_end(self, args, state, control, **kwargs):
        self.add("on_substep_end", state, control)

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.add("on_pre_optimizer_step", state, control)

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.add("on_optimizer_step", state, control)

    def on_step_end(self, args, state, control, **kwargs):
        self.add("on_step_end", state, control)

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.add("on_log", state, control, logs.keys())

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.add("on_evaluate", state, control, metrics.keys())

    def on_prediction_step(self, args, state, control, **kwargs):
        self.add("on_prediction_step", state, control)

    def on_predict(self, args, state, control, metrics=None, **kwargs):
        self.add("on_predict", state, control, metrics.keys())

    def on_save(self, args, state, control, **kwargs):
        self.add("on_save", state, control)

    def on_epoch_end(self, args, state, control, **kwargs):
        self.add("on_epoch_end", state, control)

    def on_train_end(self, args, state, control, **kwargs):
        self.add("on_train_end", state, control)


class Steering(TrainerCallback):
    """Sets control flags at chosen global steps, from on_step_end and on_epoch_end (after the
    default flow)."""

    def __init__(self, log_and_save_at, evaluate_at, stop_epoch_at, stop_training_at, log_and_save_at_epoch_end):
        self.log_and_save_at = log_and_save_at
        self.evaluate_at = evaluate_at
        self.stop_epoch_at = stop_epoch_at
        self.stop_training_at = stop_training_at
        self.log_and_save_at_epoch_end = log_and_save_at_epoch_end

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.log_and_save_at:
            control.should_log = True
            control.should_save = True
        if state.global_step == self.evaluate_at:
            control.should_evaluate = True
        if state.global_step == self.stop_epoch_at:
            control.should_epoch_stop = True
        if state.global_step == self.stop_training_at:
            control.should_training_stop = True

    def on_epoch_end(self, args, state, control, **kwargs):
        if state.global_step == self.log_and_save_at_epoch_end:
            control.should_log = True
            control.should_save = True


# Shared by both scenarios: 10 training rows in micro-batches of 2 (5 per epoch), windows of 2
# micro-batches (3 updates per epoch, the last a window of 1), 4 evaluation rows in batches of 2.
COMMON = dict(per_device_train_batch_size=2, gradient_accumulation_steps=2, per_device_eval_batch_size=2,
              learning_rate=0.05, seed=17, report_to="none", use_cpu=True, disable_tqdm=True)
N_TRAIN, N_EVAL = 10, 4


def run(name, args_kwargs, steering=None, predict_after=False):
    generator = torch.Generator().manual_seed(1234)
    train, evaluation = Rows(N_TRAIN, generator), Rows(N_EVAL, generator)
    torch.manual_seed(99)
    recorder = Recorder()
    callbacks = ([Steering(**steering)] if steering else []) + [recorder]
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, **args_kwargs)
        trainer = Trainer(model=Mlp(), args=args, train_dataset=train, eval_dataset=evaluation, callbacks=callbacks)
        trainer.train()
        if predict_after:
            trainer.predict(evaluation)
        checkpoints = sorted((d for d in os.listdir(out) if d.startswith("checkpoint-")),
                             key=lambda d: int(d.split("-")[1]))
    log_history = [{"step": entry["step"], "keys": sorted(k for k in entry if k != "step"),
                    "epoch": entry.get("epoch")} for entry in trainer.state.log_history]
    case = {"name": name, "n_train": N_TRAIN, "n_eval": N_EVAL, "args": args_kwargs}
    if steering:
        case["steering"] = steering
    case.update({"global_step": trainer.state.global_step, "checkpoints": checkpoints,
                 "log_history": log_history, "events": recorder.events})
    return case


def dump(document):
    """JSON with one event or log entry per line, so that a change reads as a small diff."""
    lines = ["{", f'  "meta": {json.dumps(document["meta"])},', '  "cases": [']
    for c, case in enumerate(document["cases"]):
        lines.append("    {")
        items = list(case.items())
        for i, (key, value) in enumerate(items):
            comma = "," if i + 1 < len(items) else ""
            if isinstance(value, list) and value and isinstance(value[0], dict):
                lines.append(f'      "{key}": [')
                lines += [f"        {json.dumps(v)}" + ("," if j + 1 < len(value) else "") for j, v in enumerate(value)]
                lines.append("      ]" + comma)
            else:
                lines.append(f'      "{key}": {json.dumps(value)}{comma}')
        lines.append("    }" + ("," if c + 1 < len(document["cases"]) else ""))
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


def main():
    cases = [
        run("hook_order", dict(COMMON, num_train_epochs=2, logging_steps=2, logging_first_step=True,
                               eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=3),
            predict_after=True),
        # 3 epochs of 3 updates (max_steps 9). Epoch 0 ends at step 3, where the flags set at its end
        # log and save; stopping epoch 1 at its second update skips its window of 1; stopping
        # training at step 7 ends epoch 2 early and skips step 8.
        run("control_flags", dict(COMMON, num_train_epochs=3, logging_steps=100, eval_strategy="no",
                                  save_strategy="no"),
            steering=dict(log_and_save_at=2, evaluate_at=4, stop_epoch_at=5, stop_training_at=7,
                          log_and_save_at_epoch_end=3)),
    ]
    meta = {"transformers": transformers.__version__, "torch": torch.__version__}
    text = dump({"meta": meta, "cases": cases})
    json.loads(text)  # the hand-made layout must still be JSON
    with open(OUT, "w") as f:
        f.write(text)
    print(f"wrote {os.path.normpath(OUT)} ({len(cases)} cases)")


if __name__ == "__main__":
    sys.exit(main())
