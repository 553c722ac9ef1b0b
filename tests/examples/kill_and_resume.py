#!/usr/bin/env python3
"""Exact resume, proven with the real example binary.

Runs the Fashion-MNIST example once without interruption, then again several times, each killed with
SIGKILL at a chosen moment and resumed with --resume_from_checkpoint true, and requires every resumed
run to end with the same bytes in model.safetensors and in the last checkpoint's optimizer state, and
the same log_history (losses, grad norms, learning rates, eval metrics, best checkpoint), as the
uninterrupted run. The moments:

  substep:N     inside a gradient-accumulation window (TRAINPP_CRASH_AT, see detail/crash_point.hpp)
  step:N        after an optimizer step that no checkpoint covers yet
  checkpoint:N  while checkpoint-N is being written (the resume must ignore the partial one)
  rotate:N      after checkpoint-N is published, before older ones are rotated away
  external      a SIGKILL from outside at a random moment after the first checkpoint exists
  twice         killed, resumed and killed again before the final resume

usage: kill_and_resume.py <fashion_mnist binary> <work dir>
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

# A run that crosses epoch boundaries (13 micro-batches per epoch: 6 full windows of 2 and a short
# one), logs off the checkpoint grid (pending losses must survive), evaluates, tracks the best
# checkpoint, rotates, and reloads the best model at the end. Dropout draws from the CPU generator,
# so the random state has to be restored too.
FLAGS = [
    "--max_train_samples", "200", "--max_eval_samples", "128",
    "--per_device_train_batch_size", "16", "--gradient_accumulation_steps", "2",
    "--max_steps", "16", "--logging_steps", "3",
    "--save_strategy", "steps", "--save_steps", "4", "--save_total_limit", "2",
    "--eval_strategy", "steps", "--eval_steps", "4",
    "--metric_for_best_model", "accuracy", "--load_best_model_at_end", "true",
    "--dataloader_num_workers", "1", "--full_determinism", "true", "--disable_tqdm", "true",
]
# Entries of log_history that measure time, not training.
TIMING_KEYS = {"train_runtime", "train_samples_per_second", "train_steps_per_second",
               "eval_runtime", "eval_samples_per_second", "eval_steps_per_second"}


def run(binary, out, extra=(), env=None, expect_kill=False):
    cmd = [binary, "--output_dir", str(out), *FLAGS, *extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    killed = proc.returncode == -signal.SIGKILL
    if killed != expect_kill:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"FAIL: {' '.join(cmd)} exited with {proc.returncode}, "
                         f"expected {'SIGKILL' if expect_kill else 0}")
    if not expect_kill and proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"FAIL: {' '.join(cmd)} exited with {proc.returncode}")
    return proc


def crash_env(point):
    env = dict(os.environ)
    env["TRAINPP_CRASH_AT"] = point
    return env


def history(out):
    state = json.loads((out / "trainer_state.json").read_text())
    entries = [{k: v for k, v in e.items() if k not in TIMING_KEYS} for e in state["log_history"]]
    best = state["best_model_checkpoint"]
    return entries, (Path(best).name if best else None), state["global_step"]


def compare(reference, out, label):
    problems = []
    if (reference / "model.safetensors").read_bytes() != (out / "model.safetensors").read_bytes():
        problems.append("final model.safetensors differs")
    ref_ckpt = sorted(p.name for p in reference.glob("checkpoint-*"))
    got_ckpt = sorted(p.name for p in out.glob("checkpoint-*"))
    if ref_ckpt != got_ckpt:
        problems.append(f"checkpoints {got_ckpt} != {ref_ckpt}")
    else:
        for name in ref_ckpt:
            for file in ("model.safetensors", "optimizer.safetensors", "process_state.safetensors"):
                if (reference / name / file).read_bytes() != (out / name / file).read_bytes():
                    problems.append(f"{name}/{file} differs")
    ref_hist, ref_best, ref_step = history(reference)
    got_hist, got_best, got_step = history(out)
    if (got_best, got_step) != (ref_best, ref_step):
        problems.append(f"best checkpoint / global step {got_best}, {got_step} != {ref_best}, {ref_step}")
    if got_hist != ref_hist:
        for i, (a, b) in enumerate(zip(ref_hist, got_hist)):
            if a != b:
                problems.append(f"log_history[{i}]: {b} != {a}")
                break
        if len(ref_hist) != len(got_hist):
            problems.append(f"log_history has {len(got_hist)} entries, expected {len(ref_hist)}")
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".tmp-")]
    if leftovers:
        problems.append(f"staging directories left behind: {leftovers}")
    if problems:
        raise SystemExit(f"FAIL [{label}]: " + "; ".join(problems))
    print(f"ok   [{label}] bit-identical model and optimizer state, same log_history ({len(got_hist)} entries)")


def main():
    binary, work = sys.argv[1], Path(sys.argv[2]).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    reference = work / "reference"
    run(binary, reference)
    _, best, step = history(reference)
    print(f"reference run: {step} steps, best checkpoint {best}")

    for point in ["substep:5", "step:6", "checkpoint:8", "rotate:8", "step:14"]:
        out = work / point.replace(":", "-")
        run(binary, out, env=crash_env(point), expect_kill=True)
        if point.startswith("checkpoint"):
            if not any(p.name.startswith(".tmp-checkpoint-8") for p in out.iterdir()):
                raise SystemExit(f"FAIL [{point}]: the interrupted save left no staging directory to ignore")
            if (out / "checkpoint-8").exists():
                raise SystemExit(f"FAIL [{point}]: checkpoint-8 was published although its save was killed")
        run(binary, out, ["--resume_from_checkpoint", "true"])
        compare(reference, out, point)

    out = work / "twice"
    run(binary, out, env=crash_env("substep:3"), expect_kill=True)  # before any checkpoint: starts over
    proc = subprocess.run([binary, "--output_dir", str(out), *FLAGS, "--resume_from_checkpoint", "true"],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 2 or "No valid checkpoint found" not in proc.stderr:
        raise SystemExit(f"FAIL [twice]: resuming without a checkpoint should fail clearly, got "
                         f"{proc.returncode}: {proc.stderr[-500:]}")
    run(binary, out, ["--overwrite_output_dir", "true"], env=crash_env("checkpoint:12"), expect_kill=True)
    run(binary, out, ["--resume_from_checkpoint", "true"], env=crash_env("substep:12"), expect_kill=True)
    run(binary, out, ["--resume_from_checkpoint", "true"])
    compare(reference, out, "twice")

    # A kill from outside, at a moment the program does not choose.
    rng = random.Random(os.environ.get("TRAINPP_TEST_SEED", "0"))
    out = work / "external"
    out.mkdir()
    proc = subprocess.Popen([binary, "--output_dir", str(out), *FLAGS],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (out / "checkpoint-4").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(rng.uniform(0, 0.3))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run(binary, out, ["--resume_from_checkpoint", "true"])
    compare(reference, out, f"external (exit {proc.returncode})")

    # Refusals: a fresh run on top of checkpoints, and a checkpoint from a different model.
    proc = subprocess.run([binary, "--output_dir", str(reference), *FLAGS], capture_output=True, text=True, timeout=600)
    if proc.returncode != 2 or "already holds checkpoints" not in proc.stderr:
        raise SystemExit(f"FAIL: a fresh run over existing checkpoints should be refused, got {proc.returncode}: "
                         f"{proc.stderr[-500:]}")
    print("ok   a fresh run in an output_dir with checkpoints is refused")


if __name__ == "__main__":
    main()
