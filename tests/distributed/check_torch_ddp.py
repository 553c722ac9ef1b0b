"""trainpp's data parallelism against torch's own: tests/distributed/ddp_worker trained by N processes
(trainpp-launch's environment, c10d's Gloo) and the same training by torch's DistributedDataParallel
over gloo under torchrun (torch_ddp_reference.py), for N = 2 and 4, with gradient accumulation 2 and a
short last window in every epoch (7 batches per process per epoch: windows of 2, 2, 2, 1), over two
epochs (the second reshuffled with seed + 1), with weight decay (HF's two parameter groups), once with
HF's max_grad_norm 1 (clipping binds on some steps) and once with 1000 (it never does).

Both start from one set of weights (ddp_worker --save_initial_weights, loaded by the torch run) and
see the same examples in the same order. Checked: per-step losses (gathered and averaged over the
processes, as HF logs them), grad norms and learning rates agree to 1e-6 relative; the final weights
of the parameters the model uses agree to 1e-6 relative to each tensor's largest entry, and are equal
bit for bit when clipping never binds.

How the tolerance follows from the reduction order. Data parallelism adds numbers in an order of its
own in one place, the gradient sum across processes, and here both sides sum with the same engine
(c10d's ProcessGroupGloo allreduce) over the same flat bucket: DDP's layout, which DataParallel
copies (see its build_buckets; the layout decides which chunk of Gloo's ring each element is in, and
so the order of its N addends). The sums are therefore bitwise equal; DDP scales by 1/N before the
sum and trainpp after it, which for N = 2 and 4 (powers of two) is exact in float32. Accumulation is
the same sequence of adds into .grad on both sides, and everything else is the same LibTorch kernels
on the same inputs (forward, backward, _foreach_norm, _fused_adamw_). What is left differs by rounding
only, and at most a few float32 ulps (an ulp is 2^-23 ≈ 1.2e-7 relative at most):
- the logged loss: HF averages the gathered float32 losses with a float32 mean, trainpp sums them in
  float64 and divides: the two differ by the float32 rounding of the mean, up to one ulp;
- the grad norm: HF (accelerate) takes torch's norm over model.parameters(), trainpp over the
  optimizer's parameters, grouped decay first: the same per-tensor norms, their squares added in
  another order, a few ulps for 13 tensors;
- where clipping binds (norm > max_grad_norm), the coefficient max_norm / (norm + 1e-6) inherits that
  difference and scales every gradient by it; Adam's update m / (sqrt(v) + eps) is invariant to a
  common scale except through eps, so the weights move apart by ulps, not more. Where it never binds,
  the coefficient is clamped to exactly 1 on both sides and the weights must be identical.
So 1e-6 is about ten ulps: room for the few the arithmetic allows, none for a real difference (a
gradient not divided by N, a micro-batch too many or too few, another data order moves these numbers
by 1e-3 or more at once; a bucket laid out otherwise than DDP's changes Gloo's summation order and
breaks the bitwise equality of the unclipped weights).

  check_torch_ddp.py <ddp_worker> <trainpp-launch> <scratch dir>
"""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys

import numpy as np
from safetensors.numpy import load_file

WORKER, LAUNCHER, SCRATCH = (pathlib.Path(a) for a in sys.argv[1:4])
REFERENCE = pathlib.Path(__file__).with_name("torch_ddp_reference.py")
BATCH, ACCUMULATION, MAX_STEPS, LR, WEIGHT_DECAY = 4, 2, 8, 3e-3, 0.01
TOLERANCE = 1e-6
failures = []


def check(condition, message):
    print(("ok    " if condition else "FAIL  ") + message)
    if not condition:
        failures.append(message)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def relative(a, b):
    return abs(a - b) / max(abs(a), abs(b), 1e-30)


