#!/usr/bin/env python3
"""Runs the Fashion-MNIST example with its stderr on a pseudo-terminal, as a person at a terminal
would, and checks what they see: the live progress line (percentage, bar, step/total, elapsed<ETA,
it/s, latest loss) redrawn in place, the nested evaluation count, HF's info summary, and the log
dicts on stdout. Then the same run with --disable_tqdm: log lines only, no progress display.

usage: progress_on_terminal.py <fashion_mnist binary> <scratch dir>
"""
import os
import pty
import re
import subprocess
import sys
from pathlib import Path


def run_on_terminal(binary, args):
    """Runs `binary args` with stderr on a pty; returns (exit code, stdout text, terminal text)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([binary, *args], stdout=subprocess.PIPE, stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    terminal = bytearray()
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed its side
            break
        if not chunk:
            break
        terminal += chunk
    out = proc.stdout.read()
    code = proc.wait(timeout=600)
    os.close(leader)
    return code, out.decode(), terminal.decode(errors="replace")


def fail(message, text):
    print(text[-3000:])
    raise SystemExit(f"FAIL: {message}")


def main():
    binary, scratch = sys.argv[1], Path(sys.argv[2])
    scratch.mkdir(parents=True, exist_ok=True)
    common = ["--max_steps", "40", "--logging_steps", "20", "--eval_strategy", "steps", "--eval_steps", "40",
              "--max_eval_samples", "2048", "--per_device_eval_batch_size", "256", "--dataloader_num_workers", "0"]

    code, out, term = run_on_terminal(binary, ["--output_dir", str(scratch / "live"), *common])
    if code != 0:
        fail(f"exit code {code}", term)
    live = re.findall(r"\r\x1b\[2K *(\d+)%\|([#.]{24})\| (\d+)/40 \[(\d\d:\d\d)<([\d:?]+), ([\d.]+)it/s", term)
    if not live:
        fail("no live progress line on the terminal", term)
    if live[-1][0] != "100" or live[-1][2] != "40":
        fail(f"the last progress line is {live[-1]}, not 100% 40/40", term)
    if not re.search(r"loss=\d", term):
        fail("the progress line never shows the latest loss", term)
    if not re.search(r"\r\x1b\[2K  eval \d+/8", term):
        fail("no nested evaluation count (eval i/8)", term)
    if "***** Running training *****" not in term:
        fail("HF's info summary is missing", term)
    if not re.search(r"\{'epoch': [\d.]+, 'grad_norm': [\d.]+, 'learning_rate': [\d.e-]+, 'loss': [\d.]+\}", out):
        fail("no log dict on stdout", out)
    print(f"ok   live: {len(live)} redraws, last {live[-1]}")

    code, out, term = run_on_terminal(binary, ["--output_dir", str(scratch / "plain"), "--disable_tqdm", "true", *common])
    if code != 0:
        fail(f"exit code {code} with --disable_tqdm", term)
    if "%|" in term or "it/s" in term:
        fail("--disable_tqdm still shows a progress display", term)
    if out.count("'loss':") != 2:
        fail("--disable_tqdm: expected the two training log lines on stdout", out)
    print("ok   --disable_tqdm: log lines only")


if __name__ == "__main__":
    main()
