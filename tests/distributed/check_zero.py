"""The sharded policies against one process: tests/distributed/ddp_worker trained by N processes under
ShardGradOp (ZeRO-2) and FullShard (ZeRO-3) must follow the single process trained with batch N·B, as
data parallelism does (check_ddp.py holds the shared helpers and explains the tolerance: the reduced
gradients are summed in another order; here a reduce-scatter's, a few float32 ulps per step).

Checked, for N = 2 and 4, with and without gradient accumulation:
- ShardGradOp by --fsdp shard_grad_op;
- FullShard by --fsdp "full_shard auto_wrap" wrapping the model's Block units by class name, with
  forward and backward prefetch; by min_num_params with CPU offload; and as the FullShard slot type
  with activation checkpointing of its units;
  each: losses and grad norms per step, final weights, evaluation and predict() as one process.
- Memory: the bytes of parameters, gradients and optimizer state each process holds before a step,
  against ZeRO's formulas (Ψ trainable parameters, float32, Adam's two moments): data parallelism
  4Ψ + 4Ψ + 8Ψ; ShardGradOp 4Ψ + (4Ψ + 8Ψ)/N; FullShard (4Ψ + 4Ψ + 8Ψ)/N. The overhead allowed on top,
  SLACK bytes, covers the padding of each flat buffer to a multiple of N (under 4·N bytes per unit) and
  Adam's step counters (4 bytes per parameter tensor).
- Checkpoints: a 2-process FullShard run with SHARDED_STATE_DICT writes per-rank model and optimizer
  pieces plus an index; trainpp-consolidate joins them into the model the run ends with; the run cut
  at step 10 and resumed from checkpoint-8 ends bit for bit where the uninterrupted run ends; so does a
  ShardGradOp run with FULL_STATE_DICT checkpoints; 4 processes refuse the 2-process checkpoint.
- bf16 autocast under both policies; a DeepSpeed config (stage 3) as FullShard.
- fp16 with forced overflows under both policies (offload too): the scales and skipped steps agree
  across the processes and with one process (check_fp16 says against which one, and why).
- Flags: HF's errors for impossible --fsdp combinations, and trainpp's for what it cannot do.

  check_zero.py <ddp_worker> <scratch dir> <trainpp-consolidate>
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
from safetensors.numpy import load_file

CONSOLIDATE = pathlib.Path(sys.argv[3])
sys.argv = sys.argv[:3]
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import check_ddp  # noqa: E402  (the shared helpers; reads the worker and scratch paths from argv)
from check_ddp import COMMON, SCRATCH, WORKER, check, compare, failures, finish, history, run_single, start_job  # noqa: E402

SLACK = 1024
FP16_INIT_SCALE, FP16_GROWTH = 2**20, 2  # fp16: a first scale that overflows; clean steps before it grows
BLOCKS = json.dumps({"transformer_layer_cls_to_wrap": "Block", "forward_prefetch": True,
                     "backward_prefetch": "backward_pre"})
POLICIES = {
    "shard_grad_op": ["--fsdp", "shard_grad_op"],
    "full_shard (Block units, prefetch)": ["--fsdp", "full_shard auto_wrap", "--fsdp_config", BLOCKS],
    "full_shard (min_num_params, offload)": ["--fsdp", "full_shard auto_wrap offload", "--fsdp_config",
                                             json.dumps({"fsdp_min_num_params": 1070})],
    "FullShard slot (activation checkpointing)": ["--slot", "full_shard", "--fsdp_config",
                                                  json.dumps({"fsdp_transformer_layer_cls_to_wrap": ["Block"],
                                                              "fsdp_activation_checkpointing": "true"})],
}


def join_job(out, processes, batch, extra):
    """start_job without clearing `out` first: for runs that resume from what is there."""
    port = check_ddp.free_port()
    procs = []
    for rank in range(processes):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(processes), LOCAL_RANK=str(rank),
                   LOCAL_WORLD_SIZE=str(processes), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                   OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([str(WORKER), "--output_dir", str(out), "--per_device_train_batch_size",
                                       str(batch), *COMMON, *extra],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return procs


def results(out):
    return json.loads((out / "worker_results.json").read_text())


def run_alone(out, *flags):
    shutil.rmtree(out, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
    return subprocess.run([str(WORKER), "--output_dir", str(out), *COMMON, *flags], env=env, capture_output=True,
                          text=True, timeout=120)


def check_memory(name, processes, data_parallel, memory, psi):
    """ZeRO's formulas, per process."""
    n = processes
    total = sum(memory.values())
    dp_total = sum(data_parallel.values())
    print(f"      memory per process ({name}): parameters {memory['parameters']} B, gradients {memory['gradients']} B, "
          f"optimizer {memory['optimizer']} B; data parallelism {dp_total} B in all, this policy {total} B")
    if name.startswith("shard_grad_op"):
        expected = {"parameters": 4 * psi, "gradients": 4 * psi / n, "optimizer": 8 * psi / n}
    else:
        expected = {"parameters": 4 * psi / n, "gradients": 4 * psi / n, "optimizer": 8 * psi / n}
    for kind, formula in expected.items():
        check(formula <= memory[kind] <= formula + SLACK,
              f"{name}, {n} processes: {kind} {memory[kind]} B within ZeRO's {formula:.0f} B + {SLACK}")
    if not name.startswith("shard_grad_op"):
        check(total <= dp_total / n + SLACK,
              f"{name}, {n} processes: {total} B <= 1/{n} of data parallelism's {dp_total} B + {SLACK}")


