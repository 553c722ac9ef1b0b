"""Real launchers and what they say, against one process: tests/distributed/ddp_worker started by
torchrun as 2 nodes of 2 processes on this machine, and by `accelerate launch` with config files.

- 2 nodes x 2 processes: `torchrun --nnodes 2 --node_rank 0|1 --nproc_per_node 2 --master_addr
  127.0.0.1 --master_port P --no-python ddp_worker ...` started twice (two launcher processes, each
  its node's agent) is one job of 4: each process reports the rank, local rank, world size, local
  world size and node the Trainer sees, is_local_process_zero on each node's local rank 0,
  is_world_process_zero on rank 0 alone; output_dir holds one run's files (written by rank 0: its
  trainer_state.json says is_world_process_zero, every rank's state is in the checkpoint, no rank
  directory or staging is left); losses, grad norms, weights and evaluation follow one process with 4x
  the batch (check_ddp.compare: 1e-5 relative for losses and eval_loss, 2e-5 absolute for weights).
- Hybrid sharding on that 2x2 layout: hybrid_shard (Block units, prefetch; under torchrun) and
  hybrid_shard_zero2 (with gradient accumulation; the 4 processes started with torchrun's variables,
  as are the checkpoint runs below) shard within a node and replicate across the two; the same comparison
  with one process. The tolerance is data parallelism's, for the same reason: one process sums the
  16 examples' gradients in one mean; the job takes each process's mean over 4, sums the node's two in
  the reduce-scatter, the two nodes' in the all-reduce and divides by 4, an order of additions that
  differs by a few float32 ulps per element per step (observed: losses 1e-7 relative, weights 1e-7).
  A SHARDED_STATE_DICT checkpoint of a hybrid run holds the pieces of one replica (node 0's processes:
  model_shard_0 and _1, an index of 2 shards, as torch's distributed checkpoint writes a replicated
  shard once) with every rank's optimizer pieces and random state; trainpp-consolidate turns it into
  the model the run saves, and the run resumed from checkpoint-8 ends bit for bit where it ends.
- accelerate launch --config_file: a MULTI_CPU config with mixed_precision bf16 (accelerate starts
  the processes through mpirun) trains under bf16 autocast: every process reports bf16 and a bfloat16
  matrix product inside the training forward's context, and the logged losses equal, exactly, those
  of the same 2 processes started with --bf16, and differ from fp32's; `--bf16 false` on the command
  line wins (fp32's losses exactly). An FSDP config (fsdp_sharding_strategy 2, accelerate's number for
  SHARD_GRAD_OP, and SHARDED_STATE_DICT) trains shard_grad_op and writes sharded checkpoints; one with
  HYBRID_SHARD trains hybrid_shard; `--fsdp full_shard` on the command line wins over it.
- python -m torch.distributed.launch (deprecated, still used by older scripts): without --use-env it
  hands each process `--local-rank=N` as a command-line argument (it runs a Python script, so a
  two-line shim moves that argument behind the program's own flags). Both processes accept it, know
  their place, and log exactly the losses of the same 2 processes started with torchrun's variables.

  check_launchers.py <ddp_worker> <scratch dir> <trainpp-consolidate>
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
from safetensors.numpy import load_file

CONSOLIDATE = pathlib.Path(sys.argv[3])
sys.argv = sys.argv[:3]
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from check_ddp import COMMON, SCRATCH, WORKER, check, compare, failures, finish, free_port, history, run_single  # noqa: E402

BLOCKS = json.dumps({"transformer_layer_cls_to_wrap": "Block", "forward_prefetch": True,
                     "backward_prefetch": "backward_pre"})
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR", "MASTER_PORT")


def clean_env(**extra):
    """This environment without a launcher's or accelerate's variables, one thread per process."""
    env = {k: v for k, v in os.environ.items()
           if k not in LAUNCH_VARIABLES and not k.startswith(("ACCELERATE_", "FSDP_", "OMPI_"))}
    return dict(env, OMP_NUM_THREADS="1", **extra)


def exits_zero(name, results):
    ok = all(code == 0 for code, _ in results)
    check(ok, f"{name}: every process exits 0" + ("" if ok else f" {[(c, e[-1500:]) for c, e in results if c]}"))
    return ok


def reports(report_dir, processes):
    return [json.loads((report_dir / f"process_{rank}.json").read_text()) for rank in range(processes)]


def two_nodes(name, out, batch, accumulation, extra=(), fresh=True, torchrun=True):
    """One job of 2 nodes x 2 processes: torchrun started once per node, each with its --node_rank; or,
    where torchrun itself is not the point (it costs seconds to start), the 4 processes started with
    the variables torchrun gives them."""
    if fresh:
        shutil.rmtree(out, ignore_errors=True)
    report = SCRATCH / f"{out.name}_report"
    shutil.rmtree(report, ignore_errors=True)
    port = free_port()
    worker = [str(WORKER), "--output_dir", str(out), "--per_device_train_batch_size", str(batch),
              "--gradient_accumulation_steps", str(accumulation), "--process_report", str(report), *COMMON, *extra]
    procs = []
    if torchrun:
        for node in range(2):
            launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node),
                        "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(port), "--no-python"]
            procs.append(subprocess.Popen([*launcher, *worker], env=clean_env(), stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
    else:
        for rank in range(4):
            env = clean_env(RANK=str(rank), WORLD_SIZE="4", LOCAL_RANK=str(rank % 2), LOCAL_WORLD_SIZE="2",
                            GROUP_RANK=str(rank // 2), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
            procs.append(subprocess.Popen(worker, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return exits_zero(name, finish(procs)), report


def check_places(name, places):
    expected = [{"rank": r, "local_rank": r % 2, "world_size": 4, "local_world_size": 2, "node_rank": r // 2,
                 "is_local_process_zero": r % 2 == 0, "is_world_process_zero": r == 0} for r in range(4)]
    seen = [{k: p[k] for k in expected[0]} for p in places]
    check(seen == expected, f"{name}: each process knows its place {seen}")


def same_weights(a, b):
    wa, wb = load_file(a), load_file(b)
    return sorted(wa) == sorted(wb) and all(np.array_equal(wa[k], wb[k]) for k in wa)


def two_nodes_data_parallel():
    single = SCRATCH / "single_16"
    run_single(single, 16, 1)
    out = SCRATCH / "two_nodes"
    ok, report = two_nodes("torchrun 2 nodes x 2", out, 4, 1, ["--save_strategy", "steps", "--save_steps", "6"])
    if not ok:
        return
    places = reports(report, 4)
    check_places("torchrun 2 nodes x 2", places)
    check(all(p["sharding"] == "data_parallel" for p in places), "torchrun 2 nodes x 2: data parallelism by default")
    state = json.loads((out / "trainer_state.json").read_text())
    check(state["is_world_process_zero"] and state["global_step"] == 12,
          "torchrun 2 nodes x 2: trainer_state.json is rank 0's, of one run of 12 steps")
    left = sorted(p.name for p in out.iterdir() if p.name.startswith(".tmp"))
    check(not left, f"torchrun 2 nodes x 2: no rank directory or staging left in output_dir {left}")
    states = sorted(p.name for p in (out / "checkpoint-12").glob("process_state*"))
    check(states == [f"process_state_{r}.safetensors" for r in range(4)],
          f"torchrun 2 nodes x 2: the checkpoint holds every rank's state {states}")
    compare("torchrun 2 nodes x 2, batch 4 against one process with 16", single, out)


def hybrid():
    for strategy, batch, accumulation, extra, torchrun in [
        ("hybrid_shard", 4, 1, ["--fsdp", "hybrid_shard auto_wrap", "--fsdp_config", BLOCKS], True),
        ("hybrid_shard_zero2", 2, 2, ["--fsdp", "hybrid_shard_zero2"], False),
    ]:
        single = SCRATCH / f"single_{4 * batch}_{accumulation}"
        run_single(single, 4 * batch, accumulation)
        out = SCRATCH / strategy
        name = f"{strategy}, 2 nodes x 2, batch {batch}, accumulation {accumulation}"
        ok, report = two_nodes(name, out, batch, accumulation, extra, torchrun=torchrun)
        if not ok:
            continue
        places = reports(report, 4)
        check_places(name, places)
        check(all(p["sharding"] == strategy and p["shard_group_size"] == 2 for p in places),
              f"{name}: every process shards within its node's 2 ({[p['sharding'] for p in places]})")
        compare(name, single, out)

    # A sharded checkpoint of a hybrid run, consolidated and resumed.
    save = ["--fsdp", "hybrid_shard", "--fsdp_config", json.dumps({"state_dict_type": "SHARDED_STATE_DICT"}),
            "--save_strategy", "steps", "--save_steps", "4"]
    whole, resumed = SCRATCH / "hybrid_checkpoints", SCRATCH / "hybrid_resumed"
    ok, _ = two_nodes("hybrid_shard with SHARDED_STATE_DICT checkpoints", whole, 4, 1, save, torchrun=False)
    if not ok:
        return
    files = sorted(p.name for p in (whole / "checkpoint-8").iterdir())
    expected = (["model_shard_0.safetensors", "model_shard_1.safetensors", "model_shards.json"] +
                [f"optimizer_shard_{r}.safetensors" for r in range(4)] +
                [f"process_state_{r}.safetensors" for r in range(4)])
    check(all(f in files for f in expected) and not any(f.startswith(("model_shard_2", "model_shard_3", "model.safetensors"))
                                                        for f in files),
          f"hybrid checkpoint-8 holds one replica's model pieces and every rank's state: {files}")
    index = json.loads((whole / "checkpoint-8" / "model_shards.json").read_text())
    check(index["world_size"] == 2, f"hybrid checkpoint: the model is in 2 shards, a node's ({index['world_size']})")
    consolidated = SCRATCH / "hybrid_consolidated.safetensors"
    r = subprocess.run([str(CONSOLIDATE), str(whole / "checkpoint-12"), str(consolidated)], capture_output=True,
                       text=True, timeout=120)
    check(r.returncode == 0 and same_weights(whole / "model.safetensors", consolidated),
          f"trainpp-consolidate joins the hybrid checkpoint into the model the run saved {r.stderr.strip()[-300:]}")
    shutil.rmtree(resumed, ignore_errors=True)
    resumed.mkdir(parents=True)
    shutil.copytree(whole / "checkpoint-8", resumed / "checkpoint-8")
    ok, _ = two_nodes("hybrid_shard resumed from checkpoint-8", resumed, 4, 1,
                      [*save, "--resume_from_checkpoint", "true"], fresh=False, torchrun=False)
    if ok:
        check(same_weights(whole / "model.safetensors", resumed / "model.safetensors"),
              "hybrid_shard resumed from checkpoint-8 ends with the uninterrupted run's weights, bit for bit")
        check([e["loss"] for e in history(whole)] == [e["loss"] for e in history(resumed)],
              "hybrid_shard resumed: the same logged losses")


def write_config(name, text):
    path = SCRATCH / f"{name}.yaml"
    path.write_text(text)
    return path


def accelerate(name, config, extra=(), mpirun=False):
    """ddp_worker under `accelerate launch --config_file`, 2 processes with batch 8."""
    out = SCRATCH / name
    shutil.rmtree(out, ignore_errors=True)
    report = SCRATCH / f"{name}_report"
    shutil.rmtree(report, ignore_errors=True)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "--no_python",
               "--main_process_port", str(free_port())]
    env = clean_env()
    if mpirun:
        # On CPUs accelerate starts a MULTI_CPU config's processes through mpirun and a host file; as root
        # (CI) Open MPI wants to be told.
        hostfile = SCRATCH / "hostfile"
        hostfile.write_text("localhost slots=2\n")
        command += ["--mpirun_hostfile", str(hostfile)]
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    r = subprocess.run([*command, str(WORKER), "--output_dir", str(out), "--per_device_train_batch_size", "8",
                        "--process_report", str(report), *COMMON, *extra],
                       env=env, capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, f"accelerate launch, {name}: exits 0 ({r.returncode}) {(r.stdout + r.stderr)[-1500:] if r.returncode else ''}")
    if r.returncode != 0 or not (report / "process_1.json").exists():
        return None, None
    return out, reports(report, 2)


def two_processes(name, extra):
    """The same 2 processes started with torchrun's variables set by hand: the reference runs."""
    out = SCRATCH / name
    shutil.rmtree(out, ignore_errors=True)
    port = free_port()
    procs = [subprocess.Popen([str(WORKER), "--output_dir", str(out), "--per_device_train_batch_size", "8", *COMMON, *extra],
                              env=clean_env(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2",
                                            MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in range(2)]
    exits_zero(name, finish(procs))
    return [e["loss"] for e in history(out)] if (out / "trainer_state.json").exists() else None


def legacy_launch(reference):
    out = SCRATCH / "legacy_launch"
    shutil.rmtree(out, ignore_errors=True)
    report = SCRATCH / "legacy_launch_report"
    shutil.rmtree(report, ignore_errors=True)
    shim = SCRATCH / "local_rank_shim.py"
    # torch.distributed.launch puts --local-rank=N first, before the script's own arguments.
    shim.write_text("import os, sys\n"
                    "local_rank, program, *rest = sys.argv[1:]\n"
                    "os.execv(program, [program, *rest, local_rank])\n")
    command = [sys.executable, "-m", "torch.distributed.launch", "--nproc_per_node", "2",
               "--master_port", str(free_port()), str(shim), str(WORKER), "--output_dir", str(out),
               "--per_device_train_batch_size", "8", "--process_report", str(report), *COMMON]
    r = subprocess.run(command, env=clean_env(), capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, f"torch.distributed.launch: exits 0 ({r.returncode}) {(r.stdout + r.stderr)[-1500:] if r.returncode else ''}")
    if r.returncode != 0 or not (report / "process_1.json").exists():
        return
    places = [{k: p[k] for k in ("rank", "local_rank", "world_size")} for p in reports(report, 2)]
    check(places == [{"rank": r, "local_rank": r, "world_size": 2} for r in range(2)],
          f"torch.distributed.launch: each process knows its place {places}")
    check([e["loss"] for e in history(out)] == reference,
          "torch.distributed.launch with --local-rank=N: the losses of the same 2 processes, exactly")


def accelerate_configs():
    fp32 = two_processes("reference_fp32", [])
    legacy_launch(fp32)
    bf16 = two_processes("reference_bf16", ["--bf16"])
    check(fp32 is not None and bf16 is not None and fp32 != bf16, "bf16 and fp32 runs log different losses")

    if shutil.which("mpirun") is None:
        check(False, "mpirun is installed (Debian's openmpi-bin: accelerate launches MULTI_CPU configs with it)")
    else:
        config = write_config("multi_cpu_bf16", "compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_CPU\n"
                                                "num_processes: 2\nnum_machines: 1\nmachine_rank: 0\n"
                                                "mixed_precision: bf16\nuse_cpu: true\n")
        out, places = accelerate("multi_cpu_bf16", config, mpirun=True)
        if out:
            check(all(p["bf16"] and p["autocast_dtype"] == "BFloat16" for p in places),
                  f"MULTI_CPU, mixed_precision bf16: every process trains under bf16 autocast "
                  f"{[(p['bf16'], p['autocast_dtype']) for p in places]}")
            check([e["loss"] for e in history(out)] == bf16,
                  "MULTI_CPU, mixed_precision bf16: the losses of the same job started with --bf16, exactly")
        out, places = accelerate("multi_cpu_bf16_overridden", config, ["--bf16", "false"], mpirun=True)
        if out:
            check(all(not p["bf16"] and p["autocast_dtype"] == "Float" for p in places),
                  "MULTI_CPU, mixed_precision bf16, --bf16 false: the command line wins, fp32")
            check([e["loss"] for e in history(out)] == fp32, "... and the losses are fp32's, exactly")

    fsdp = ("compute_environment: LOCAL_MACHINE\ndistributed_type: FSDP\nnum_processes: 2\nnum_machines: 1\n"
            "machine_rank: 0\nmixed_precision: 'no'\nuse_cpu: true\nfsdp_config:\n"
            "  fsdp_sharding_strategy: {strategy}\n  fsdp_state_dict_type: {state_dict}\n"
            "  fsdp_auto_wrap_policy: NO_WRAP\n  fsdp_version: 1\n")
    grad_op = write_config("fsdp_2", fsdp.format(strategy=2, state_dict="SHARDED_STATE_DICT"))
    out, places = accelerate("fsdp_shard_grad_op", grad_op, ["--save_strategy", "steps", "--save_steps", "12"])
    if out:
        check(all(p["sharding"] == "shard_grad_op" and p["state_dict_type"] == "SHARDED_STATE_DICT" for p in places),
              f"FSDP config, fsdp_sharding_strategy 2: shard_grad_op with sharded checkpoints "
              f"{[(p['sharding'], p.get('state_dict_type')) for p in places]}")
        files = sorted(p.name for p in (out / "checkpoint-12").iterdir())
        check("model_shard_1.safetensors" in files and "model.safetensors" not in files,
              f"FSDP config, SHARDED_STATE_DICT: the checkpoint holds the model in pieces {files}")
    hybrid_config = write_config("fsdp_hybrid", fsdp.format(strategy="HYBRID_SHARD", state_dict="FULL_STATE_DICT"))
    out, places = accelerate("fsdp_hybrid", hybrid_config)
    if out:
        check(all(p["sharding"] == "hybrid_shard" for p in places),
              f"FSDP config, HYBRID_SHARD: hybrid_shard {[p['sharding'] for p in places]}")
    out, places = accelerate("fsdp_hybrid_overridden", hybrid_config, ["--fsdp", "full_shard"])
    if out:
        check(all(p["sharding"] == "full_shard" for p in places),
              f"FSDP config, HYBRID_SHARD, --fsdp full_shard: the command line wins {[p['sharding'] for p in places]}")


def main():
    SCRATCH.mkdir(parents=True, exist_ok=True)
    two_nodes_data_parallel()
    hybrid()
    accelerate_configs()
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    print("all launcher checks passed")


if __name__ == "__main__":
    main()
