"""Writes what transformers' data collators and LengthGroupedSampler make of fixed inputs, for
tests/trainpp/data/collators_test.cpp and length_grouped_sampler_test.cpp to reproduce.

usage: collators_hf_reference.py OUT_DIR

OUT_DIR/collators.safetensors: the examples ("<set>.<i>.<key>") and each case's batch
("<case>.<key>"); OUT_DIR/reference.json: the cases (collator, set, options, output keys in order) and the
length-grouped orders (plain, sharded as accelerate shards them, and as a Trainer really visits them).
OUT_DIR/complete is written last. Exit code 77 when transformers, accelerate or safetensors cannot be
imported (the tests report a skip).
"""
import json
import os
import sys

try:
    import torch
    from accelerate.data_loader import BatchSamplerShard
    from safetensors.torch import save_file
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from torch.utils.data import BatchSampler
    from transformers import (DataCollatorForLanguageModeling, DataCollatorForSeq2Seq, DataCollatorWithPadding,
                              PreTrainedTokenizerFast, Trainer, TrainingArguments, default_data_collator)
    from transformers.trainer_pt_utils import LengthGroupedSampler
except ImportError as e:
    print(f"cannot import {e.name}; skipping the comparison with transformers", file=sys.stderr)
    sys.exit(77)

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = 100


def tokenizer(padding_side="right"):
    vocab = {t: i for i, t in enumerate(SPECIAL + [f"w{i}" for i in range(VOCAB - len(SPECIAL))])}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="[UNK]")), pad_token="[PAD]",
                                  unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    tok.padding_side = padding_side
    return tok


def sequence(g, length):
    # [CLS] words [SEP], the words never special
    return [2] + torch.randint(len(SPECIAL), VOCAB, (length - 2,), generator=g).tolist() + [3]


def example_sets():
    g = torch.Generator().manual_seed(1234)
    lengths = [3, 11, 7, 5, 9, 4]
    sets = {}
    sets["cls"] = [{"input_ids": sequence(g, n), "token_type_ids": [0] * (n // 2) + [1] * (n - n // 2),
                    "label": i % 3} for i, n in enumerate(lengths)]
    sets["cls_mask"] = [{"input_ids": sequence(g, n), "attention_mask": [1] * n, "label_ids": [i, i + 1]}
                        for i, n in enumerate(lengths)]
    sets["s2s"] = [{"input_ids": sequence(g, n), "attention_mask": [1] * n,
                    "labels": torch.randint(5, VOCAB, (2 + (i * 3) % 7,), generator=g).tolist()}
                   for i, n in enumerate(lengths)]
    sets["dense_int"] = [{"label": i % 2, "input_ids": sequence(g, 6), "pixel": [float(i), 0.5]} for i in range(5)]
    sets["dense_float"] = [{"label": 0.25 * i, "input_ids": sequence(g, 6)} for i in range(5)]
    sets["dense_ids"] = [{"label_ids": [i, 2 * i], "input_ids": sequence(g, 6)} for i in range(5)]
    # Language modelling: some examples end in [PAD] ids of their own, which causal LM labels ignore too.
    lm = []
    for i, n in enumerate([12, 30, 17, 25, 9, 30, 21, 14]):
        ids = sequence(g, n)
        if i % 3 == 0:
            ids[-2] = 0
        lm.append({"input_ids": ids})
    sets["lm"] = lm
    sets["lm_stm"] = [{"input_ids": e["input_ids"],
                       "special_tokens_mask": [1 if t < len(SPECIAL) else 0 for t in e["input_ids"]]} for e in lm]
    return sets


def collator_cases():
    right, left = tokenizer("right"), tokenizer("left")
    return [
        ("pad_right_longest", "cls", DataCollatorWithPadding(right), {"side": "right"}),
        ("pad_left_multiple", "cls", DataCollatorWithPadding(left, pad_to_multiple_of=8),
         {"side": "left", "pad_to_multiple_of": 8}),
        ("pad_max_length", "cls", DataCollatorWithPadding(right, padding="max_length", max_length=16),
         {"side": "right", "padding": "max_length", "max_length": 16}),
        ("pad_max_length_multiple", "cls_mask",
         DataCollatorWithPadding(left, padding="max_length", max_length=13, pad_to_multiple_of=8),
         {"side": "left", "padding": "max_length", "max_length": 13, "pad_to_multiple_of": 8}),
        ("seq2seq_right", "s2s", DataCollatorForSeq2Seq(right), {"side": "right"}),
        ("seq2seq_left_multiple", "s2s", DataCollatorForSeq2Seq(left, pad_to_multiple_of=4, label_pad_token_id=-1),
         {"side": "left", "pad_to_multiple_of": 4, "label_pad_token_id": -1}),
        ("seq2seq_max_length", "s2s", DataCollatorForSeq2Seq(right, padding="max_length", max_length=12),
         {"side": "right", "padding": "max_length", "max_length": 12}),
        ("default_int", "dense_int", default_data_collator, {}),
        ("default_float", "dense_float", default_data_collator, {}),
        ("default_label_ids", "dense_ids", default_data_collator, {}),
        ("clm", "lm", DataCollatorForLanguageModeling(right, mlm=False), {"side": "right"}),
        ("clm_left_multiple", "lm", DataCollatorForLanguageModeling(left, mlm=False, pad_to_multiple_of=8),
         {"side": "left", "pad_to_multiple_of": 8}),
        ("mlm_seeded_ids", "lm", DataCollatorForLanguageModeling(right, seed=7), {"side": "right", "seed": 7}),
        ("mlm_seeded_mask", "lm_stm", DataCollatorForLanguageModeling(left, seed=11, pad_to_multiple_of=8),
         {"side": "left", "seed": 11, "pad_to_multiple_of": 8}),
        ("mlm_seeded_probs", "lm", DataCollatorForLanguageModeling(right, seed=3, mlm_probability=0.4,
                                                                   mask_replace_prob=0.5, random_replace_prob=0.3),
         {"side": "right", "seed": 3, "mlm_probability": 0.4, "mask_replace_prob": 0.5, "random_replace_prob": 0.3}),
    ]


class IndexedLengths(torch.utils.data.Dataset):
    """Examples whose input_ids have the given lengths and whose `idx` says which example they are."""

    def __init__(self, lengths):
        self.lengths = lengths

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, i):
        return {"input_ids": [5] * self.lengths[i], "idx": i}


