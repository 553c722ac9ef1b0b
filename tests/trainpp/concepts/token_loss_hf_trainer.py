"""The reference side of token_loss_test.cpp: a tiny Llama fine-tuned by transformers' Trainer.

  token_loss_hf_trainer.py train OUT   writes OUT/model (save_pretrained of a tiny random Llama),
                                       OUT/data.safetensors (10 padded batches of 2 rows, their lengths
                                       varying, padding and some other positions labelled -100) and
                                       OUT/hf_log_history.json (HF Trainer on that data: accumulation 3,
                                       so the last window of each epoch holds one batch)
  token_loss_hf_trainer.py logits DIR INPUTS OUT
                                       loads DIR with AutoModelForCausalLM.from_pretrained and writes the
                                       logits of INPUTS' input_ids / attention_mask to OUT (it fails unless
                                       the directory loads as a LlamaForCausalLM with every weight found)

Exit status 77: transformers or safetensors is missing (the test skips).
"""
import json
import os
import sys

try:
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments
except ImportError:
    sys.exit(77)

NUM_BATCHES = 10
BATCH_SIZE = 2
VOCAB = 64
PAD = 0

# The flags both trainers run with (token_loss_test.cpp passes the same ones).
FLAGS = dict(per_device_train_batch_size=BATCH_SIZE, gradient_accumulation_steps=3, num_train_epochs=2,
             learning_rate=0.01, lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0, max_grad_norm=0.5,
             optim="adamw_torch", seed=0, logging_steps=1, train_sampling_strategy="sequential")


def make_data():
    """Rows of lengths 3..12 padded (right) to the longest of their batch; labels -100 on padding and
    on some real tokens, a row with a single scored token among them."""
    generator = torch.Generator().manual_seed(3)
    batches = {}
    for b in range(NUM_BATCHES):
        lengths = torch.randint(3, 13, (BATCH_SIZE,), generator=generator)
        width = int(lengths.max())
        ids = torch.full((BATCH_SIZE, width), PAD, dtype=torch.long)
        mask = torch.zeros((BATCH_SIZE, width), dtype=torch.long)
        for r, n in enumerate(lengths.tolist()):
            ids[r, :n] = torch.randint(1, VOCAB, (n,), generator=generator)
            mask[r, :n] = 1
        labels = ids.masked_fill(mask == 0, -100)
        hide = torch.rand(labels.shape, generator=generator) < 0.2
        labels = labels.masked_fill(hide, -100)
        if b == 4:  # a prompt-masked row: only its last token is scored
            n = int(lengths[0])
            labels[0, : n - 1] = -100
        batches[f"input_ids.{b}"] = ids
        batches[f"attention_mask.{b}"] = mask
        batches[f"labels.{b}"] = labels
    return batches


class Rows(torch.utils.data.Dataset):
    def __init__(self, batches):
        self.rows = []
        for b in range(NUM_BATCHES):
            for r in range(BATCH_SIZE):
                self.rows.append({k: batches[f"{k}.{b}"][r] for k in ("input_ids", "attention_mask", "labels")})

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def train(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32,
                         tie_word_embeddings=False, pad_token_id=PAD, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config)
    model.save_pretrained(os.path.join(out, "model"))
    batches = make_data()
    save_file(batches, os.path.join(out, "data.safetensors"))

    model = LlamaForCausalLM.from_pretrained(os.path.join(out, "model"), dtype=torch.float32)
    args = TrainingArguments(output_dir=os.path.join(out, "hf_run"), report_to="none", use_cpu=True,
                             save_strategy="no", disable_tqdm=True, **FLAGS)
    trainer = Trainer(model=model, args=args, train_dataset=Rows(batches))
    trainer.train()
    history = [e for e in trainer.state.log_history if "loss" in e]
    with open(os.path.join(out, "hf_log_history.json"), "w") as f:
        json.dump({"flags": FLAGS, "log_history": history, "total_flos": trainer.state.total_flos}, f)

    # The same fine-tuning with label smoothing: HF takes the labels out, shifts them for a causal LM and
    # divides by the window's label tokens (num_items_in_batch).
    smoothing = {**FLAGS, "label_smoothing_factor": 0.1}
    model = LlamaForCausalLM.from_pretrained(os.path.join(out, "model"), dtype=torch.float32)
    args = TrainingArguments(output_dir=os.path.join(out, "hf_run_smoothed"), report_to="none", use_cpu=True,
                             save_strategy="no", disable_tqdm=True, **smoothing)
    trainer = Trainer(model=model, args=args, train_dataset=Rows(batches))
    trainer.train()
    history = [e for e in trainer.state.log_history if "loss" in e]
    with open(os.path.join(out, "hf_log_history_smoothed.json"), "w") as f:
        json.dump({"flags": smoothing, "log_history": history, "total_flos": trainer.state.total_flos}, f)


def logits(model_dir, inputs, out):
    model, info = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, output_loading_info=True)
    if type(model).__name__ != "LlamaForCausalLM":
        sys.exit(f"{model_dir} loaded as {type(model).__name__}, not LlamaForCausalLM")
    if info["missing_keys"] or info["mismatched_keys"]:
        sys.exit(f"{model_dir}: missing {sorted(info['missing_keys'])}, mismatched {info['mismatched_keys']}")
    model.eval()
    data = load_file(inputs)
    with torch.no_grad():
        result = model(input_ids=data["input_ids"], attention_mask=data["attention_mask"]).logits
    save_file({"logits": result.contiguous()}, out)


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(sys.argv[2])
    elif sys.argv[1] == "logits":
        logits(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"unknown mode {sys.argv[1]}")