def resume_exactly(name, flags, sharded):
    whole, cut = SCRATCH / f"{name}_whole", SCRATCH / f"{name}_cut"
    save = ["--save_strategy", "steps", "--save_steps", "4", *flags]
    got = finish(start_job(whole, 2, 8, 1, extra=save))
    check(all(code == 0 for code, _ in got), f"{name}: checkpointed 2-process run exits 0 {[(c, e[-300:]) for c, e in got if c]}")
    got = finish(start_job(cut, 2, 8, 1, extra=[*save, "--fail_at_step", "10", "--fail_rank", "1", "--ddp_timeout", "30"]),
                 timeout=120)
    check(got[1][0] == 3 and got[0][0] != 0, f"{name}: the run is cut at step 10 ({[c for c, _ in got]})")
    checkpoint = cut / "checkpoint-8"
    files = sorted(p.name for p in checkpoint.iterdir())
    per_rank = ["optimizer_shard_0.safetensors", "optimizer_shard_1.safetensors", "process_state_0.safetensors",
                "process_state_1.safetensors"]
    if sharded:
        per_rank += ["model_shard_0.safetensors", "model_shard_1.safetensors", "model_shards.json"]
        check("model.safetensors" not in files, f"{name}: a sharded checkpoint holds no gathered model")
    else:
        per_rank += ["model.safetensors"]
    check(all(f in files for f in per_rank), f"{name}: checkpoint-8 holds every rank's files: {files}")
    check(not list(cut.glob(".tmp-*")), f"{name}: no staging left behind")
    shutil.rmtree(cut / "checkpoint-12", ignore_errors=True)
    got = finish(join_job(cut, 2, 8, [*save, "--resume_from_checkpoint", "true"]))
    check(all(code == 0 for code, _ in got), f"{name}: the resumed run exits 0 {[(c, e[-300:]) for c, e in got if c]}")
    if all(code == 0 for code, _ in got):
        wa, wb = load_file(whole / "model.safetensors"), load_file(cut / "model.safetensors")
        worst = max(float(np.abs(wa[k] - wb[k]).max()) for k in wa)
        check(worst == 0, f"{name}: resumed weights equal the uninterrupted run's bit for bit ({worst:.2e})")
        check([e["loss"] for e in history(whole)] == [e["loss"] for e in history(cut)],
              f"{name}: resumed logged losses equal the uninterrupted run's")
    return whole, checkpoint


def scales(out, rank=0):
    return json.loads((out / f"fp16_scales_{rank}.json").read_text())


