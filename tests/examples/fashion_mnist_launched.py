"""The Fashion-MNIST example, unchanged, under launchers: with no sharding slot named, the Trainer's
default (AutoSharding) trains data-parallel when a launcher starts several processes, as HF's Trainer
does, instead of training one independent copy per process into the same output_dir.

For trainpp-launch, torchrun (`python -m torch.distributed.run --no-python`, from this Python's
torch), `accelerate launch --no_python` (a MULTI_CPU config file; on CPUs accelerate starts the
processes through mpirun) and Open MPI's `mpirun`, 2 processes
with per-device batch B against 1 process with batch 2B, the same steps:
- the job exits 0; the main process alone logs (each `'loss'` line and the metrics blocks once) and
  alone writes output_dir (no staging or rank directories left);
- trainer_state.json counts the steps of one run, and its eval_loss equals the single process's
  within 1e-3 relative (observed: 7e-5). Not bit for bit: the model has batch normalisation and
  dropout, so a process normalises over its own half batch and draws its own dropout masks, and in
  Adam's first steps (an update of about lr * sign(gradient)) such differences move weights by up to
  the learning rate; hence a small one, 1e-4, which still moves eval_loss by 2% in these 6 steps (the
  reference must move at least 1%, so that agreement means something).
- `--fsdp full_shard` under torchrun shards the same program (no "does not shard" error) and agrees too.
The 500 evaluation examples make one batch of 512: the second process gets no evaluation batch at all,
and must still take part in gathering the predictions.

  fashion_mnist_launched.py <fashion_mnist> <trainpp-launch> <scratch dir>
"""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys

EXAMPLE = pathlib.Path(sys.argv[1])
LAUNCHER = pathlib.Path(sys.argv[2])
SCRATCH = pathlib.Path(sys.argv[3])
STEPS = 6
COMMON = ["--max_steps", str(STEPS), "--logging_steps", "2", "--max_train_samples", "4096",
          "--max_eval_samples", "500", "--eval_strategy", "no", "--dataloader_num_workers", "0",
          "--report_to", "none", "--disable_tqdm", "true"]
ACCELERATE_CONFIG = """compute_environment: LOCAL_MACHINE
distributed_type: MULTI_CPU
num_processes: 2
num_machines: 1
machine_rank: 0
mixed_precision: 'no'
use_cpu: true
"""
failures = []


def check(condition, message):
    print(("ok    " if condition else "FAIL  ") + message, flush=True)
    if not condition:
        failures.append(message)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env():
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    return dict({k: v for k, v in os.environ.items() if k not in names}, OMP_NUM_THREADS="1")


def run(name, prefix, batch, extra=(), learning_rate="1e-4", env=None):
    out = SCRATCH / name
    shutil.rmtree(out, ignore_errors=True)
    command = [*prefix, str(EXAMPLE), "--output_dir", str(out), "--per_device_train_batch_size", str(batch),
               "--learning_rate", learning_rate, *COMMON, *extra]
    r = subprocess.run(command, env=dict(clean_env(), **(env or {})), capture_output=True, text=True, timeout=600)
    text = r.stdout + r.stderr
    check(r.returncode == 0, f"{name}: exits 0 (got {r.returncode})" + ("" if r.returncode == 0 else "\n" + text[-3000:]))
    return out, text


def eval_loss(out):
    return json.loads((out / "eval_results.json").read_text())["eval_loss"]


def check_job(name, out, text, reference):
    if not (out / "eval_results.json").exists():
        check(False, f"{name}: eval_results.json written")
        return
    losses = [line for line in text.splitlines() if "'loss':" in line]
    check(len(losses) == STEPS // 2, f"{name}: each logging step printed once ({len(losses)} 'loss' lines, "
                                     f"expected {STEPS // 2})")
    check(text.count("***** train metrics *****") == 1, f"{name}: the train metrics block printed once")
    state = json.loads((out / "trainer_state.json").read_text())
    check(state["global_step"] == STEPS, f"{name}: trainer_state.json holds one run of {STEPS} steps "
                                         f"(global_step {state['global_step']})")
    logged = [e for e in state["log_history"] if "loss" in e and "train_runtime" not in e]
    check(len(logged) == STEPS // 2, f"{name}: log_history holds each logging step once ({len(logged)})")
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".tmp")]
    check(not leftovers, f"{name}: nothing left behind in output_dir ({leftovers})")
    loss = eval_loss(out)
    relative = abs(loss - reference) / reference
    check(relative < 1e-3, f"{name}: eval_loss {loss:.6f} equals the single process's {reference:.6f} "
                           f"with twice the batch (relative difference {relative:.1e})")


def main():
    SCRATCH.mkdir(parents=True, exist_ok=True)
    single, _ = run("single", [], 512)
    if not (single / "eval_results.json").exists():
        sys.exit("the single-process reference run failed")
    reference = eval_loss(single)
    untrained, _ = run("untrained", [], 512, learning_rate="0")
    untrained = eval_loss(untrained)
    check(reference < 0.99 * untrained, f"the single process trained: eval_loss {reference:.4f} from {untrained:.4f}")

    launch = [str(LAUNCHER), "--nproc_per_node", "2", "--master_port", str(free_port())]
    out, text = run("trainpp_launch", launch, 256)
    check_job("trainpp-launch, 2 processes", out, text, reference)

    torchrun = [sys.executable, "-m", "torch.distributed.run", "--no-python", "--nproc_per_node", "2",
                "--master_port", str(free_port())]
    out, text = run("torchrun", torchrun, 256)
    check_job("torchrun, 2 processes", out, text, reference)

    torchrun[-1] = str(free_port())
    # Under full_shard every evaluation forward is collective, so each process needs a batch: 2 of 256.
    out, text = run("torchrun_full_shard", torchrun, 256, ["--fsdp", "full_shard", "--per_device_eval_batch_size", "256"])
    check("does not shard" not in text, "torchrun --fsdp full_shard: the default slot shards")
    check_job("torchrun --fsdp full_shard, 2 processes", out, text, reference)

    mpirun = shutil.which("mpirun")
    check(mpirun is not None, "mpirun is installed (Debian's openmpi-bin; tools/run test installs it)")
    if mpirun:
        # On CPUs accelerate starts the processes of a MULTI_CPU config through mpirun and a host file;
        # without one it would start a single process. As root (CI), Open MPI wants to be told.
        config = SCRATCH / "accelerate_config.yaml"
        config.write_text(ACCELERATE_CONFIG)
        hostfile = SCRATCH / "hostfile"
        hostfile.write_text("localhost slots=2\n")
        accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
                      "--mpirun_hostfile", str(hostfile), "--no_python", "--main_process_port", str(free_port())]
        out, text = run("accelerate_launch", accelerate, 256,
                        env={"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"})
        check_job("accelerate launch, 2 processes", out, text, reference)

        # --oversubscribe: more processes than Open MPI counts slots.
        launch = [mpirun, "--allow-run-as-root", "--oversubscribe", "-n", "2", "-x", "MASTER_PORT", "-x", "OMP_NUM_THREADS"]
        out, text = run("mpirun", launch, 256, env={"MASTER_PORT": str(free_port())})
        check_job("mpirun, 2 processes", out, text, reference)

    print(f"{len(failures)} failed" if failures else "all checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
