#!/usr/bin/env python3
"""Reference numbers for trainpp's optimizer tests: AdamW (foreach and fused), SGD, clip_grad_norm_, and
the weight-decay parameter grouping of the HF Trainer.

A small fixed set of parameters (a few shapes, two dtypes, split into a weight-decay group and a
no-decay group) gets fixed gradients drawn once from a seeded numpy RNG; some gradients are missing
(None) at some steps, which the optimizers must skip. torch.optim.AdamW / SGD run a few steps with the
learning rate changed before every step; the parameters after every step are recorded. Every input
and output goes into the JSON, so the C++ test needs nothing else.

Usage: python tools/reference/gen_adamw_reference.py [output.json]
(default: tests/data/optim/reference.json next to this repository's tools/)
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
import transformers
from transformers import Trainer

STEPS = 5
LRS = [1e-2, 8e-3, 5e-3, 2e-2, 1e-3]
WEIGHT_DECAY = 0.1

# name, shape, dtype, group (0: weight decay, 1: none)
PARAMS = [
    ("w1", (4, 3), "float32", 0),
    ("w2", (2, 3, 2), "float32", 0),
    ("d", (3, 2), "float64", 0),
    ("b1", (3,), "float32", 1),
    ("b2", (5,), "float32", 1),
]
# (step, name): no gradient at that step. b2 first gets a gradient at step 1, so its state starts late.
MISSING = {(0, "b2"), (2, "w2")}

DTYPES = {"float32": (np.float32, torch.float32), "float64": (np.float64, torch.float64)}


def tolist(t):
    return t.detach().cpu().double().reshape(-1).tolist()


def make_inputs():
    rng = np.random.default_rng(1234)
    init = {}
    grads = []
    for name, shape, dtype, _ in PARAMS:
        init[name] = rng.standard_normal(shape).astype(DTYPES[dtype][0])
    for step in range(STEPS):
        g = {}
        for name, shape, dtype, _ in PARAMS:
            # Drawn even when dropped, so the stream does not depend on MISSING.
            value = (rng.standard_normal(shape) * (1.0 + step)).astype(DTYPES[dtype][0])
            g[name] = None if (step, name) in MISSING else value
        grads.append(g)
    return init, grads


def make_params(init):
    params = {}
    for name, shape, dtype, _ in PARAMS:
        params[name] = nn.Parameter(torch.from_numpy(init[name].copy()).to(DTYPES[dtype][1]))
    groups = [
        {"params": [params[n] for n, _, _, g in PARAMS if g == 0], "weight_decay": WEIGHT_DECAY},
        {"params": [params[n] for n, _, _, g in PARAMS if g == 1], "weight_decay": 0.0},
    ]
    return params, groups


def run(make_optimizer, init, grads):
    params, groups = make_params(init)
    opt = make_optimizer(groups)
    history = []
    for step in range(STEPS):
        for g in opt.param_groups:
            g["lr"] = LRS[step]
        for name, p in params.items():
            g = grads[step][name]
            p.grad = None if g is None else torch.from_numpy(g.copy()).to(p.dtype)
        opt.step()
        history.append({name: tolist(p) for name, p in params.items()})
    state = {}
    for name, p in params.items():
        st = opt.state.get(p, {})
        state[name] = {k: (tolist(v) if v.dim() > 0 else float(v)) for k, v in st.items()}
    return history, state


def clip_case(init, grads_at, max_norm, names):
    params = {}
    for name, shape, dtype, _ in PARAMS:
        if name not in names:
            continue
        p = nn.Parameter(torch.from_numpy(init[name].copy()).to(DTYPES[dtype][1]))
        g = grads_at[name]
        p.grad = None if g is None else torch.from_numpy(g.copy()).to(p.dtype)
        params[name] = p
    total = torch.nn.utils.clip_grad_norm_(list(params.values()), max_norm, foreach=True)
    return {"names": names, "grads_step": 0, "max_norm": max_norm, "total_norm": float(total),
            "total_norm_dtype": str(total.dtype).replace("torch.", ""),
            "clipped": {n: (None if p.grad is None else tolist(p.grad)) for n, p in params.items()}}


class FinalNorm(nn.Module):
    """Not a LayerNorm subclass: only its name can keep it out of weight decay."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(4))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.ln = nn.LayerNorm(4)              # excluded by type
        self.norm = nn.Linear(4, 4)            # excluded by the name pattern (^|.)norm($|.)
        self.mlp_norm = FinalNorm()            # excluded by the name pattern _norm($|.)
        self.normalizer = nn.Linear(4, 2, bias=False)   # "norm" inside a word: decays
        self.gain = nn.Parameter(torch.ones(4))


