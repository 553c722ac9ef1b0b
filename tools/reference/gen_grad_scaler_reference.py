#!/usr/bin/env python3
"""Writes tests/data/precision/grad_scaler_reference.json: torch.amp.GradScaler fed a fixed pattern of
overflowing steps.

A tiny linear model (weights and input given in the file) is trained with SGD and with fused AdamW under
GradScaler("cpu", init_scale=2**16, growth_factor=2, backoff_factor=0.5, growth_interval=3). At the
steps the pattern marks, an inf or a NaN is written into one gradient after backward — what an fp16
overflow looks like. Per step the file records the scale and growth tracker after update(), whether
the optimizer stepped, and the parameters. tests/trainpp/precision/grad_scaler_test.cpp replays it.

Run: .venv/bin/python tools/reference/gen_grad_scaler_reference.py
"""
import json
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "precision" / "grad_scaler_reference.json"
PATTERN = ["ok", "ok", "inf", "ok", "ok", "ok", "ok", "nan", "inf", "ok", "ok", "ok", "ok", "ok", "ok", "ok",
           "inf", "ok", "ok", "ok"]
OPTIONS = {"init_scale": 2.0 ** 16, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 3}


def run(optimizer_name):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(4, 3))
    b = torch.nn.Parameter(torch.randn(3))
    x = torch.randn(5, 4)
    initial = {"w": w.detach().flatten().tolist(), "b": b.detach().tolist(), "x": x.flatten().tolist()}
    if optimizer_name == "sgd":
        opt = torch.optim.SGD([w, b], lr=0.01)
    else:
        opt = torch.optim.AdamW([w, b], lr=0.01, weight_decay=0.01, fused=True)
    scaler = torch.amp.GradScaler("cpu", **OPTIONS)
    steps = []
    for kind in PATTERN:
        opt.zero_grad()
        loss = (x @ w + b).pow(2).mean()
        scaler.scale(loss).backward()
        if kind == "inf":
            w.grad[1, 2] = float("inf")
        elif kind == "nan":
            b.grad[0] = float("nan")
        scaler.unscale_(opt)  # before clipping, as the Trainer does
        before = [w.detach().clone(), b.detach().clone()]
        scaler.step(opt)
        scaler.update()
        stepped = not (torch.equal(before[0], w.detach()) and torch.equal(before[1], b.detach()))
        steps.append({"kind": kind, "scale": scaler.get_scale(), "growth_tracker": int(scaler._growth_tracker.item()),
                      "stepped": stepped, "w": w.detach().flatten().tolist(), "b": b.detach().tolist()})
    return {"initial": initial, "steps": steps, "state_dict": {k: (v if not torch.is_tensor(v) else v.item())
                                                                for k, v in scaler.state_dict().items()}}


def main():
    out = {"torch": torch.__version__, "options": OPTIONS, "pattern": PATTERN,
           "sgd": run("sgd"), "adamw_fused": run("adamw_fused")}
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
