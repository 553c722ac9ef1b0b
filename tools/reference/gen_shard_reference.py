"""Writes tests/data/distributed/shard_reference.json: the batches each process takes under
accelerate's BatchSamplerShard (split_batches=False; even_batches True as HF's Trainer shards its
training data, and False as trainpp shards evaluation data), over a SequentialSampler so that batches hold positions into the epoch's order.
tests/trainpp/data/shard_test.cpp compares trainpp::shard_batch_positions with it.

  .venv/bin/python tools/reference/gen_shard_reference.py
"""

import json
import pathlib

import accelerate
from accelerate.data_loader import BatchSamplerShard
from torch.utils.data import BatchSampler, SequentialSampler

CASES = [
    # (num_samples, batch_size, processes, drop_last)
    (24, 4, 2, False), (25, 4, 2, False), (27, 4, 2, False), (29, 4, 2, False), (21, 4, 4, False),
    (22, 4, 4, False), (17, 3, 4, False), (5, 4, 2, False), (3, 4, 4, False), (1, 2, 4, False),
    (10, 1, 3, False), (24, 4, 2, True), (25, 4, 2, True), (21, 4, 4, True), (3, 4, 4, True),
    (100, 8, 3, False), (100, 8, 3, True), (0, 4, 2, False), (7, 7, 2, False), (14, 7, 2, False),
]


def main():
    out = {"accelerate": accelerate.__version__, "cases": []}
    for even in (True, False):
        for n, batch_size, processes, drop_last in CASES:
            sampler = BatchSampler(SequentialSampler(range(n)), batch_size, drop_last)
            shards = [list(BatchSamplerShard(sampler, processes, rank, split_batches=False, even_batches=even))
                      for rank in range(processes)]
            out["cases"].append({"num_samples": n, "batch_size": batch_size, "processes": processes,
                                 "drop_last": drop_last, "even_batches": even, "batches": shards})
    path = pathlib.Path(__file__).resolve().parents[2] / "tests/data/distributed/shard_reference.json"
    path.write_text(json.dumps(out) + "\n")
    print(f"wrote {path} ({len(out['cases'])} cases)")


if __name__ == "__main__":
    main()