class DecayNet(nn.Module):
    """Mirrored module by module (same names, same registration order) in the C++ test."""

    def __init__(self):
        super().__init__()
        self.pos_emb = nn.Parameter(torch.zeros(3, 4))
        self.temperature_norm = nn.Parameter(torch.ones(1))   # root parameter matching _norm$
        self.embed = nn.Embedding(10, 4)
        self.tied = self.embed.weight                          # shared: listed once, under its first name
        self.layer1 = Block()
        self.layer2 = Block()
        self.q_rmsnorm = nn.Linear(4, 4)       # "rmsnorm" in the name
        self.final_LayerNorm = nn.Linear(4, 4)  # matched after lower-casing
        self.ln_f = nn.LayerNorm(4)            # excluded by type only
        self.head = nn.Linear(4, 3)
        self.frozen = nn.Linear(4, 4)
        for p in self.frozen.parameters():
            p.requires_grad_(False)


def decay_groups_reference():
    model = DecayNet()
    # Trainer.get_decay_parameter_names does not use `self`; call it unbound (a Trainer needs accelerate).
    decay = Trainer.get_decay_parameter_names(None, model)
    group0 = [n for n, p in model.named_parameters() if n in decay and p.requires_grad]
    group1 = [n for n, p in model.named_parameters() if n not in decay and p.requires_grad]
    return {"module": "DecayNet", "decay_parameter_names": decay, "group0": group0, "group1": group1,
            "named_parameters": [n for n, _ in model.named_parameters()]}


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else (
        Path(__file__).resolve().parents[2] / "tests/data/optim/reference.json")
    init, grads = make_inputs()

    betas, eps = (0.85, 0.98), 1e-7
    adamw = {"betas": list(betas), "eps": eps}
    adamw["foreach"], adamw["foreach_state"] = run(
        lambda g: torch.optim.AdamW(g, lr=LRS[0], betas=betas, eps=eps, foreach=True), init, grads)
    adamw["fused"], adamw["fused_state"] = run(
        lambda g: torch.optim.AdamW(g, lr=LRS[0], betas=betas, eps=eps, fused=True), init, grads)

    sgd_cases = []
    for opts in [{"momentum": 0.9, "dampening": 0.0, "nesterov": True},
                 {"momentum": 0.8, "dampening": 0.3, "nesterov": False},
                 {"momentum": 0.0, "dampening": 0.0, "nesterov": False}]:
        history, state = run(lambda g: torch.optim.SGD(g, lr=LRS[0], foreach=True, **opts), init, grads)
        sgd_cases.append({"options": opts, "history": history, "state": state})

    clip = [
        clip_case(init, grads[0], 1.0, [n for n, _, _, _ in PARAMS]),                # mixed dtypes, clips
        clip_case(init, grads[0], 1e3, ["w1", "w2", "b1"]),                          # no clipping
        clip_case(init, grads[0], 0.5, ["b2"]),                                      # no grads at all
    ]

    data = {
        "transformers_version": transformers.__version__, "torch_version": torch.__version__,
        "params": [{"name": n, "shape": list(s), "dtype": d, "group": g} for n, s, d, g in PARAMS],
        "weight_decay": WEIGHT_DECAY, "lrs": LRS,
        "init": {n: v.astype(np.float64).reshape(-1).tolist() for n, v in init.items()},
        "grads": [{n: (None if v is None else v.astype(np.float64).reshape(-1).tolist()) for n, v in g.items()}
                  for g in grads],
        "adamw": adamw, "sgd": sgd_cases, "clip": clip, "decay_groups": decay_groups_reference(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
