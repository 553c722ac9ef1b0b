#!/usr/bin/env python3
"""Writes tests/data/data/randperm_reference.json: the epoch orders of accelerate's SeedableRandomSampler
(torch RandomSampler over a generator reseeded with seed + epoch), as PyTorch computes them.

Run from the repository root with the project's Python: .venv/bin/python tools/reference/gen_randperm_reference.py
"""
import json
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "data" / "randperm_reference.json"


def epoch_order(n, seed, epoch):
    # What SeedableRandomSampler.__iter__ does: reseed with initial_seed + epoch, then RandomSampler's
    # torch.randperm(n, generator=...).
    sampler = torch.utils.data.RandomSampler(range(n), generator=torch.Generator())
    sampler.generator.manual_seed(seed + epoch)
    return list(iter(sampler))


def main():
    cases = []
    for n, seed, epochs in [(10, 42, [0, 1, 2]), (10, 0, [0, 5]), (37, 1234, [0, 3]), (1000, 42, [0, 1])]:
        for e in epochs:
            cases.append({"n": n, "seed": seed, "epoch": e, "order": epoch_order(n, seed, e)})
    # A Fashion-MNIST-sized order: its head, its tail, and a position-weighted checksum of the whole.
    n, seed, e = 60000, 42, 1
    order = epoch_order(n, seed, e)
    cases.append({"n": n, "seed": seed, "epoch": e, "head": order[:32], "tail": order[-8:],
                  "weighted_sum": sum(i * v for i, v in enumerate(order))})
    # One case per line keeps the file small and its diffs readable.
    lines = ",\n  ".join(json.dumps(c, separators=(",", ":")) for c in cases)
    OUT.write_text(f'{{"torch_version": "{torch.__version__}",\n "cases": [\n  {lines}\n ]\n}}\n')
    print(OUT, OUT.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
