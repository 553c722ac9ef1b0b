#!/usr/bin/env python3
"""Writes tests/data/io/rotation_reference.json: which checkpoints transformers' rotate_checkpoints keeps.

Each case creates checkpoint-<step> directories in a temporary folder, calls
transformers.trainer_utils.rotate_checkpoints(output_dir, save_total_limit, best_model_checkpoint,
use_mtime=False) — numeric order, which trainpp always uses — and records the steps left.
tests/trainpp/io/checkpoint_test.cpp runs trainpp::rotate_checkpoints on the same cases.

Run: .venv/bin/python tools/reference/gen_rotation_reference.py   (needs transformers 5.x)
"""
import json
import os
import tempfile
from pathlib import Path

import transformers
from transformers.trainer_utils import rotate_checkpoints

OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "io" / "rotation_reference.json"

CASES = [
    # (existing steps, save_total_limit, best step or None)
    ([1, 2, 3, 4, 5], 2, None),
    ([1, 2, 3, 4, 5], 2, 1),
    ([1, 2, 3, 4, 5], 2, 5),
    ([1, 2, 3, 4, 5], 1, None),
    ([1, 2, 3, 4, 5], 1, 2),
    ([1, 2, 3, 4, 5], 1, 5),
    ([1, 2, 3, 4, 5], 3, 2),
    ([1, 2, 3, 4, 5], 5, 1),
    ([1, 2, 3, 4, 5], 0, 1),
    ([1, 2, 3, 4, 5], None, 1),
    ([2, 9, 10, 100], 2, 9),
    ([2, 9, 10, 100], 2, None),
    ([500], 1, 500),
    ([3, 6], 1, 3),
    ([3, 6, 9, 12], 2, 7),  # a best checkpoint that no longer exists
]


def main():
    results = []
    for steps, limit, best in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            for s in steps:
                (Path(tmp) / f"checkpoint-{s}").mkdir()
            best_path = os.path.join(tmp, f"checkpoint-{best}") if best is not None else None
            rotate_checkpoints(tmp, save_total_limit=limit, best_model_checkpoint=best_path, use_mtime=False)
            left = sorted(int(p.name.split("-")[1]) for p in Path(tmp).iterdir())
        results.append({"steps": steps, "save_total_limit": limit, "best": best, "kept": left})
    OUT.write_text(json.dumps({"transformers": transformers.__version__, "cases": results}, indent=1) + "\n")
    print(f"wrote {OUT} ({len(results)} cases)")


if __name__ == "__main__":
    main()
