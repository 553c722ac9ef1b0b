"""Data parallelism against one process: tests/distributed/ddp_worker trained by N processes with
per-device batch B must follow the single process trained with batch N·B — the same examples in
every step (each process takes every N-th batch of the same shuffled epoch), gradients averaged.

Checked for N = 2 and 4, with and without gradient accumulation:
- the logged losses (averaged over the processes, as HF logs them) and grad norms per step;
- the final weights (model.safetensors);
- evaluation (loss, accuracy) and predict() over an eval set no N divides: every example once, in order,
  and the same eval_loss as one process (each process evaluates real examples only; HF pads the last
  batch and lets its mean count the repeats);
- the same run started by trainpp-launch.
Tolerance: the processes sum their gradients in another order than one process does (allreduce of
per-process means, then / N, against one mean over N·B); in float32 that moves results by a few ulps
per step, which Adam's normalisation can magnify where second moments are tiny. Losses and evaluation
agree to 1e-5 relative (observed: 2e-7). The final weights: all but 0.1% within 2e-5 absolute (weights
of order 0.1-1 after 12 steps; observed with c10d's Gloo: 3e-8, 6e-7 and 1.2e-7 for the three
configurations below, once one weight of 2858 aside), and none beyond one learning-rate step (3e-3).
Where a gradient is a rounding residue near zero, Adam divides it by its own tiny running magnitude,
so another summation order can move that weight far more than rounding: one weight in the accumulation-3
configuration moved by 2.2e-5 (earlier builds: 1.6e-5); no bound here can see those second moments.
A wrong average or a lost reduction moves every weight, which the 0.1% still catches. Where the order is the same, the check is exact instead:
with 2 processes and no accumulation, the DataParallel gradient is (g0 + g1) / 2 (Gloo adds two
numbers, which commutes) and a single process with batch B accumulating the same two micro-batches
holds g0 / 2 + g1 / 2, the same number (halving is exact in binary), so its weights and grad norms
must be equal bit for bit. The tight reference for every configuration is torch's own DDP:
check_torch_ddp.py.
Also: a 2-process run with checkpoints, cut after checkpoint-8 and resumed, ends bit for bit where an
uninterrupted run ends (every rank's random state is in the checkpoint), and the same checkpoint
resumed by 1 or 4 processes continues where it stopped (exactly, for one process accumulating the
two processes' batches); a job whose rank 1 dies mid-run ends, on the other ranks, with a non-zero exit and a message
naming the failed collective, well within ddp_timeout; and a bad environment (RANK >= WORLD_SIZE)
fails at once with a clear message, as do a rendezvous nobody hosts and a port already in use.

  check_ddp.py <ddp_worker> <scratch dir> [<trainpp-launch>]
"""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
from safetensors.numpy import load_file

WORKER = pathlib.Path(sys.argv[1])
SCRATCH = pathlib.Path(sys.argv[2])
LAUNCHER = pathlib.Path(sys.argv[3]) if len(sys.argv) > 3 else None
COMMON = ["--max_steps", "12", "--logging_steps", "1", "--per_device_eval_batch_size", "8", "--seed", "0",
          "--learning_rate", "3e-3"]
failures = []


