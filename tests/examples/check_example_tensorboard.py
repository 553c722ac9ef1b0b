#!/usr/bin/env python3
"""Reads the TensorBoard logs the Fashion-MNIST example wrote with --report_to tensorboard, with
TensorBoard's own reader, and checks the curves a user would look at are there.

usage: check_example_tensorboard.py <output_dir> <logging_steps> <max_steps>
"""
import sys
from pathlib import Path

from tensorboard.backend.event_processing import event_accumulator


def main():
    out, logging_steps, max_steps = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    files = sorted(out.glob("runs/*/events.out.tfevents.*"))
    if not files:
        raise SystemExit(f"FAIL: no event file under {out}/runs")
    acc = event_accumulator.EventAccumulator(str(files[0].parent), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    for tag in ("train/loss", "train/learning_rate", "train/grad_norm", "eval/loss", "eval/accuracy"):
        if tag not in scalars:
            raise SystemExit(f"FAIL: {tag} missing; the file has {sorted(scalars)}")
    steps = [e.step for e in acc.Scalars("train/loss")]
    expected = list(range(logging_steps, max_steps + 1, logging_steps))
    if steps != expected:
        raise SystemExit(f"FAIL: train/loss at steps {steps}, expected {expected}")
    print(f"ok   {files[0]}: {len(scalars)} scalar tags, train/loss at steps {steps}, "
          f"eval/accuracy {acc.Scalars('eval/accuracy')[-1].value:.4f}")


if __name__ == "__main__":
    main()
