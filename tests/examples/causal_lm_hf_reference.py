"""Writes a randomly initialised transformers GPT2LMHeadModel and its outputs, for the causal_lm
example's GPT to reproduce.

usage: causal_lm_hf_reference.py OUT_DIR VOCAB_SIZE N_POSITIONS N_EMBD N_LAYER N_HEAD

OUT_DIR/weights.safetensors: the model's state dict under HF's names (the tied lm_head left out);
OUT_DIR/reference.safetensors: input_ids [2, N_POSITIONS], labels (the inputs, -100 on a few
positions), the logits and the loss HF computes from them, in eval mode.
Exit code 77 when transformers or safetensors cannot be imported (the test reports a skip).
"""
import os
import sys

try:
    import torch
    from safetensors.torch import save_file
    from transformers import GPT2Config, GPT2LMHeadModel
except ImportError as e:
    print(f"cannot import {e.name}; skipping the comparison with transformers", file=sys.stderr)
    sys.exit(77)


def main():
    out_dir = sys.argv[1]
    vocab_size, n_positions, n_embd, n_layer, n_head = (int(a) for a in sys.argv[2:7])
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                        n_head=n_head, bos_token_id=0, eos_token_id=0, attn_implementation="eager")
    model = GPT2LMHeadModel(config).eval()
    # HF's initialisation leaves biases at zero and LayerNorms at identity, where a mix-up of those
    # tensors would go unnoticed: every parameter gets random values instead.
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(torch.randn_like(p) * (0.3 if p.dim() == 1 else 0.05))
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr(), "lm_head is not tied"

    input_ids = torch.randint(0, vocab_size, (2, n_positions), generator=torch.Generator().manual_seed(1))
    labels = input_ids.clone()
    labels[0, 3:7] = -100
    labels[1, -2:] = -100
    with torch.no_grad():
        out = model(input_ids=input_ids, labels=labels)
    os.makedirs(out_dir, exist_ok=True)
    save_file(state, os.path.join(out_dir, "weights.safetensors"))
    save_file({"input_ids": input_ids, "labels": labels, "logits": out.logits.float().contiguous(),
               "loss": out.loss.float().reshape(1)}, os.path.join(out_dir, "reference.safetensors"))


if __name__ == "__main__":
    main()
