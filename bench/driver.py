#!/usr/bin/env python3
"""Runs trainpp's benchmarks side by side and prints the table (see bench/README.md).

Usually started by `bench/run`, which installs and builds what is needed first:
    python bench/driver.py --build build [--quick] [--reps N] [--out bench/results/<date>]

Every measurement is a process of its own (its peak RSS is that contestant's); repetitions are
interleaved across contestants; the table shows medians with min-max spread, and ratios of trainpp
over each contestant taken per repetition (the contestants of one repetition ran back to back).
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONTESTANTS = ["cpp_loop", "trainpp", "python_loop", "hf_trainer"]
RIVALS = ["cpp_loop", "python_loop", "hf_trainer"]

# Steps per measurement: long enough that the timed part dwarfs the clock's resolution and the first
# steps' allocations (warm-up), short enough that the full run stays near twenty minutes.
WORKLOADS = {
    "mlp": {"batch_size": 32, "full": (50, 600), "quick": (10, 60)},
    "cnn": {"batch_size": 64, "full": (10, 80), "quick": (3, 10)},
    "encoder": {"batch_size": 32, "full": (10, 120), "quick": (3, 15)},
}
LOSS_TOLERANCE = 1e-3


class Runner:
    def __init__(self, build, inputs, python, log_path):
        self.cpp = Path(build) / "bin" / "bench_cpp"
        self.python = python
        self.inputs = Path(inputs)
        self.log = open(log_path, "a")

    def command(self, contestant, workload, extra):
        common = ["--workload", workload, "--init", str(self.inputs / f"{workload}_init.safetensors"),
                  "--data", str(self.inputs / f"{workload}_data.safetensors"),
                  "--batch_size", str(WORKLOADS[workload]["batch_size"])]
        if contestant in ("cpp_loop", "trainpp", "loader"):
            return [str(self.cpp), "--contestant", contestant, *common, *extra]
        return [self.python, str(HERE / "contestants.py"), "--contestant", contestant, *common, *extra]

    def run(self, contestant, workload, extra, timeout=1800):
        """Runs one measurement; returns (its JSON result, its peak resident memory in MiB)."""
        cmd = self.command(contestant, workload, extra)
        self.log.write(f"$ {' '.join(cmd)}\n")
        self.log.flush()
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
            timer = threading.Timer(timeout, proc.kill)
            timer.start()
            out = proc.stdout.read().decode()
            # wait4, not wait: the child's own resource usage, peak RSS included.
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            timer.cancel()
            err.seek(0)
            errors = err.read().decode(errors="replace")
        self.log.write(out + errors + "\n")
        self.log.flush()
        if proc.returncode != 0:
            raise SystemExit(f"bench: {contestant} on {workload} failed (exit {proc.returncode}):\n"
                             f"{' '.join(cmd)}\n{errors[-2000:]}")
        lines = [line for line in out.strip().splitlines() if line.strip()]
        try:
            result = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            raise SystemExit(f"bench: {contestant} on {workload} printed no JSON result:\n{out[-2000:]}")
        return result, usage.ru_maxrss / 1024.0


def median_spread(values):
    return statistics.median(values), min(values), max(values)


def fmt_spread(values, digits=1):
    med, lo, hi = median_spread(values)
    return f"{med:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def check_losses(runner, workloads):
    """The contestants must compute the same thing: their first five losses agree."""
    print("## Do the contestants compute the same thing? (first 5 step losses)\n", flush=True)
    ok = True
    for workload in workloads:
        losses = {c: runner.run(c, workload, ["--mode", "losses", "--steps", "5"])[0]["losses"] for c in CONTESTANTS}
        reference = losses["cpp_loop"]
        for contestant in CONTESTANTS:
            diff = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(losses[contestant], reference))
            agree = diff < LOSS_TOLERANCE and len(losses[contestant]) == len(reference)
            ok &= agree
            shown = ", ".join(f"{v:.5f}" for v in losses[contestant])
            print(f"  {workload:8} {contestant:12} [{shown}]  max rel. diff {diff:.1e} "
                  f"{'ok' if agree else 'MISMATCH'}", flush=True)
    print()
    return ok


def measure_steps(runner, workloads, reps, mode):
    """rep-major, contestant order rotated each repetition: drift hits everyone alike."""
    results = {w: {c: {"steps_per_s": [], "rss_mib": []} for c in CONTESTANTS} for w in workloads}
    for rep in range(reps):
        for workload in workloads:
            warmup, steps = WORKLOADS[workload][mode]
            order = CONTESTANTS[rep % len(CONTESTANTS):] + CONTESTANTS[:rep % len(CONTESTANTS)]
            for contestant in order:
                result, rss = runner.run(contestant, workload,
                                         ["--mode", "steps", "--warmup", str(warmup), "--steps", str(steps)])
                results[workload][contestant]["steps_per_s"].append(result["steps_per_s"])
                results[workload][contestant]["rss_mib"].append(rss)
                print(f"  rep {rep + 1}/{reps} {workload:8} {contestant:12} {result['steps_per_s']:9.1f} steps/s "
                      f"peak {rss:7.0f} MiB", flush=True)
    return results


def measure_loader(runner, reps, mode):
    steps = 200 if mode == "full" else 30
    out = {}
    for workers in (0, 2):
        values = []
        for _ in range(reps):
            result, _ = runner.run("loader", "cnn", ["--mode", "steps", "--steps", str(steps),
                                                     "--num_workers", str(workers)])
            values.append(result["samples_per_s"])
        out[workers] = values
        print(f"  data loading, {workers} workers: {fmt_spread(values, 0)} samples/s", flush=True)
    return out


def measure_accuracy(runner):
    out = {}
    for contestant in CONTESTANTS:
        result, rss = runner.run(contestant, "cnn", ["--mode", "accuracy", "--target", "0.90", "--max_epochs", "5"])
        out[contestant] = result
        print(f"  time to 90%: {contestant:12} {result['seconds']:7.1f} s, {result['epochs']} epochs, "
              f"accuracy {result['accuracy']:.4f}", flush=True)
    return out


def table(results, loader, accuracy):
    lines = ["| workload | trainpp_steps_per_s | vs_cpp_loop | vs_python_loop | vs_hf_trainer | "
             "cpp_loop steps/s | python_loop steps/s | hf_trainer steps/s | peak RSS MiB (trainpp / cpp / py / hf) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for workload, by in results.items():
        ours = by["trainpp"]["steps_per_s"]
        cells = [workload, fmt_spread(ours)]
        for rival in RIVALS:
            ratios = [a / b for a, b in zip(ours, by[rival]["steps_per_s"])]
            cells.append(fmt_spread(ratios, 2))
        for rival in RIVALS:
            cells.append(fmt_spread(by[rival]["steps_per_s"]))
        cells.append(" / ".join(f"{max(by[c]['rss_mib']):.0f}" for c in ["trainpp", "cpp_loop", "python_loop", "hf_trainer"]))
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    if accuracy:
        ours = accuracy["trainpp"]["seconds"]
        text += "\n\n| cnn: time to 90% test accuracy | seconds | epochs | accuracy | trainpp speed-up |\n|---|---|---|---|---|\n"
        text += "\n".join(f"| {c} | {r['seconds']:.1f} | {r['epochs']} | {r['accuracy']:.4f} | {r['seconds'] / ours:.2f} |"
                          for c, r in accuracy.items())
    if loader:
        consumed = statistics.median(results["cnn"]["trainpp"]["steps_per_s"]) * WORKLOADS["cnn"]["batch_size"] \
            if "cnn" in results else None
        text += "\n\n| data loading (cnn, batch 64) | samples/s | × what training consumes |\n|---|---|---|\n"
        for workers, values in loader.items():
            ratio = f"{statistics.median(values) / consumed:.1f}" if consumed else "–"
            text += f"| dataloader_num_workers {workers} | {fmt_spread(values, 0)} | {ratio} |\n"
        if consumed:
            text += f"| training consumes | {consumed:.0f} | 1.0 |\n"
    return text


def svg_plot(results):
    """Steps/s of each contestant relative to the hand-written C++ loop, one group per workload."""
    colors = {"cpp_loop": "#777777", "trainpp": "#1f77b4", "python_loop": "#ff7f0e", "hf_trainer": "#2ca02c"}
    width, height, left, bottom, top = 640, 360, 60, 50, 40
    workloads = list(results)
    rel = {w: {c: statistics.median(results[w][c]["steps_per_s"]) / statistics.median(results[w]["cpp_loop"]["steps_per_s"])
               for c in CONTESTANTS} for w in workloads}
    peak = max(max(v.values()) for v in rel.values()) * 1.15
    plot_h = height - bottom - top
    group_w = (width - left - 20) / len(workloads)
    bar_w = group_w / (len(CONTESTANTS) + 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">Training steps/s relative to a hand-written LibTorch loop (higher is faster)</text>']
    for tick in [0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0]:
        if tick > peak:
            break
        y = top + plot_h * (1 - tick / peak)
        parts.append(f'<line x1="{left}" x2="{width - 20}" y1="{y:.1f}" y2="{y:.1f}" stroke="{"#444" if tick == 1.0 else "#ddd"}"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>')
    for i, workload in enumerate(workloads):
        x0 = left + i * group_w + bar_w / 2
        for j, contestant in enumerate(CONTESTANTS):
            value = rel[workload][contestant]
            h = plot_h * value / peak
            x = x0 + j * bar_w
            parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w * 0.9:.1f}" height="{h:.1f}" '
                         f'fill="{colors[contestant]}"><title>{contestant} {workload}: {value:.2f}</title></rect>')
            parts.append(f'<text x="{x + bar_w * 0.45:.1f}" y="{top + plot_h - h - 3:.1f}" text-anchor="middle" font-size="10">{value:.2f}</text>')
        parts.append(f'<text x="{x0 + bar_w * 2:.1f}" y="{height - bottom + 18}" text-anchor="middle">{workload}</text>')
    for j, contestant in enumerate(CONTESTANTS):
        x = left + j * 140
        parts.append(f'<rect x="{x}" y="{height - 22}" width="12" height="12" fill="{colors[contestant]}"/>')
        parts.append(f'<text x="{x + 16}" y="{height - 12}">{contestant}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def machine():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch
    return (f"{cpu}, {os.cpu_count()} cores, BENCH_THREADS={os.environ.get('BENCH_THREADS', os.cpu_count())}, "
            f"torch {torch.__version__}, Python {platform.python_version()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", required=True, help="the CMake build directory holding bin/bench_cpp")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--reps", type=int, help="repetitions per measurement (default 5, quick 2)")
    parser.add_argument("--workloads", default="mlp,cnn,encoder")
    parser.add_argument("--out", help="results folder (default bench/results/<UTC date and time>)")
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    reps = args.reps or (2 if args.quick else 5)
    workloads = [w for w in args.workloads.split(",") if w]
    for w in workloads:
        if w not in WORKLOADS:
            raise SystemExit(f"bench: unknown workload '{w}' (choose from {', '.join(WORKLOADS)})")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d-%H%M")
    out = Path(args.out) if args.out else HERE / "results" / (stamp + ("-quick" if args.quick else ""))
    out.mkdir(parents=True, exist_ok=True)
    inputs = HERE / "results" / "inputs"
    subprocess.run([sys.executable, str(HERE / "make_inputs.py"), "--out", str(inputs)], check=True)
    runner = Runner(args.build, inputs, sys.executable, out / "log.txt")
    about = machine()
    print(f"# trainpp benchmarks, {stamp} UTC ({mode}, {reps} repetitions)\n{about}\n", flush=True)

    losses_ok = check_losses(runner, workloads)
    print("## Throughput\n", flush=True)
    results = measure_steps(runner, workloads, reps, mode)
    loader = measure_loader(runner, reps, mode) if "cnn" in workloads else {}
    accuracy = measure_accuracy(runner) if "cnn" in workloads and not args.quick else {}

    text = table(results, loader, accuracy)
    header = (f"Measured {stamp} UTC on {about}; median of {reps} interleaved repetitions, (min–max); "
              f"ratios = trainpp / contestant per repetition. Losses agree: {'yes' if losses_ok else 'NO'}.\n\n")
    (out / "table.md").write_text(header + text + "\n")
    (out / "throughput.svg").write_text(svg_plot(results))
    (out / "results.json").write_text(json.dumps({"when": stamp, "machine": about, "mode": mode, "reps": reps,
                                                  "steps": results, "loader": loader, "accuracy": accuracy,
                                                  "losses_agree": losses_ok}, indent=1))
    print(f"\nwritten: {out}/table.md, throughput.svg, results.json, log.txt\n")
    print(header + text)
    return 0 if losses_ok else 1


if __name__ == "__main__":
    sys.exit(main())
