"""bench/gpu/run's measuring and reporting half.

  report.py matmul [--size 8192]         the bf16 matrix-product rate of this GPU, as JSON
  report.py table matmul.json a.json...   the markdown table (and results.json beside it with --out DIR)

MFU follows PaLM's accounting (appendix B), as nanoGPT does: per token, 6 N for the weights' matrix
products forward and backward, plus 12 n_layer n_embd seq_len for attention's two products (counted
in full, though causal attention could skip half). N is every parameter except the position table
(the tied token embedding counts: it is also the output projection). The denominator is the bf16
matrix-product rate measured on this card in the same run, not the datasheet's.
"""

import argparse
import json
import pathlib
import statistics
import sys


def measure_matmul(size):
    import torch

    if not torch.cuda.is_available():
        sys.exit("report.py matmul needs a CUDA GPU")
    # Random data: zeros run measurably faster on Hopper and would flatter the denominator.
    gen = torch.Generator(device="cuda").manual_seed(0)
    pairs = [(torch.randn(size, size, device="cuda", dtype=torch.bfloat16, generator=gen),
              torch.randn(size, size, device="cuda", dtype=torch.bfloat16, generator=gen)) for _ in range(3)]
    for a, b in pairs:  # warm-up: cuBLAS handle, heuristics, clocks
        a @ b
    torch.cuda.synchronize()
    times = []
    for i in range(30):
        a, b = pairs[i % len(pairs)]
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    seconds = statistics.median(times)
    return {"size": size, "seconds": seconds, "flops_per_s": 2 * size ** 3 / seconds,
            "device_name": torch.cuda.get_device_name(), "torch": torch.__version__}


def flops_per_token(result, config):
    n = result["parameters"] - config["seq_len"] * config["n_embd"]
    return 6 * n + 12 * config["n_layer"] * config["n_embd"] * config["seq_len"]


def table(matmul, results, config):
    peak = matmul["flops_per_s"] if matmul else None
    lines = [
        f"device: {matmul['device_name'] if matmul else 'cpu'}; torch {matmul['torch'] if matmul else '?'}; "
        f"bf16 matmul {peak / 1e12:.0f} TFLOP/s measured ({matmul['size']}^3, median of 30)" if matmul else
        "device: cpu (smoke run: no MFU)",
        "",
        "| contestant | parameters | tokens/s (median) | spread (min–max) | MFU | peak GPU memory | first losses |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = {}
    for r in results:
        tps = statistics.median(r["tokens_per_s"])
        mfu = tps * flops_per_token(r, config) / peak if peak else None
        rows[r["contestant"]] = tps
        memory = f"{r['peak_memory_bytes'] / 2**30:.2f} GiB" if r["peak_memory_bytes"] >= 0 else "n/a"
        lines.append(
            f"| {r['contestant']} | {r['parameters']:,} | {tps:,.0f} | {min(r['tokens_per_s']):,.0f}–"
            f"{max(r['tokens_per_s']):,.0f} | {f'{mfu:.1%}' if mfu is not None else 'n/a'} | {memory} | "
            f"{', '.join(f'{x:.3f}' for x in r['losses'])} |")
    if "trainpp" in rows and "hf_trainer" in rows:
        lines.append("")
        lines.append(f"trainpp / hf_trainer tokens/s: {rows['trainpp'] / rows['hf_trainer']:.3f}")
    # Different random initialisations of one architecture start at nearly the same loss (about
    # ln(vocab_size) on random tokens); a gap means the two do not compute the same thing.
    firsts = [r["losses"][0] for r in results if r["losses"]]
    if len(firsts) == 2:
        gap = abs(firsts[0] - firsts[1]) / max(firsts)
        lines.append(f"loss check: first-step losses {firsts[0]:.3f} vs {firsts[1]:.3f} "
                     f"(relative gap {gap:.2%}, {'ok' if gap < 0.02 else 'MISMATCH'})")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("matmul")
    m.add_argument("--size", type=int, default=8192)
    t = sub.add_parser("table")
    t.add_argument("matmul", help="the JSON of 'report.py matmul', or 'none' (CPU smoke runs)")
    t.add_argument("results", nargs="+")
    t.add_argument("--n_layer", type=int, default=12)
    t.add_argument("--n_embd", type=int, default=768)
    t.add_argument("--seq_len", type=int, default=1024)
    t.add_argument("--out", type=pathlib.Path)
    args = p.parse_args()
    if args.command == "matmul":
        print(json.dumps(measure_matmul(args.size)))
        return

    def last_json_line(path):
        # Log lines before it may look alike (HF prints Python dicts): the last line that parses wins.
        for line in reversed(pathlib.Path(path).read_text().splitlines()):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
        sys.exit(f"{path}: no JSON result line (the run failed; see its log)")

    matmul = None if args.matmul == "none" else last_json_line(args.matmul)
    results = [last_json_line(r) for r in args.results]
    config = {"n_layer": args.n_layer, "n_embd": args.n_embd, "seq_len": args.seq_len}
    text = table(matmul, results, config)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "table.md").write_text(text + "\n")
        (args.out / "results.json").write_text(json.dumps({"matmul": matmul, "results": results}, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()
