"""transformers' LabelSmoother on the inputs tests/trainpp/loss/label_smoothing_test.cpp writes:

    label_smoothing_hf.py <inputs.json> <outputs.json>      exit 77 when transformers cannot be imported

Each case of inputs.json holds logits (nested lists), labels, epsilon, shift_labels and an optional
num_items_in_batch; outputs.json holds HF's loss for each, in float64.
"""

import json
import sys

try:
    import torch
    from transformers.trainer_pt_utils import LabelSmoother
except ImportError as e:
    print(f"cannot import: {e}", file=sys.stderr)
    sys.exit(77)

cases = json.load(open(sys.argv[1]))
out = []
for case in cases:
    logits = torch.tensor(case["logits"], dtype=torch.float32)
    labels = torch.tensor(case["labels"], dtype=torch.int64)
    smoother = LabelSmoother(epsilon=case["epsilon"])
    loss = smoother({"logits": logits}, labels, shift_labels=case["shift_labels"],
                    num_items_in_batch=case.get("num_items_in_batch"))
    out.append(float(loss))
json.dump(out, open(sys.argv[2], "w"))
