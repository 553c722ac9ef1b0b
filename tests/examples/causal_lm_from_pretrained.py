#!/usr/bin/env python3
"""causal_lm --model_name_or_path: fine-tunes a tiny model transformers made (GPT-2, then Llama) and
checks that the output directory is one transformers loads as the trained model:

- AutoModelForCausalLM.from_pretrained(output_dir) gives the same class, with every weight found;
- its loss on the evaluation blocks equals the eval_loss the example wrote (eval_results.json), within
  1e-4 relative: the weights are the trained ones, not the initial ones (whose loss is also checked
  to differ);
- checkpoint-N loads the same way.

usage: causal_lm_from_pretrained.py <causal_lm executable> <work dir>
Exits 77 (the test is skipped) when transformers is not installed.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

try:
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
except ImportError as e:  # pragma: no cover - depends on the environment
    print(f"SKIPPED: {e}")
    sys.exit(77)

BLOCK = 32
EVAL_BLOCKS = 4
VALIDATION = ["/usr/share/common-licenses/Apache-2.0", "/usr/share/common-licenses/MPL-2.0"]


def fail(message):
    raise SystemExit(f"FAIL: {message}")


def eval_blocks():
    """The example's evaluation data: the validation files' bytes in blocks, the first EVAL_BLOCKS."""
    data = b"".join(Path(f).read_bytes() for f in VALIDATION)
    ids = torch.tensor(list(data[: EVAL_BLOCKS * BLOCK]), dtype=torch.long).view(EVAL_BLOCKS, BLOCK)
    return ids


def loss_of(model_dir, ids, expected_class):
    model, info = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, output_loading_info=True)
    if type(model).__name__ != expected_class:
        fail(f"{model_dir} loads as {type(model).__name__}, not {expected_class}")
    if info["missing_keys"] or info["mismatched_keys"]:
        fail(f"{model_dir}: missing {sorted(info['missing_keys'])}, mismatched {info['mismatched_keys']}")
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids, labels=ids).loss.item()


def main():
    executable, work = sys.argv[1], Path(sys.argv[2])
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    torch.manual_seed(0)
    models = {
        "GPT2LMHeadModel": GPT2LMHeadModel(GPT2Config(vocab_size=256, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                                       bos_token_id=0, eos_token_id=0)),
        "LlamaForCausalLM": LlamaForCausalLM(LlamaConfig(vocab_size=256, hidden_size=32, intermediate_size=64,
                                                         num_hidden_layers=2, num_attention_heads=2,
                                                         num_key_value_heads=1, max_position_embeddings=64)),
    }
    ids = eval_blocks()
    for name, model in models.items():
        source = work / f"{name}-initial"
        model.save_pretrained(source)
        out = work / f"{name}-out"
        command = [executable, "--model_name_or_path", str(source), "--output_dir", str(out), "--block_size", str(BLOCK),
                   "--max_steps", "6", "--save_steps", "6", "--save_strategy", "steps", "--learning_rate", "1e-2",
                   "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2",
                   "--max_train_samples", "64", "--max_eval_samples", str(EVAL_BLOCKS),
                   "--per_device_eval_batch_size", str(EVAL_BLOCKS), "--eval_strategy", "no", "--num_samples", "0",
                   "--report_to", "none", "--disable_tqdm", "true"]
        run = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if run.returncode != 0:
            fail(f"{' '.join(command)} exited {run.returncode}:\n{run.stdout}\n{run.stderr}")
        eval_loss = json.loads((out / "eval_results.json").read_text())["eval_loss"]
        for directory in (out, out / "checkpoint-6"):
            loss = loss_of(directory, ids, name)
            if abs(loss - eval_loss) > 1e-4 * abs(eval_loss):
                fail(f"{name}: transformers' loss of {directory} is {loss}, the example's eval_loss {eval_loss}")
        initial = loss_of(source, ids, name)
        if abs(initial - eval_loss) <= 1e-3 * abs(eval_loss):
            fail(f"{name}: the initial model's loss {initial} equals the trained eval_loss {eval_loss}: nothing trained")
        print(f"{name}: eval_loss {eval_loss:.6f}, transformers on output_dir {loss:.6f}, initial {initial:.6f}")
    print("OK")


if __name__ == "__main__":
    main()