def main():
    SCRATCH.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
    env["OMP_NUM_THREADS"] = "1"
    for processes, max_grad_norm in ((2, 1.0), (4, 1.0), (2, 1e3), (4, 1e3)):
        rows = 7 * BATCH * processes  # 7 batches per process per epoch: a last window of one
        name = f"{processes} processes, batch {BATCH}, accumulation {ACCUMULATION}, max_grad_norm {max_grad_norm:g}"
        ours = SCRATCH / f"trainpp_{processes}_{max_grad_norm:g}"
        theirs = SCRATCH / f"torch_{processes}_{max_grad_norm:g}"
        shutil.rmtree(ours, ignore_errors=True)
        shutil.rmtree(theirs, ignore_errors=True)
        initial = SCRATCH / f"initial_{processes}.safetensors"
        r = subprocess.run([str(LAUNCHER), "--nproc_per_node", str(processes), "--master_port", str(free_port()),
                            str(WORKER), "--output_dir", str(ours), "--rows", str(rows),
                            "--per_device_train_batch_size", str(BATCH),
                            "--gradient_accumulation_steps", str(ACCUMULATION), "--max_steps", str(MAX_STEPS),
                            "--logging_steps", "1", "--seed", "0", "--learning_rate", str(LR),
                            "--weight_decay", str(WEIGHT_DECAY), "--max_grad_norm", str(max_grad_norm),
                            "--save_initial_weights", str(initial)],
                           env=env, capture_output=True, text=True, timeout=300)
        check(r.returncode == 0, f"{name}: trainpp exits 0 ({r.returncode}) {r.stderr[-1500:]}")
        if r.returncode != 0:
            continue
        r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                            "--master_port", str(free_port()), str(REFERENCE), str(initial), str(theirs),
                            str(rows), str(BATCH), str(ACCUMULATION), str(MAX_STEPS), str(LR), str(WEIGHT_DECAY), str(max_grad_norm)],
                           env=env, capture_output=True, text=True, timeout=300)
        check(r.returncode == 0, f"{name}: torch DDP exits 0 ({r.returncode}) {r.stderr[-1500:]}")
        if r.returncode != 0:
            continue

        state = json.loads((ours / "trainer_state.json").read_text())
        a = [e for e in state["log_history"] if "loss" in e and "train_runtime" not in e]
        b = json.loads((theirs / "log.json").read_text())
        check(len(a) == len(b) == MAX_STEPS, f"{name}: {MAX_STEPS} logged steps each ({len(a)}, {len(b)})")
        for key in ("loss", "grad_norm", "learning_rate"):
            worst = max(relative(x[key], y[key]) for x, y in zip(a, b))
            check(worst <= TOLERANCE, f"{name}: per-step {key} agrees with torch DDP (worst relative difference "
                                      f"{worst:.2e})")
        print("  step  trainpp loss     torch loss       trainpp grad_norm  torch grad_norm")
        for x, y in zip(a, b):
            print(f"  {x['step']:4d}  {x['loss']:.9f}  {y['loss']:.9f}  {x['grad_norm']:.9f}  {y['grad_norm']:.9f}")
        wa, wb = load_file(ours / "model.safetensors"), load_file(theirs / "model.safetensors")
        check(sorted(wa) == sorted(wb), f"{name}: the same tensors saved")
        # `unused` gets no gradient: torch's AdamW skips it, trainpp's decays it (its gradient is zero).
        used = [k for k in wa if not k.startswith("unused.")]
        worst = max(float(np.abs(wa[k] - wb[k]).max() / max(np.abs(wb[k]).max(), 1e-30)) for k in used)
        clipped = any(e["grad_norm"] > max_grad_norm for e in b)
        check(worst <= (TOLERANCE if clipped else 0.0),
              f"{name}: final weights agree with torch DDP{'' if clipped else ' bit for bit (clipping never binds)'} "
              f"(worst difference relative to the tensor's largest entry {worst:.2e})")
        moved = max(float(np.abs(wa[k] - load_file(initial)[k]).max()) for k in used)
        check(moved > 1e-3, f"{name}: training moved the weights ({moved:.2e})")

    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    print("trainpp's data parallelism matches torch DDP")


if __name__ == "__main__":
    main()
