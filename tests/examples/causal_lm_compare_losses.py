#!/usr/bin/env python3
"""Checks that two runs of the causal_lm example logged the same training: every logged loss and
grad_norm in trainer_state.json's log_history, and the final eval_loss, equal within a relative
tolerance.

usage: causal_lm_compare_losses.py <relative tolerance> <min logged steps> <output_dir A> <output_dir B>
"""
import json
import sys
from pathlib import Path


def logged(out):
    state = json.loads((Path(out) / "trainer_state.json").read_text())
    steps = [(e["step"], e["loss"], e["grad_norm"]) for e in state["log_history"] if "loss" in e]
    eval_loss = json.loads((Path(out) / "eval_results.json").read_text())["eval_loss"]
    return steps, eval_loss


def close(a, b, tolerance):
    return abs(a - b) <= tolerance * max(abs(a), abs(b))


def main():
    tolerance, min_steps, a_dir, b_dir = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    (a_steps, a_eval), (b_steps, b_eval) = logged(a_dir), logged(b_dir)
    if len(a_steps) < min_steps or len(a_steps) != len(b_steps):
        print(f"FAIL: {len(a_steps)} and {len(b_steps)} logged steps; expected the same number, at least {min_steps}")
        sys.exit(1)
    failed = False
    for (step, a_loss, a_norm), (b_step, b_loss, b_norm) in zip(a_steps, b_steps):
        ok = step == b_step and close(a_loss, b_loss, tolerance) and close(a_norm, b_norm, tolerance)
        failed |= not ok
        print(f"{'ok  ' if ok else 'FAIL'} step {step}: loss {a_loss:.9g} vs {b_loss:.9g}, "
              f"grad_norm {a_norm:.9g} vs {b_norm:.9g}")
    ok = close(a_eval, b_eval, tolerance)
    failed |= not ok
    print(f"{'ok  ' if ok else 'FAIL'} eval_loss {a_eval:.9g} vs {b_eval:.9g} (relative tolerance {tolerance:g})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
