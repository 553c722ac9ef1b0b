#!/usr/bin/env python3
"""Checks that mixed-precision runs of the Fashion-MNIST example come within a margin of the float32
run's test accuracy.

usage: compare_accuracy.py <margin> <fp32 output_dir> <other output_dir>...
Each output_dir holds the eval_results.json the example writes.
"""
import json
import sys
from pathlib import Path


def accuracy(out):
    path = Path(out) / "eval_results.json"
    return json.loads(path.read_text())["eval_accuracy"]


def main():
    margin, reference, others = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
    base = accuracy(reference)
    print(f"fp32: eval_accuracy {base:.4f}")
    failed = False
    for out in others:
        acc = accuracy(out)
        ok = acc >= base - margin
        failed |= not ok
        print(f"{'ok  ' if ok else 'FAIL'} {Path(out).parent.name}: eval_accuracy {acc:.4f} "
              f"({(acc - base) * 100:+.2f} points; at most {margin * 100:.1f} below fp32 allowed)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
