#!/usr/bin/env python3
"""Runs an example program on generated malformed command lines and arguments files.

    cli_fuzz.py <fashion_mnist binary> <scratch dir>

Each run gets `--output_dir <scratch>/out_N` and one defect: a misspelt flag, a value of the wrong
type, a missing value, a bad choice, a stray word, bytes that are not UTF-8, a very long token, a
contradiction between settings, a broken or mistyped JSON arguments file, or a setting the program
only refuses after parsing (a missing data folder, --tf32 without a GPU). Every run must exit with
code 2 (not a signal, not a hang), print one `error: ...` message on stderr, and leave
<scratch>/out_N absent: nothing is written to output_dir. The generator is seeded, so a failure
reproduces; each failing case is printed with its arguments.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

TIMEOUT_S = 20
SEED = 20240601

# A few flags of each type, as the program declares them (TrainingArguments and its DataArgs).
INT_FLAGS = ["per_device_train_batch_size", "seed", "max_steps", "gradient_accumulation_steps", "save_total_limit",
             "max_train_samples", "dataloader_num_workers"]
FLOAT_FLAGS = ["learning_rate", "num_train_epochs", "weight_decay", "warmup_steps", "logging_steps", "adam_beta1"]
CHOICE_FLAGS = {"eval_strategy": ["no", "steps", "epoch"], "save_strategy": ["no", "steps", "epoch", "best"],
                "optim": ["adamw_torch", "adamw_torch_fused", "sgd"], "lr_scheduler_type": ["linear", "cosine"],
                "log_level": ["passive", "info", "warning"]}
BOOL_FLAGS = ["do_train", "bf16", "fp16", "load_best_model_at_end", "use_cpu", "eval_on_start"]
STRING_FLAGS = ["run_name", "data_dir", "metric_for_best_model", "logging_dir"]
LIST_FLAGS = ["label_names", "report_to"]
ALL_FLAGS = INT_FLAGS + FLOAT_FLAGS + list(CHOICE_FLAGS) + BOOL_FLAGS + STRING_FLAGS + LIST_FLAGS


def typo(rng: random.Random, name: str) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz_"
    while True:
        chars = list(name)
        at = rng.randrange(len(chars))
        kind = rng.randrange(3)
        if kind == 0:
            del chars[at]
        elif kind == 1:
            chars[at] = rng.choice(letters)
        else:
            chars.insert(at, rng.choice(letters))
        result = "".join(chars)
        if result not in ALL_FLAGS and result != name and not result.startswith("no_"):
            return result


def bad_value(rng: random.Random, flag: str) -> str:
    if flag in INT_FLAGS:
        return rng.choice(["abc", "1.5", "0x10", "", " 3", "3 ", "1e3", "9223372036854775808", "7x", "--", "1_000"])
    if flag in FLOAT_FLAGS:
        return rng.choice(["fast", "inf", "nan", "-inf", "1e400", "0x1p3", "", "1e-3x", "1..2", "1,5"])
    return rng.choice(["", "maybe", "sometimes", "Steps", "adam", " no"])


CONTRADICTIONS = [
    (["--bf16", "--fp16"], "fp16 and bf16"),
    (["--load_best_model_at_end", "--eval_strategy", "no", "--save_strategy", "steps"], "requires an evaluation strategy"),
    (["--load_best_model_at_end", "--eval_strategy", "steps", "--save_strategy", "epoch"], "strategy to match"),
    (["--per_device_train_batch_size", "-8"], "per_device_train_batch_size must be a positive number"),
    (["--per_device_eval_batch_size", "0"], "per_device_eval_batch_size must be a positive number"),
    (["--max_steps", "0"], "max_steps must be a positive number"),
    (["--num_train_epochs", "0"], "num_train_epochs must be positive"),
    (["--learning_rate", "-1"], "learning_rate must be >= 0"),
    (["--adam_beta2", "1.5"], "adam_beta2 must be in [0, 1)"),
    (["--warmup_steps", "2.5"], "warmup_steps must be an integer"),
    (["--dataloader_num_workers", "0", "--dataloader_prefetch_factor", "2"], "dataloader_prefetch_factor"),
    (["--report_to", "none", "tensorboard"], "report_to 'none' cannot be combined"),
    (["--report_to", "wandb"], "report_to 'wandb'"),
    (["--lr_scheduler_type", "reduce_lr_on_plateau", "--eval_strategy", "no"], "reduce_lr_on_plateau requires an eval"),
    (["--save_strategy", "steps", "--save_steps", "0"], "save_steps must be positive"),
    (["--eval_strategy", "steps", "--eval_steps", "1.5"], "eval_steps must be an integer"),
]


class Cases:
    """Generates (category, arguments, expected text in the error) triples; arguments may be bytes."""

    def __init__(self, rng: random.Random, files: Path):
        self.rng = rng
        self.files = files
        self.file_count = 0

    def write(self, content: bytes | str, name: str | None = None) -> str:
        self.file_count += 1
        path = self.files / (name or f"args_{self.file_count}.json")
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return str(path)

    def command_line(self, index: int) -> tuple[str, list, str]:
        rng = self.rng
        kind = index % 10
        if kind == 0:
            name = typo(rng, rng.choice(ALL_FLAGS))
            return "typo", [f"--{name}", "1"], f"unrecognized argument: --{name}"
        if kind == 1:
            flag = rng.choice(INT_FLAGS + FLOAT_FLAGS)
            value = bad_value(rng, flag)
            args = [f"--{flag}={value}"] if rng.random() < 0.3 else [f"--{flag}", value]
            return "bad value", args, f"--{flag}"
        if kind == 2:
            flag = rng.choice(list(CHOICE_FLAGS))
            value = rng.choice(["sometimes", "Steps", "", "none", "adam", CHOICE_FLAGS[flag][0] + "s"])
            if value in CHOICE_FLAGS[flag]:
                value = "never"
            return "bad choice", [f"--{flag}", value], f"argument --{flag}: invalid choice"
        if kind == 3:
            flag = rng.choice(INT_FLAGS + FLOAT_FLAGS + list(CHOICE_FLAGS) + STRING_FLAGS + LIST_FLAGS)
            follow = rng.choice([[], ["--seed", "3"]])
            return "missing value", [f"--{flag}"] + follow, f"--{flag}: expected"
        if kind == 4:
            word = rng.choice(["extra", "-x", "--", "train", "=", "-lr", "config.yaml", "later.json"])
            return "stray word", ["--seed", "1", word], f"unexpected argument '{word}'"
        if kind == 5:
            flag = rng.choice(BOOL_FLAGS)
            value = rng.choice(["maybe", "", "2", "on", "nope"])
            return "bad bool", [f"--{flag}={value}"], f"argument --{flag}: invalid bool value"
        if kind == 6:
            settings, needle = rng.choice(CONTRADICTIONS)
            return "contradiction", list(settings), needle
        if kind == 7:
            choice = rng.randrange(3)
            if choice == 0:
                return "non-UTF-8 value", [b"--run_name", b"caf\xe9"], "not valid UTF-8"
            if choice == 1:
                return "non-UTF-8 flag", [b"--seed\xff", b"1"], "unrecognized argument"
            return "non-UTF-8 list item", [b"--label_names", b"ok", b"\xc0\xaf"], "not valid UTF-8"
        if kind == 8:
            # Below Linux's limit of 128 KiB for one argument.
            long_text = rng.choice("abcxyz") * rng.randrange(1000, 100_000)
            choice = rng.randrange(3)
            if choice == 0:
                return "long flag", [f"--{long_text}", "1"], "unrecognized argument"
            if choice == 1:
                return "long value", ["--learning_rate", long_text], "argument --learning_rate: invalid float value"
            return "long word", [long_text], "unexpected argument"
        flag = rng.choice(["dataloader_pin_memory", "log_on_each_node"])
        return "negation with value", [f"--no_{flag}=true"], f"--no_{flag}: ignored explicit argument"

    def json_file(self, index: int) -> tuple[str, list, str]:
        rng = self.rng
        good = {"learning_rate": 0.001, "num_train_epochs": 1, "seed": 7, "eval_strategy": "epoch", "label_names": ["labels"]}
        text = json.dumps(good)
        kind = index % 8
        if kind == 0:
            return "JSON truncated", [self.write(text[: rng.randrange(len(text))])], "not valid JSON"
        if kind == 1:
            # null is not a wrong type: as in HF's dataclasses it means "not given", so the default holds.
            key, value = rng.choice([("learning_rate", "high"), ("seed", 1.5), ("do_train", "yes"), ("eval_strategy", 3),
                                     ("label_names", [1]), ("num_train_epochs", [1]), ("run_name", 5)])
            return "JSON wrong type", [self.write(json.dumps({**good, key: value}))], key
        if kind == 2:
            return "JSON duplicate key", [self.write('{"seed": 1, "learning_rate": 0.1, "seed": 2}')], 'duplicate key "seed"'
        if kind == 3:
            key = typo(rng, rng.choice(list(good)))
            return "JSON unknown key", [self.write(json.dumps({**good, key: 1}))], f'unrecognized key "{key}"'
        if kind == 4:
            top = rng.choice(["[]", "3", '"args"', "null", "[" + text + "]"])
            return "JSON not an object", [self.write(top)], "must hold a JSON object"
        if kind == 5:
            value = rng.choice(["18446744073709551615", "9223372036854775808", "-9223372036854775809"])
            return "JSON huge integer", [self.write('{"seed": ' + value + "}")], "seed"
        if kind == 6:
            content = rng.choice([b'{"run_name": "a\x00b"}', b'{"run_name": "\xff"}', b'{"run_name": "a\\u0000b"}',
                                  b'{"lr_scheduler_kwargs": {"a": ' + b"[" * 100 + b"]" * 100 + b"}}",
                                  text.encode() + b" trailing", b""])
            return "JSON bad bytes", [self.write(content)], "run_name" if b"u0000" in content else "JSON"
        missing = self.files / f"missing_{index}.json"
        return "JSON missing file", [str(missing)], "No such file"

    def late(self, index: int) -> tuple[str, list, str]:
        """Settings that parse but that the program refuses before training."""
        kind = index % 3
        if kind == 0:
            return "late: data folder", ["--data_dir", str(self.files / "no_such_data")], "no_such_data"
        if kind == 1:
            return "late: tf32 without a GPU", ["--tf32", "true", "--use_cpu"], "--tf32 requires a CUDA GPU"
        return "late: max_train_samples", ["--max_train_samples", "0"], "--max_train_samples must be positive"


def as_bytes(arg) -> bytes:
    return arg if isinstance(arg, bytes) else os.fsencode(arg)


def shown(args: list) -> str:
    parts = []
    for a in args:
        text = a.decode("utf-8", "backslashreplace") if isinstance(a, bytes) else a
        parts.append(repr(text if len(text) <= 60 else f"{text[:40]}...({len(text)} chars)"))
    return " ".join(parts)


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    binary, scratch = Path(sys.argv[1]), Path(sys.argv[2])
    files = scratch / "files"
    scratch.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(files, ignore_errors=True)
    files.mkdir()
    rng = random.Random(SEED)
    cases = Cases(rng, files)

    generated = [cases.command_line(i) for i in range(80)]
    generated += [cases.json_file(i) for i in range(32)]
    generated += [cases.late(i) for i in range(6)]
    # A good arguments file followed by a malformed command line.
    good_file = cases.write(json.dumps({"learning_rate": 0.001, "seed": 3}), "good.json")
    for i in range(4):
        category, args, needle = cases.command_line(i)
        generated.append((f"file + {category}", [good_file] + args, needle))

    failures = []
    counts: dict[str, int] = {}
    start = time.monotonic()
    for n, (category, args, needle) in enumerate(generated):
        out_dir = scratch / f"out_{n}"
        shutil.rmtree(out_dir, ignore_errors=True)
        # An arguments file must come first; --output_dir goes right after it.
        lead = [args[0]] if args and isinstance(args[0], str) and args[0].endswith(".json") else []
        argv = [binary] + lead + ["--output_dir", str(out_dir)] + args[len(lead):]
        problem = None
        try:
            run = subprocess.run([as_bytes(a) for a in argv], capture_output=True, timeout=TIMEOUT_S, cwd=scratch)
        except subprocess.TimeoutExpired:
            problem = f"no exit within {TIMEOUT_S} s"
        else:
            stderr = run.stderr.decode("utf-8", "replace")
            lines = stderr.splitlines()
            if run.returncode < 0:
                problem = f"killed by signal {-run.returncode}"
            elif run.returncode != 2:
                problem = f"exit code {run.returncode}"
            elif not stderr.startswith("error: "):
                problem = "stderr does not start with 'error: '"
            elif len(lines) != 1 and not all(line.startswith("- ") for line in lines[1:]):
                # One line; HF's strategy-mismatch message alone continues on "- " lines.
                problem = f"{len(lines)} lines on stderr"
            elif needle not in stderr:
                problem = f"the message lacks {needle!r}"
            if problem:
                problem += f"; stderr: {stderr.strip()[:300]!r}"
        if out_dir.exists():
            written = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*"))
            problem = (problem + "; " if problem else "") + f"wrote into output_dir: {written[:10]}"
            shutil.rmtree(out_dir, ignore_errors=True)
        counts[category] = counts.get(category, 0) + 1
        if problem:
            failures.append(f"[{category}] {shown(args)}: {problem}")

    elapsed = time.monotonic() - start
    print(f"{len(generated)} malformed runs of {binary.name} in {elapsed:.1f} s:")
    for category, count in sorted(counts.items()):
        print(f"  {count:3d}  {category}")
    if failures:
        print(f"{len(failures)} runs did not end in exit code 2 with one error line and nothing written:")
        for failure in failures:
            print(f"  {failure}")
        return 1
    print("every run exited with code 2 and one error line, and wrote nothing into output_dir")
    shutil.rmtree(files, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
