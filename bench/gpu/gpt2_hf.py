"""HF's contestant in bench/gpu/run: transformers' GPT2LMHeadModel (GPT-2 small by default) trained by
transformers' Trainer on the same random tokens as gpt2_bench, with the same flags: bf16 autocast,
SDPA attention, fused AdamW, HF's defaults for everything else. Timed in windows of steps between
device synchronisations; prints one JSON object as its last stdout line (the fields gpt2_bench prints).
"""

import argparse
import json
import os
import sys
import tempfile
import time

import torch


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n_layer", type=int, default=12)
    p.add_argument("--n_embd", type=int, default=768)
    p.add_argument("--n_head", type=int, default=12)
    p.add_argument("--vocab_size", type=int, default=50257)
    p.add_argument("--seq_len", type=int, default=1024)
    p.add_argument("--per_device_train_batch_size", type=int, default=16)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--loss_steps", type=int, default=5)
    p.add_argument("--use_cpu", action="store_true", help="smoke runs without a GPU (no bf16 then)")
    args = p.parse_args()
    if args.warmup < 1 or args.steps < 1 or args.windows < 1:
        p.error("--warmup, --steps and --windows must be positive")
    return args


def main():
    args = parse_args()
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments

    total_steps = args.warmup + args.steps * args.windows
    batch = args.per_device_train_batch_size
    # The same tokens as gpt2_bench: torch's CPU generator, seed 0, one row per sequence.
    torch.manual_seed(0)
    tokens = torch.randint(args.vocab_size, (batch * total_steps, args.seq_len), dtype=torch.long)

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return tokens.shape[0]

        def __getitem__(self, index):
            return {"input_ids": tokens[index], "labels": tokens[index]}

    config = GPT2Config(vocab_size=args.vocab_size, n_positions=args.seq_len, n_embd=args.n_embd,
                        n_layer=args.n_layer, n_head=args.n_head)
    model = GPT2LMHeadModel._from_config(config, attn_implementation="sdpa")
    parameters = sum(p.numel() for p in model.parameters())
    device = "cpu" if args.use_cpu else "cuda"

    marks, losses = [], []

    def synchronize():
        if device == "cuda":
            torch.cuda.synchronize()

    class WindowTimer(TrainerCallback):
        """Marks window borders (a device sync at each, nowhere else) and stops logging after the
        first loss_steps steps, so the timed windows hold no host sync."""

        def on_step_end(self, a, state, control, **kwargs):
            step = state.global_step
            if step > args.loss_steps:
                control.should_log = False
            if step >= args.warmup and (step - args.warmup) % args.steps == 0 \
                    and (step - args.warmup) // args.steps <= args.windows:
                synchronize()
                marks.append(time.perf_counter())

        def on_log(self, a, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append(float(logs["loss"]))

    with tempfile.TemporaryDirectory() as output_dir:
        training_args = TrainingArguments(
            output_dir=output_dir, max_steps=total_steps, per_device_train_batch_size=batch,
            bf16=not args.use_cpu, use_cpu=args.use_cpu, optim="adamw_torch_fused", logging_steps=1,
            save_strategy="no", report_to="none", disable_tqdm=True, seed=0,
            train_sampling_strategy="sequential")
        trainer = Trainer(model=model, args=training_args, train_dataset=Rows(), callbacks=[WindowTimer()])
        # The WindowTimer runs after HF's DefaultFlowCallback, so its should_log = False wins.
        trainer.train()
    if len(marks) != args.windows + 1:
        sys.exit(f"expected {args.windows + 1} window marks, got {len(marks)}")
    tokens_per_window = args.steps * batch * args.seq_len
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else -1
    print(json.dumps({
        "contestant": "hf_trainer",
        "device": device,
        "parameters": parameters,
        "batch_size": batch,
        "seq_len": args.seq_len,
        "tokens_per_s": [tokens_per_window / (b - a) for a, b in zip(marks, marks[1:])],
        "losses": losses[:args.loss_steps],
        "peak_memory_bytes": peak,
    }))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