def check_fp16():
    """fp16 under ZeRO. Each process unscales and checks only its gradient shard; the overflow flag is
    summed across the processes, so every process skips the same steps and backs the scale off alike.

    The reference is one process accumulating the same two micro-batches of 8 (the examples each of
    the 2 processes trains on) with twice the first scale: each micro-batch's loss is divided by the
    window (HF's rule), so with the doubled scale its scaled loss, and every float16 intermediate of
    its backward, is the one the process holding that micro-batch computes: an overflow happens in
    both runs or in neither. (Against one process with batch 16 and the same scale this would not
    hold: a process's loss is a mean over 8 examples, so its per-example gradients are twice as large
    and overflow at half the scale, in torch's DDP and FSDP as here.) Its scale is then twice theirs at
    every step and its skipped steps are theirs. A first scale far too large forces overflows: the
    scale halves on each overflowing step until the gradients fit float16, then doubles after
    FP16_GROWTH clean steps and overflows again. At the edge an overflow lies in some gradients only,
    in one process's micro-batch or one process's shard: with the agreement left out, the processes
    part ways at the third step (one skips, the other steps) and never meet again.
    Tolerances: those of data parallelism against one process (check_ddp.py); with the scales powers
    of two, unscaling is exact and each shard holds the reference's gradient bit for bit (two
    processes' sum commutes); only the global norm's summation order differs."""
    def fp16(init_scale):
        return ["--fp16", "true", "--init_scale", str(init_scale), "--growth_interval", str(FP16_GROWTH)]

    single = SCRATCH / "fp16_single"
    r = run_alone(single, "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "2",
                  *fp16(2 * FP16_INIT_SCALE))
    check(r.returncode == 0, f"fp16 one process exits 0 {r.stderr[-300:]}")
    if r.returncode != 0:
        return
    reference = [{**step, "scale": step["scale"] / 2, "scale_after": step["scale_after"] / 2} for step in scales(single)]
    skipped = [i + 1 for i, step in enumerate(reference) if step["skipped"]]
    print(f"      fp16 one process (scales halved): {[step['scale'] for step in reference]}, skipped steps {skipped}")
    check(len(reference) == 12 and 3 <= len(skipped) <= 9 and any(skipped[i + 1] - skipped[i] > 1 for i in range(len(skipped) - 1)),
          "fp16 one process: overflows skip some steps, the scale recovers and overflows again")
    for name in ["shard_grad_op", "full_shard (Block units, prefetch)", "full_shard (min_num_params, offload)"]:
        out = SCRATCH / f"fp16_{re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_')}"
        got = finish(start_job(out, 2, 8, 1, extra=[*POLICIES[name], *fp16(FP16_INIT_SCALE), "--save_strategy", "steps",
                                                    "--save_steps", "12"]))
        check(all(code == 0 for code, _ in got), f"fp16 {name}: every process exits 0 {[e[-300:] for c, e in got if c]}")
        if any(code for code, _ in got):
            continue
        check(scales(out, 0) == scales(out, 1), f"fp16 {name}: both processes skip the same steps with the same scales")
        check(scales(out, 0) == reference,
              f"fp16 {name}: the scales and skipped steps of one process "
              f"(got {[step['scale'] for step in scales(out, 0)]}, skipped "
              f"{[i + 1 for i, step in enumerate(scales(out, 0)) if step['skipped']]})")
        scaler_file = json.loads((out / "checkpoint-12" / "scaler.json").read_text())
        check(scaler_file["scale"] == reference[-1]["scale_after"],
              f"fp16 {name}: checkpoint-12/scaler.json holds the agreed scale ({scaler_file['scale']})")
        a, b = history(single), history(out)
        worst_loss = max(abs(x["loss"] - y["loss"]) / abs(x["loss"]) for x, y in zip(a, b))
        stepped = [(x["grad_norm"], y["grad_norm"]) for x, y, step in zip(a, b, reference) if not step["skipped"]]
        worst_norm = max(abs(x - y) / abs(x) for x, y in stepped)
        wa, wb = load_file(single / "model.safetensors"), load_file(out / "model.safetensors")
        worst = max(float(np.abs(wa[k] - wb[k]).max()) for k in wa)
        check(len(a) == len(b) == 12 and worst_loss < 1e-5 and worst_norm < 1e-4 and worst < 2e-5,
              f"fp16 {name}: losses ({worst_loss:.1e} relative), grad norms of the steps taken ({worst_norm:.1e}) and "
              f"final weights ({worst:.1e}) as one process's")