def check(condition, message):
    print(("ok    " if condition else "FAIL  ") + message)
    if not condition:
        failures.append(message)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_single(out, batch, accumulation):
    shutil.rmtree(out, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
    r = subprocess.run([str(WORKER), "--output_dir", str(out), "--per_device_train_batch_size", str(batch),
                        "--gradient_accumulation_steps", str(accumulation), *COMMON],
                       env=env, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        sys.exit(f"single-process run failed ({r.returncode}):\n{r.stderr[-3000:]}")


def start_job(out, processes, batch, accumulation, extra=(), env_extra=None):
    shutil.rmtree(out, ignore_errors=True)
    port = free_port()
    procs = []
    for rank in range(processes):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(processes), LOCAL_RANK=str(rank),
                   LOCAL_WORLD_SIZE=str(processes), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                   OMP_NUM_THREADS="1")
        env.update(env_extra or {})
        procs.append(subprocess.Popen(
            [str(WORKER), "--output_dir", str(out), "--per_device_train_batch_size", str(batch),
             "--gradient_accumulation_steps", str(accumulation), *COMMON, *extra],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def finish(procs, timeout=300):
    results = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        results.append((p.returncode, err))
    return results


def history(out):
    state = json.loads((out / "trainer_state.json").read_text())
    return [e for e in state["log_history"] if "loss" in e and "train_runtime" not in e]


def compare(name, single, multi):
    a, b = history(single), history(multi)
    check(len(a) == len(b) == 12, f"{name}: 12 logged steps each ({len(a)}, {len(b)})")
    worst_loss = max(abs(x["loss"] - y["loss"]) / abs(x["loss"]) for x, y in zip(a, b))
    worst_norm = max(abs(x["grad_norm"] - y["grad_norm"]) / abs(x["grad_norm"]) for x, y in zip(a, b))
    check(worst_loss < 1e-5, f"{name}: per-step losses agree (worst relative difference {worst_loss:.2e})")
    check(worst_norm < 1e-4, f"{name}: per-step grad norms agree (worst relative difference {worst_norm:.2e})")
    wa, wb = load_file(single / "model.safetensors"), load_file(multi / "model.safetensors")
    check(sorted(wa) == sorted(wb), f"{name}: the same tensors saved")
    # Tolerance: see the top (Adam magnifies rounding residues of near-zero gradients).
    diffs = np.concatenate([np.abs(wa[k] - wb[k]).ravel() for k in wa])
    worst, loose = float(diffs.max()), int((diffs >= 2e-5).sum())
    check(loose <= diffs.size // 1000 and worst < 3e-3,
          f"{name}: final weights agree ({loose} of {diffs.size} beyond 2e-5; worst absolute difference {worst:.2e})")
    changed = max(float(np.abs(wa[k]).max()) for k in wa)
    check(changed > 0, f"{name}: weights are not all zero")
    ra = json.loads((single / "worker_results.json").read_text())
    rb = json.loads((multi / "worker_results.json").read_text())
    check(abs(ra["eval_loss"] - rb["eval_loss"]) <= 1e-5 * abs(ra["eval_loss"]),
          f"{name}: eval_loss agrees ({ra['eval_loss']:.7f} vs {rb['eval_loss']:.7f})")
    check(ra["eval_accuracy"] == rb["eval_accuracy"],
          f"{name}: eval_accuracy agrees ({ra['eval_accuracy']} vs {rb['eval_accuracy']})")
    check(ra["predict_rows"] == rb["predict_rows"] == 97, f"{name}: predict() returns each of the 97 examples once "
          f"({ra['predict_rows']}, {rb['predict_rows']})")
    check(ra["predict_argmax"] == rb["predict_argmax"], f"{name}: predictions in the data set's order")


def main():
    SCRATCH.mkdir(parents=True, exist_ok=True)
    for processes, batch, accumulation in [(2, 8, 1), (2, 4, 3), (4, 4, 2)]:
        name = f"{processes} processes, batch {batch}, accumulation {accumulation}"
        single = SCRATCH / f"single_{processes}_{batch}_{accumulation}"
        multi = SCRATCH / f"ddp_{processes}_{batch}_{accumulation}"
        run_single(single, processes * batch, accumulation)
        results = finish(start_job(multi, processes, batch, accumulation))
        ok = all(code == 0 for code, _ in results)
        check(ok, f"{name}: every process exits 0")
        if not ok:
            for code, err in results:
                print(f"  exit {code}: {err[-2000:]}")
            continue
        compare(name, single, multi)
        if (processes, accumulation) == (2, 1):
            same_order = SCRATCH / f"single_{batch}_{processes}"
            run_single(same_order, batch, processes)
            wa, wb = load_file(same_order / "model.safetensors"), load_file(multi / "model.safetensors")
            worst = max(float(np.abs(wa[k] - wb[k]).max()) for k in wa)
            check(worst == 0, f"{name}: final weights equal, bit for bit, one process accumulating the same "
                              f"{processes} micro-batches of {batch} (worst difference {worst:.2e})")
            norms = [e["grad_norm"] for e in history(same_order)], [e["grad_norm"] for e in history(multi)]
            check(norms[0] == norms[1], f"{name}: ... and so do the grad norms")

    if LAUNCHER is not None and LAUNCHER.exists():
        out = SCRATCH / "launcher_2"
        shutil.rmtree(out, ignore_errors=True)
        r = subprocess.run([str(LAUNCHER), "--nproc_per_node", "2", "--master_port", str(free_port()), str(WORKER),
                            "--output_dir", str(out), "--per_device_train_batch_size", "8", *COMMON],
                           capture_output=True, text=True, timeout=300)
        check(r.returncode == 0, f"trainpp-launch --nproc_per_node 2: exit 0 ({r.returncode}) {r.stderr[-500:]}")
        if r.returncode == 0:
            compare("trainpp-launch, 2 processes", SCRATCH / "single_2_8_1", out)

    # Checkpoints of a data-parallel run: killed after checkpoint-8, resumed, it ends where an
    # uninterrupted run ends, bit for bit; each rank's state is in the checkpoint.
    save = ["--save_strategy", "steps", "--save_steps", "4"]
    whole, cut = SCRATCH / "resume_whole", SCRATCH / "resume_cut"
    results = finish(start_job(whole, 2, 8, 1, extra=save))
    check(all(code == 0 for code, _ in results), f"checkpointed 2-process run exits 0 {[c for c, _ in results]}")
    results = finish(start_job(cut, 2, 8, 1, extra=[*save, "--fail_at_step", "10", "--fail_rank", "1",
                                                     "--ddp_timeout", "30"]), timeout=120)
    check(results[1][0] == 3 and results[0][0] != 0, f"the run is cut at step 10 ({[c for c, _ in results]})")
    checkpoint = cut / "checkpoint-8"
    check(sorted(p.name for p in checkpoint.glob("process_state*")) ==
          ["process_state_0.safetensors", "process_state_1.safetensors"],
          f"checkpoint-8 holds both ranks' states: {sorted(p.name for p in checkpoint.iterdir())}")
    check(not list(cut.glob(".tmp-*")), f"no staging left behind: {[p.name for p in cut.glob('.tmp-*')]}")
    shutil.rmtree(cut / "checkpoint-12", ignore_errors=True)
    port = free_port()
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([str(WORKER), "--output_dir", str(cut), "--per_device_train_batch_size", "8",
                                       *COMMON, *save, "--resume_from_checkpoint", "true"],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = finish(procs)
    check(all(code == 0 for code, _ in results), f"the resumed run exits 0 {[(c, e[-300:]) for c, e in results if c]}")
    if all(code == 0 for code, _ in results):
        wa, wb = load_file(whole / "model.safetensors"), load_file(cut / "model.safetensors")
        worst = max(float(np.abs(wa[k] - wb[k]).max()) for k in wa)
        check(worst == 0, f"resumed weights equal the uninterrupted run's bit for bit (worst difference {worst:.2e})")
        la, lb = history(whole), history(cut)
        check([e["loss"] for e in la] == [e["loss"] for e in lb], "resumed logged losses equal the uninterrupted run's")
    # The same checkpoint resumed by another number of processes (HF allows it): the model, optimizer
    # and schedule continue exactly. One process with batch 8 and 2 accumulation steps draws the same
    # two batches per step as the 2 processes did (each process takes every N-th batch) and sums
    # g0 / 2 + g1 / 2, which equals (g0 + g1) / 2 bit for bit (see the top), so it must end where the
    # uninterrupted run ends, exactly. Four processes with batch 4 see the same 16 examples per step
    # but reduce in another order: held to the tolerances above.
    for processes, batch, accumulation in ((1, 8, 2), (4, 4, 1)):
        name = f"resume_on_{processes}"
        out = SCRATCH / name
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(checkpoint, out / "checkpoint-8")
        port = free_port()
        procs = []
        for rank in range(processes):
            env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(processes), LOCAL_RANK=str(rank),
                       LOCAL_WORLD_SIZE=str(processes), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                       OMP_NUM_THREADS="1")
            if processes == 1:
                env = {k: v for k, v in env.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
            procs.append(subprocess.Popen([str(WORKER), "--output_dir", str(out), "--per_device_train_batch_size",
                                           str(batch), "--gradient_accumulation_steps", str(accumulation), *COMMON,
                                           "--ddp_timeout", "60", "--resume_from_checkpoint", "true"],
                                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        results = finish(procs, timeout=120)
        check(all(code == 0 for code, _ in results),
              f"the 2-process checkpoint resumed by {processes} process(es) exits 0 "
              f"{[(c, e[-300:]) for c, e in results if c]}")
        check("was saved by 2 process(es) and is resumed by" in results[0][1],
              f"resumed by {processes}: the change of process count is said")
        if not all(code == 0 for code, _ in results):
            continue
        wa, wb = load_file(whole / "model.safetensors"), load_file(out / "model.safetensors")
        worst = max(float(np.abs(wa[k] - wb[k]).max()) for k in wa)
        la, lb = history(whole)[8:], history(out)[8:]
        check([e["step"] for e in lb] == [9, 10, 11, 12],
              f"resumed by {processes}: steps 9-12 logged ({[e.get('step') for e in lb]})")
        worst_loss = max((abs(x["loss"] - y["loss"]) / abs(x["loss"]) for x, y in zip(la, lb)), default=1.0)
        if processes == 1:
            check(worst == 0, f"resumed by 1 process: weights equal the uninterrupted run's bit for bit ({worst:.2e})")
            # The logged loss is formed in another order (a mean of two processes' means against the
            # sum of two halves accumulated in one process), so a few ulps, not bits.
            check(worst_loss < 1e-6, f"resumed by 1 process: losses of steps 9-12 agree ({worst_loss:.2e})")
        else:
            check(worst < 2e-5, f"resumed by {processes}: weights agree with the uninterrupted run's ({worst:.2e})")
            check(worst_loss < 1e-5, f"resumed by {processes}: losses of steps 9-12 agree ({worst_loss:.2e})")

    # A rank that dies mid-run: the others must not hang.
    start = time.monotonic()
    procs = start_job(SCRATCH / "fault", 2, 8, 1, extra=["--fail_at_step", "3", "--fail_rank", "1",
                                                        "--ddp_timeout", "30"])
    results = finish(procs, timeout=120)
    seconds = time.monotonic() - start
    check(results[1][0] == 3, f"the failing rank exits with its status 3 ({results[1][0]})")
    check(results[0][0] not in (0, None), f"the surviving rank exits non-zero ({results[0][0]})")
    check("failed" in results[0][1] and "error" in results[0][1].lower(),
          f"the surviving rank says which collective failed: {results[0][1].strip()[-300:]!r}")
    check(seconds < 40, f"... within ddp_timeout (30 s): {seconds:.1f} s")

    # A bad environment: refused at once, naming the problem.
    env = dict(os.environ, RANK="2", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    r = subprocess.run([str(WORKER), "--output_dir", str(SCRATCH / "bad_env")], env=env, capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 2 and "the rank (2) must be less than the world size (2)" in r.stderr,
          f"RANK >= WORLD_SIZE is refused: exit {r.returncode}, {r.stderr.strip()[-200:]!r}")
    # An unreachable rendezvous: a clear error within ddp_timeout, not a hang.
    start = time.monotonic()
    env = dict(os.environ, RANK="1", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    r = subprocess.run([str(WORKER), "--output_dir", str(SCRATCH / "no_master"), "--ddp_timeout", "5"], env=env,
                       capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - start
    check(r.returncode != 0 and "cannot reach the rendezvous at 127.0.0.1" in r.stderr,
          f"a missing rank 0 is a clear error: exit {r.returncode}, {r.stderr.strip()[-300:]!r}")
    check(seconds < 30, f"... within ddp_timeout (5 s) and start-up: {seconds:.1f} s")

    # The rendezvous port already taken by another program: rank 0 says so at once.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        env = dict(os.environ, RANK="0", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(taken.getsockname()[1]))
        r = subprocess.run([str(WORKER), "--output_dir", str(SCRATCH / "port_taken"), "--ddp_timeout", "5"], env=env,
                           capture_output=True, text=True, timeout=120)
    check(r.returncode != 0 and "cannot host the rendezvous at 127.0.0.1" in r.stderr,
          f"a rendezvous port in use is a clear error: exit {r.returncode}, {r.stderr.strip()[-250:]!r}")

    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    print("all distributed checks passed")


if __name__ == "__main__":
    main()