class Recorder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen = []

    def forward(self, input_ids=None, idx=None, attention_mask=None):
        self.seen += idx.tolist()
        return {"loss": (self.w * input_ids.float().mean()).sum()}


def trainer_order(out_dir, lengths, batch_size, accumulation, seed):
    """The order a Trainer with train_sampling_strategy group_by_length visits the examples in."""
    model = Recorder()
    args = TrainingArguments(output_dir=os.path.join(out_dir, "trainer"), per_device_train_batch_size=batch_size,
                             gradient_accumulation_steps=accumulation, num_train_epochs=1, seed=seed,
                             train_sampling_strategy="group_by_length", report_to=[], save_strategy="no",
                             logging_strategy="no", use_cpu=True, remove_unused_columns=False,
                             disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=IndexedLengths(lengths),
            data_collator=lambda f: {"input_ids": torch.tensor([[5] * max(len(e["input_ids"]) for e in f)] * len(f)),
                                     "idx": torch.tensor([e["idx"] for e in f])}).train()
    return model.seen


def length_grouped(out_dir):
    g = torch.Generator().manual_seed(99)
    cases = []
    for n in (1000, 37):
        lengths = torch.randint(1, 40, (n,), generator=g).tolist()  # many ties
        for seed in (42, 7):
            for batch_size in (4, 3):
                order = list(LengthGroupedSampler(batch_size, lengths=lengths,
                                                  generator=torch.Generator().manual_seed(seed)))
                # As the Trainer draws it: torch's DataLoader takes its base seed from the freshly seeded
                # global generator first; accelerate then shards the batches of that order.
                trainer_generator = torch.Generator().manual_seed(seed)
                torch.empty((), dtype=torch.int64).random_(generator=trainer_generator)
                sampler = LengthGroupedSampler(batch_size, lengths=lengths, generator=trainer_generator)
                shards = []
                for rank in range(2):
                    shard = BatchSamplerShard(BatchSampler(sampler, batch_size, drop_last=False), num_processes=2,
                                              process_index=rank, split_batches=False, even_batches=True)
                    trainer_generator.manual_seed(seed)
                    torch.empty((), dtype=torch.int64).random_(generator=trainer_generator)
                    shards.append([b for b in shard])
                cases.append({"lengths": lengths, "seed": seed, "batch_size": batch_size, "order": order,
                              "shards": shards})
    lengths = torch.randint(1, 40, (90,), generator=g).tolist()
    trainer = {"lengths": lengths, "batch_size": 3, "accumulation": 2, "seed": 5,
               "order": trainer_order(out_dir, lengths, 3, 2, 5)}
    return {"cases": cases, "trainer": trainer}


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    sets = example_sets()
    tensors, cases = {}, []
    for name, examples in sets.items():
        for i, example in enumerate(examples):
            for key, value in example.items():
                tensors[f"{name}.{i}.{key}"] = torch.tensor(value)
    for name, set_name, collator, options in collator_cases():
        batch = collator([dict(e) for e in sets[set_name]])
        for key, value in batch.items():
            tensors[f"{name}.{key}"] = value
        cases.append({"name": name, "set": set_name, "size": len(sets[set_name]), "options": options,
                      "keys": list(batch.keys())})
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out_dir, "collators.safetensors"))
    reference = {"collators": cases, "example_keys": {n: list(s[0].keys()) for n, s in sets.items()},
                 "length_grouped": length_grouped(out_dir)}
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(reference, f)
    open(os.path.join(out_dir, "complete"), "w").close()


if __name__ == "__main__":
    main(sys.argv[1])