def main():
    SCRATCH.mkdir(parents=True, exist_ok=True)
    for processes, batch, accumulation in [(2, 8, 1), (2, 4, 3), (4, 4, 2)]:
        case = f"{processes} processes, batch {batch}, accumulation {accumulation}"
        single = SCRATCH / f"single_{processes}_{batch}_{accumulation}"
        run_single(single, processes * batch, accumulation)
        data_parallel = SCRATCH / f"dp_{processes}_{batch}_{accumulation}"
        got = finish(start_job(data_parallel, processes, batch, accumulation))
        check(all(code == 0 for code, _ in got), f"data parallelism, {case}: every process exits 0")
        dp_memory = results(data_parallel)["memory"]
        psi = results(data_parallel)["trainable_parameters"]
        check(dp_memory == {"parameters": 4 * psi, "gradients": 4 * psi, "optimizer": dp_memory["optimizer"]}
              and 8 * psi <= dp_memory["optimizer"] <= 8 * psi + SLACK,
              f"data parallelism, {case}: 4Ψ + 4Ψ + 8Ψ bytes (Ψ = {psi}): {dp_memory}")
        for name, flags in POLICIES.items():
            out = SCRATCH / f"{re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_')}_{processes}_{batch}_{accumulation}"
            got = finish(start_job(out, processes, batch, accumulation, extra=flags))
            ok = all(code == 0 for code, _ in got)
            check(ok, f"{name}, {case}: every process exits 0")
            if not ok:
                for code, err in got:
                    print(f"  exit {code}: {err[-2000:]}")
                continue
            compare(f"{name}, {case}", single, out)
            check_memory(name, processes, dp_memory, results(out)["memory"], psi)

    # bf16 autocast: each process computes as a data-parallel process does (same per-process batch, so
    # the same bf16 roundings), and within bf16's precision of one process with the whole batch (whose
    # larger matrix products round differently: measured 2.3e-4 relative on losses, 3e-3 on weights).
    bf16 = ["--bf16", "true"]
    single, dp = SCRATCH / "bf16_single", SCRATCH / "bf16_dp"
    run_alone(single, "--per_device_train_batch_size", "16", *bf16)
    got = finish(start_job(dp, 2, 8, 1, extra=bf16))
    check(all(code == 0 for code, _ in got), "bf16 data parallelism: every process exits 0")
    for name in ["shard_grad_op", "full_shard (Block units, prefetch)"]:
        out = SCRATCH / f"bf16_{name.split()[0]}"
        got = finish(start_job(out, 2, 8, 1, extra=[*POLICIES[name], *bf16]))
        check(all(code == 0 for code, _ in got), f"bf16 {name}: every process exits 0")
        if not all(code == 0 for code, _ in got):
            continue
        for reference, loss_tolerance, weight_tolerance in [(dp, 1e-6, 2e-5), (single, 2e-3, 1e-2)]:
            a, b = history(reference), history(out)
            worst_loss = max(abs(x["loss"] - y["loss"]) / abs(x["loss"]) for x, y in zip(a, b))
            wa, wb = load_file(reference / "model.safetensors"), load_file(out / "model.safetensors")
            worst = max(float(np.abs(wa[k] - wb[k]).max()) for k in wa)
            check(len(a) == len(b) == 12 and worst_loss < loss_tolerance and worst < weight_tolerance,
                  f"bf16 {name} against {reference.name}: losses within {loss_tolerance:g} relative ({worst_loss:.1e}), "
                  f"weights within {weight_tolerance:g} ({worst:.1e})")

    check_fp16()

    # A DeepSpeed config maps onto the same policies.
    single, out = SCRATCH / "single_2_8_1", SCRATCH / "deepspeed_zero3"
    ds = json.dumps({"zero_optimization": {"stage": 3, "overlap_comm": True}, "train_micro_batch_size_per_gpu": "auto",
                     "gradient_clipping": "auto", "train_batch_size": 16})
    got = finish(start_job(out, 2, 8, 1, extra=["--deepspeed", ds]))
    check(all(code == 0 for code, _ in got), f"--deepspeed stage 3: every process exits 0 {[e[-300:] for c, e in got if c]}")
    if all(code == 0 for code, _ in got):
        compare("--deepspeed zero_optimization.stage 3", single, out)
        check(results(out)["memory"]["parameters"] <= results(SCRATCH / "dp_2_8_1")["memory"]["parameters"] / 2 + SLACK,
              "--deepspeed stage 3 shards the parameters")

    # Sharded checkpoints: exact resume, consolidation, another world size refused.
    sharded = ["--fsdp", "full_shard auto_wrap", "--fsdp_config",
               json.dumps({"transformer_layer_cls_to_wrap": "Block", "state_dict_type": "SHARDED_STATE_DICT"})]
    whole, checkpoint = resume_exactly("full_shard_sharded", sharded, sharded=True)
    final = whole / "checkpoint-12"
    r = subprocess.run([str(CONSOLIDATE), str(final), str(SCRATCH / "consolidated.safetensors")], capture_output=True,
                       text=True, timeout=120)
    check(r.returncode == 0, f"trainpp-consolidate exits 0 ({r.stderr.strip()[-300:]})")
    if r.returncode == 0:
        wa, wb = load_file(whole / "model.safetensors"), load_file(SCRATCH / "consolidated.safetensors")
        check(sorted(wa) == sorted(wb), "the consolidated model holds every tensor of the gathered one")
        check(all(np.array_equal(wa[k], wb[k]) for k in wa), "the consolidated model equals the gathered one exactly")
    broken = SCRATCH / "broken_checkpoint"
    shutil.rmtree(broken, ignore_errors=True)
    shutil.copytree(final, broken)
    (broken / "model_shard_1.safetensors").unlink()
    r = subprocess.run([str(CONSOLIDATE), str(broken)], capture_output=True, text=True, timeout=120)
    check(r.returncode != 0 and "rank 1" in r.stderr, f"a missing shard is named: {r.stderr.strip()[-200:]!r}")
    got = finish(start_job(SCRATCH / "sharded_on_4", 4, 4, 1, extra=[*sharded, "--ddp_timeout", "20",
                                                                      "--resume_from_checkpoint", str(checkpoint)]),
                 timeout=120)
    check(all(code != 0 for code, _ in got) and "processes" in got[0][1],
          f"a 2-process sharded checkpoint resumed by 4 processes is refused: {got[0][1].strip()[-250:]!r}")
    resume_exactly("shard_grad_op_full", ["--fsdp", "shard_grad_op"], sharded=False)

    # Flags and configurations that cannot work: clear errors before any training.
    bad = [
        (["--fsdp", "offload"], "can't work on its own"),
        (["--fsdp", "full_shard shard_grad_op"], "is not compatible with"),
        (["--fsdp", "full_shard auto_wrap"], "needs the units to wrap"),
        (["--fsdp", "full_shard", "--fsdp_config", '{"min_num_params": 10, "transformer_layer_cls_to_wrap": "Block"}'],
         "mutually exclusive"),
        (["--fsdp", "full_shard", "--fsdp_config", '{"fsdp_limit_all_gather": true}'], "unknown fsdp_config key"),
        (["--fsdp", "full_shard", "--fsdp_config", '{"transformer_layer_cls_to_wrap": "Nope"}'], "its module classes: Block, Linear"),
        (["--fsdp", "full_shard", "--fsdp_config", '{"activation_checkpointing": true}', "--gradient_checkpointing"],
         "can't be set to True simultaneously"),
        (["--fsdp", "full_shard", "--fsdp_config", str(SCRATCH / "missing.json")], "cannot open"),
        (["--fsdp", "hybrid_shard full_shard"], "more than one sharding strategy"),
        (["--fsdp", "full_shard", "--bf16_full_eval", "true"], "keeps sharded"),
        # fc1 and fc2 are Linear modules the model calls directly: FullShard cannot gather them.
        (["--fsdp", "full_shard", "--fsdp_config", '{"transformer_layer_cls_to_wrap": "Linear"}'],
         "not called through trainpp::call"),
        # torch's size-based rule wraps the deepest module that is large enough: the blocks' Linear.
        (["--fsdp", "full_shard", "--fsdp_config", '{"min_num_params": 1000}'], "blocks.0.fc (Linear)"),
    ]
    for flags, expected in bad:
        r = run_alone(SCRATCH / "bad_flags", *flags)
        message = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
        check(r.returncode != 0 and expected in r.stderr and "Traceback" not in r.stderr,
              f"{' '.join(flags)} -> exit {r.returncode}: {message[:200]!r}")

    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    print("all sharding checks passed")


if __name__ == "__main__":
    main()
