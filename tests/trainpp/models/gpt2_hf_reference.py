"""transformers' side of tests/trainpp/models/gpt2_test.cpp: GPT2LMHeadModel directories made and
checked by transformers itself (a tiny random model, nothing downloaded).

  gpt2_hf_reference.py make <work>   writes <work>/hf (model.safetensors), <work>/hf_sharded
                                     (max_shard_size 20KB), <work>/inputs.safetensors (a padded batch)
                                     and <work>/reference.safetensors (transformers' logits and loss)
  gpt2_hf_reference.py check <work>  loads the directories trainpp saved from <work>/hf, <work>/cpp and
                                     <work>/cpp_sharded (20KB), in transformers: every tensor used,
                                     logits equal to the reference, and every file byte for byte the
                                     one transformers wrote into hf/ and hf_sharded/

Exits non-zero with a message on the first difference.
"""

import json
import os
import sys
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.disable_progress_bar()

SHARD_SIZE = "20KB"


def fail(message):
    print(f"gpt2_hf_reference: {message}", file=sys.stderr)
    sys.exit(1)


def inputs():
    torch.manual_seed(7)
    input_ids = torch.randint(0, 64, (3, 8))
    attention_mask = torch.ones(3, 8, dtype=torch.long)
    attention_mask[1, 5:] = 0  # right padding
    attention_mask[2, :3] = 0  # left padding
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    # generate()'s positions for a padded batch
    position_ids = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
    return dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels, position_ids=position_ids)


def outputs(model, batch):
    with torch.no_grad():
        return {
            "logits_no_mask": model(input_ids=batch["input_ids"]).logits,
            "logits_mask": model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
            "logits_mask_positions": model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                           position_ids=batch["position_ids"]).logits,
            "loss": model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          labels=batch["labels"]).loss.reshape(1),
        }


def make(work):
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=2, n_head=4, bos_token_id=1, eos_token_id=2)
    config.custom_setting = {"kept": [1, 2, 3]}  # a key trainpp does not know: it must survive a round trip
    model = GPT2LMHeadModel(config).eval()
    model.save_pretrained(os.path.join(work, "hf"))
    model.save_pretrained(os.path.join(work, "hf_sharded"), max_shard_size=SHARD_SIZE)
    batch = inputs()
    save_file({k: v.contiguous() for k, v in batch.items()}, os.path.join(work, "inputs.safetensors"))
    reference = outputs(model, batch)
    bf16 = GPT2LMHeadModel.from_pretrained(os.path.join(work, "hf"), dtype=torch.bfloat16)
    reference["bf16_wte"] = bf16.transformer.wte.weight.detach().clone()
    reference["bf16_c_fc"] = bf16.transformer.h[1].mlp.c_fc.weight.detach().clone()
    save_file({k: v.contiguous() for k, v in reference.items()}, os.path.join(work, "reference.safetensors"))
    print("made", work)


def load_checked(path):
    model, info = GPT2LMHeadModel.from_pretrained(path, output_loading_info=True)
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        if info.get(kind):
            fail(f"{path}: transformers reports {kind}: {info[kind]}")
    return model.eval()


def check(work):
    reference = load_file(os.path.join(work, "reference.safetensors"))
    batch = inputs()
    for name in ("cpp", "cpp_sharded"):
        path = os.path.join(work, name)
        model = load_checked(path)
        got = outputs(model, batch)
        for key in ("logits_no_mask", "logits_mask", "logits_mask_positions", "loss"):
            diff = (got[key] - reference[key]).abs().max().item()
            if diff > 1e-6:
                fail(f"{path}: {key} differs from the reference by {diff}")
        config = json.load(open(os.path.join(path, "config.json")))
        if config.get("custom_setting") != {"kept": [1, 2, 3]}:
            fail(f"{path}/config.json: the unknown key custom_setting was not kept: {config.get('custom_setting')}")
        if config.get("architectures") != ["GPT2LMHeadModel"] or config.get("dtype") != "float32":
            fail(f"{path}/config.json: architectures / dtype are {config.get('architectures')} / {config.get('dtype')}")
        if model.lm_head.weight.data_ptr() != model.transformer.wte.weight.data_ptr():
            fail(f"{path}: lm_head is not tied to wte after loading")
        print("loaded", path)

    # The files themselves: trainpp saved the weights transformers saved in hf/ and hf_sharded/
    # (it loaded them from hf/), so every file must be byte for byte transformers' own: the config
    # with its unknown key, the generation config, the shard split, names and index.
    for ours, theirs in (("cpp", "hf"), ("cpp_sharded", "hf_sharded")):
        ours, theirs = os.path.join(work, ours), os.path.join(work, theirs)
        if sorted(os.listdir(ours)) != sorted(os.listdir(theirs)):
            fail(f"{ours} holds {sorted(os.listdir(ours))}, transformers wrote {sorted(os.listdir(theirs))}")
        for f in sorted(os.listdir(theirs)):
            if open(os.path.join(ours, f), "rb").read() != open(os.path.join(theirs, f), "rb").read():
                fail(f"{ours}/{f} is not byte for byte the file transformers wrote ({theirs}/{f})")
        print("the same files as transformers'", ours)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("make", "check"):
        fail("usage: gpt2_hf_reference.py make|check <work dir>")
    {"make": make, "check": check}[sys.argv[1]](sys.argv[2])
