#!/usr/bin/env python3
"""Record the learning rate of every transformers scheduler at every step, for trainpp's schedule tests.

Each case builds a throwaway torch optimizer with Trainer-like parameter groups (two groups at the same
base lr), creates the scheduler with `transformers.get_scheduler` exactly as `Trainer.create_scheduler`
does, and records the lr of group 0 before the first scheduler step and after each one, running past
num_training_steps. ReduceLROnPlateau cases instead feed a fixed metric sequence and record every
group's lr after each metric.

Usage: python tools/reference/gen_scheduler_reference.py [output.json]
(default: tests/data/schedule/reference.json next to this repository's tools/)
"""

import json
import sys
from types import SimpleNamespace
from pathlib import Path

import torch
import transformers
from transformers import TrainingArguments, get_scheduler

BASE_LR = 1e-3
N = 20          # num_training_steps
W = 5           # num_warmup_steps
EXTRA = 6       # steps recorded past N


def make_optimizer(lr=BASE_LR):
    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(3))
    return torch.optim.SGD([{"params": [a], "weight_decay": 0.01}, {"params": [b], "weight_decay": 0.0}], lr=lr)


def lambda_case(name, kwargs, warmup=W, n=N, base_lr=BASE_LR, label=None):
    opt = make_optimizer(base_lr)
    sched = get_scheduler(name, opt, num_warmup_steps=warmup, num_training_steps=n,
                          scheduler_specific_kwargs=dict(kwargs))
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(n + EXTRA):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    # The lambda scheduler sets every group from its own initial lr; both start at base_lr.
    assert all(g["lr"] == lrs[-1] for g in opt.param_groups)
    return {"label": label or name, "type": name, "kwargs": kwargs, "num_warmup_steps": warmup,
            "num_training_steps": n, "base_lr": base_lr, "lrs": lrs}


def plateau_case(kwargs, metrics, label):
    opt = make_optimizer()
    sched = get_scheduler("reduce_lr_on_plateau", opt, num_warmup_steps=W, num_training_steps=N,
                          scheduler_specific_kwargs=dict(kwargs))
    lrs = []
    for m in metrics:
        sched.step(m)
        lrs.append([g["lr"] for g in opt.param_groups])
    return {"label": label, "type": "reduce_lr_on_plateau", "kwargs": kwargs, "num_warmup_steps": W,
            "num_training_steps": N, "base_lr": BASE_LR, "metrics": metrics, "lrs_per_group": lrs}


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else (
        Path(__file__).resolve().parents[2] / "tests/data/schedule/reference.json")

    cases = [
        lambda_case("linear", {}),
        lambda_case("linear", {}, warmup=0, label="linear_no_warmup"),
        lambda_case("cosine", {}),
        lambda_case("cosine", {"num_cycles": 1.5}, label="cosine_cycles_1.5"),
        lambda_case("cosine_with_restarts", {}),
        lambda_case("cosine_with_restarts", {"num_cycles": 2}, label="cosine_with_restarts_2"),
        lambda_case("polynomial", {}),
        lambda_case("polynomial", {"lr_end": 1e-5, "power": 2.0}, label="polynomial_end_power"),
        lambda_case("polynomial", {"lr_end": 2e-4, "power": 0.5}, warmup=0, label="polynomial_sqrt_no_warmup"),
        lambda_case("constant", {}),
        lambda_case("constant_with_warmup", {}),
        lambda_case("inverse_sqrt", {}),
        lambda_case("inverse_sqrt", {}, warmup=0, label="inverse_sqrt_no_warmup"),
        lambda_case("inverse_sqrt", {"timescale": 3}, label="inverse_sqrt_timescale"),
        lambda_case("cosine_with_min_lr", {"min_lr": 1e-4}, label="cosine_with_min_lr_abs"),
        lambda_case("cosine_with_min_lr", {"min_lr_rate": 0.05, "num_cycles": 0.75},
                    label="cosine_with_min_lr_rate"),
        lambda_case("warmup_stable_decay", {"num_decay_steps": 6}, label="wsd_default"),
        lambda_case("warmup_stable_decay",
                    {"num_decay_steps": 8, "warmup_type": "cosine", "decay_type": "linear", "min_lr_ratio": 0.1},
                    label="wsd_cosine_linear"),
        lambda_case("warmup_stable_decay",
                    {"num_decay_steps": 5, "warmup_type": "1-sqrt", "decay_type": "1-sqrt", "min_lr_ratio": 0.2},
                    label="wsd_sqrt_sqrt"),
        lambda_case("warmup_stable_decay",
                    {"num_decay_steps": 4, "num_stable_steps": 3, "warmup_type": "linear", "decay_type": "cosine",
                     "num_cycles": 0.25, "min_lr_ratio": 0.05},
                    label="wsd_explicit_stable"),
    ]

    # Improvements, ties and regressions, then a long flat tail so the default patience (10) runs out.
    metrics = [1.0, 0.9, 0.95, 0.92, 0.91, 0.93, 0.85, 0.86, 0.87, 0.8] + [0.8] * 14
    plateau = [
        plateau_case({"patience": 1}, metrics, "plateau_patience1"),
        plateau_case({}, metrics, "plateau_defaults"),
        plateau_case({"mode": "max", "factor": 0.5, "patience": 0, "threshold": 0.01, "threshold_mode": "abs",
                      "cooldown": 2, "min_lr": 2e-4}, metrics, "plateau_max_abs_cooldown"),
        plateau_case({"patience": 0, "factor": 0.3, "min_lr": [3e-4, 1e-5], "eps": 1e-5}, metrics,
                     "plateau_min_lr_list_eps"),
    ]

    # TrainingArguments.get_warmup_steps with a ratio, for make_scheduler. Called on a plain namespace:
    # building a real TrainingArguments needs accelerate, and the method only reads `warmup_steps`.
    ratio_args = SimpleNamespace(warmup_steps=0.12)
    warmup_from_ratio = {"warmup_steps": 0.12, "num_training_steps": 37,
                         "get_warmup_steps": TrainingArguments.get_warmup_steps(ratio_args, 37)}

    data = {"transformers_version": transformers.__version__, "torch_version": torch.__version__,
            "lambda_cases": cases, "plateau_cases": plateau, "warmup_from_ratio": warmup_from_ratio}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes, {len(cases)} lambda cases, {len(plateau)} plateau cases)")


if __name__ == "__main__":
    main()
