#!/usr/bin/env python3
"""Reads a trainpp run's checkpoints with Hugging Face's own code, to show that tools written for HF's
files read ours:

- trainer_state.json: transformers' TrainerState.load_from_json loads it, its keys are exactly the
  fields of TrainerState, and log_history holds HF's training entries (loss, grad_norm, learning_rate,
  epoch, step) and eval entries (eval_loss, eval_<metric>, ...);
- training_args.json: every key is a field of transformers' TrainingArguments — except the three trainpp
  keeps that transformers 5 dropped (overwrite_output_dir, logging_dir, warmup_ratio) — and
  TrainingArguments built from it agrees with it value for value after HF's own normalisation;
- the tensor files (model, optimizer state, process state) load with the safetensors package.

usage: check_checkpoint_with_hf.py <output_dir of a finished run with checkpoints>
Exits 77 (the test is skipped) when transformers is not installed.
"""
import dataclasses
import json
import sys
from pathlib import Path

try:
    import transformers
    from transformers import TrainingArguments
    from transformers.trainer_callback import TrainerState
    from safetensors.torch import load_file
except ImportError as e:  # pragma: no cover - depends on the environment
    print(f"SKIPPED: {e}")
    sys.exit(77)

TRAINPP_ONLY_ARGS = {"overwrite_output_dir", "logging_dir", "warmup_ratio"}


def fail(message):
    raise SystemExit(f"FAIL: {message}")


def check_state(path):
    ours = json.loads(path.read_text())
    hf_fields = {f.name for f in dataclasses.fields(TrainerState)}
    if set(ours) != hf_fields:
        fail(f"{path}: keys differ from TrainerState's: extra {sorted(set(ours) - hf_fields)}, "
             f"missing {sorted(hf_fields - set(ours))}")
    state = TrainerState.load_from_json(str(path))
    if state.global_step != ours["global_step"] or state.log_history != ours["log_history"]:
        fail(f"{path}: TrainerState.load_from_json read other values")
    train = [e for e in state.log_history if "loss" in e]
    evals = [e for e in state.log_history if "eval_loss" in e]
    if not train or not evals:
        fail(f"{path}: log_history lacks training or eval entries: {state.log_history}")
    for e in train:
        if set(e) != {"loss", "grad_norm", "learning_rate", "epoch", "step"}:
            fail(f"{path}: a training log entry has keys {sorted(e)}")
    for e in evals:
        if not {"eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second",
                "epoch", "step"} <= set(e):
            fail(f"{path}: an eval log entry has keys {sorted(e)}")
    if state.best_model_checkpoint is not None and state.best_global_step is None:
        fail(f"{path}: best_model_checkpoint without best_global_step")
    return state


def check_args(path):
    ours = json.loads(path.read_text())
    hf_fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    extra = set(ours) - hf_fields
    if extra != TRAINPP_ONLY_ARGS & set(ours) or not extra <= TRAINPP_ONLY_ARGS:
        fail(f"{path}: keys that are not TrainingArguments fields: {sorted(extra - TRAINPP_ONLY_ARGS)}")
    args = TrainingArguments(**{k: v for k, v in ours.items() if k in hf_fields})
    hf = args.to_dict()
    for key, value in ours.items():
        if key in extra:
            continue
        theirs = hf[key]
        if key == "report_to" and value == ["none"]:
            value = []  # HF spells "no integration" as an empty list
        if isinstance(theirs, float) or isinstance(value, float):
            same = float(theirs) == float(value)
        else:
            same = theirs == value
        if not same:
            fail(f"{path}: {key} is {value!r} in our file but {theirs!r} once TrainingArguments normalised it")


def main():
    out = Path(sys.argv[1])
    checkpoints = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    if not checkpoints:
        fail(f"no checkpoints in {out}")
    for ckpt in checkpoints:
        state = check_state(ckpt / "trainer_state.json")
        check_args(ckpt / "training_args.json")
        for name in ("model.safetensors", "optimizer.safetensors", "process_state.safetensors"):
            tensors = load_file(str(ckpt / name))
            if not tensors:
                fail(f"{ckpt / name} holds no tensors")
        print(f"ok   {ckpt.name}: trainer_state.json (step {state.global_step}, {len(state.log_history)} log "
              f"entries), training_args.json and the tensor files read by transformers {transformers.__version__}")
    check_state(out / "trainer_state.json")
    print(f"ok   {out / 'trainer_state.json'}")


if __name__ == "__main__":
    main()
