"""Writes tiny randomly initialised transformers models and their outputs, for trainpp's Llama and
BERT modules to reproduce (tests/trainpp/models/*_test.cpp).

usage: models_hf_reference.py OUT_DIR FAMILY   (FAMILY: llama or bert)

For each variant, OUT_DIR/<variant>/ holds what save_pretrained writes (config.json and a float32
model.safetensors, tied weights left out) and reference.safetensors: the inputs (input_ids,
attention_mask, token_type_ids where the model takes them, labels), the logits and the loss of the
model in eval mode, plus further losses where the head has several (BERT's problem types).
OUT_DIR/complete is written last. Exit code 77 when transformers or safetensors cannot be imported (the test reports a skip).
"""
import os
import sys

try:
    import torch
    from safetensors.torch import save_file
    from transformers import (BertConfig, BertForMaskedLM, BertForSequenceClassification, LlamaConfig,
                              LlamaForCausalLM)
except ImportError as e:
    print(f"cannot import {e.name}; skipping the comparison with transformers", file=sys.stderr)
    sys.exit(77)

VOCAB, HIDDEN, LAYERS, BATCH, LENGTH = 128, 32, 2, 3, 10


def randomise(model):
    # HF's initialisation leaves biases at zero and norms at one, where a mix-up of those tensors would
    # go unnoticed: every parameter gets random values instead.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * (0.3 if p.dim() == 1 else 0.05))


def inputs(generator):
    input_ids = torch.randint(1, VOCAB, (BATCH, LENGTH), generator=generator)
    attention_mask = torch.ones(BATCH, LENGTH, dtype=torch.long)
    attention_mask[1, -3:] = 0  # right padding
    attention_mask[2, :4] = 0   # left padding
    input_ids[attention_mask == 0] = 0
    return input_ids, attention_mask


def save(model, out_dir, name, tensors):
    directory = os.path.join(out_dir, name)
    model.save_pretrained(directory, safe_serialization=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(directory, "reference.safetensors"))


def llama(out_dir, name, seed, **config):
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=64,
                                         num_hidden_layers=LAYERS, num_attention_heads=4,
                                         max_position_embeddings=64, **config)).eval()
    randomise(model)
    input_ids, attention_mask = inputs(torch.Generator().manual_seed(seed + 1))
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        unpadded = model(input_ids=input_ids[:1], labels=input_ids[:1])  # causal attention without a mask
    save(model, out_dir, name, {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
                                "logits": out.logits.float(), "loss": out.loss.float().reshape(1),
                                "unpadded_logits": unpadded.logits.float(),
                                "unpadded_loss": unpadded.loss.float().reshape(1)})


def bert_classifier(out_dir, name, seed, num_labels):
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, num_labels=num_labels)
    model = BertForSequenceClassification(config).eval()
    randomise(model)
    generator = torch.Generator().manual_seed(seed + 1)
    input_ids, attention_mask = inputs(generator)
    attention_mask[2] = 1  # BERT pads on the right only
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, 6:] = 1
    tensors = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
    batch = dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
    with torch.no_grad():
        tensors["logits"] = model(**batch).logits
        if num_labels == 1:
            tensors["labels"] = torch.randn(BATCH, generator=generator)
            tensors["loss"] = model(**batch, labels=tensors["labels"]).loss.reshape(1)
        else:
            # The problem type follows the labels' dtype; HF remembers it in the config after a call.
            tensors["labels"] = torch.randint(0, num_labels, (BATCH,), generator=generator)
            model.config.problem_type = None
            tensors["loss"] = model(**batch, labels=tensors["labels"]).loss.reshape(1)
            tensors["multi_labels"] = (torch.rand(BATCH, num_labels, generator=generator) > 0.5).float()
            model.config.problem_type = None
            tensors["multi_label_loss"] = model(**batch, labels=tensors["multi_labels"]).loss.reshape(1)
            model.config.problem_type = None
    save(model, out_dir, name, tensors)


def bert_masked_lm(out_dir, name, seed):
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, hidden_act="gelu")
    model = BertForMaskedLM(config).eval()
    randomise(model)
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight, "decoder not tied"
    generator = torch.Generator().manual_seed(seed + 1)
    input_ids, attention_mask = inputs(generator)
    attention_mask[2] = 1
    labels = torch.full_like(input_ids, -100)
    labels[:, 2:5] = input_ids[:, 2:5]
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    save(model, out_dir, name, {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
                                "logits": out.logits, "loss": out.loss.reshape(1)})


def main():
    out_dir, family = sys.argv[1], sys.argv[2]
    if family == "llama":
        write_llama(out_dir)
    elif family == "bert":
        write_bert(out_dir)
    else:
        sys.exit(f"unknown family {family!r} (llama or bert)")
    with open(os.path.join(out_dir, "complete"), "w"):
        pass


def write_llama(out_dir):
    # Grouped-query attention (2 key/value heads for 4 query heads), Llama 3.1's frequency scaling with
    # a pretraining context and base chosen so that each of its three frequency bands holds one of the
    # four frequencies (wavelengths 6.3 < 8, 8 <= 19.9 <= 32, and 62.8, 199 > 32), an untied head.
    llama(out_dir, "llama_gqa_llama3", 10, num_key_value_heads=2,
          rope_scaling={"rope_type": "llama3", "rope_theta": 100.0, "factor": 8.0, "low_freq_factor": 1.0,
                        "high_freq_factor": 4.0, "original_max_position_embeddings": 32})
    # The head tied to the embedding, linear frequency scaling.
    llama(out_dir, "llama_tied_linear", 20, tie_word_embeddings=True,
          rope_scaling={"rope_type": "linear", "factor": 2.0})
    # Biased projections (q/k/v as Qwen2's, o and the MLP too), one key/value head, an explicit head_dim.
    llama(out_dir, "llama_bias", 30, num_key_value_heads=1, attention_bias=True, mlp_bias=True, head_dim=16)


def write_bert(out_dir):
    bert_classifier(out_dir, "bert_classifier", 40, num_labels=3)
    bert_classifier(out_dir, "bert_regression", 50, num_labels=1)
    bert_masked_lm(out_dir, "bert_masked_lm", 60)


if __name__ == "__main__":
    main()
