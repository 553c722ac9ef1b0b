"""Writes tiny randomly initialised GPT-2 and Llama models (save_pretrained), what transformers'
generate gives for them, and what transformers' logits processors make of fixed scores, for trainpp's
decoder-only generate and logits processors to reproduce (tests/trainpp/generation/*_test.cpp).

usage: causal_generate_hf_reference.py OUT_DIR

OUT_DIR/gpt2/ and OUT_DIR/llama/ hold the models; OUT_DIR/reference.json holds, per model, a batch of
two left-padded prompts of different lengths and the sequences model.generate returns for each case
(greedy, beam search, end tokens, repetition penalty), and the processed scores of each processor.
OUT_DIR/complete is written last. Exit code 77 when transformers cannot be imported (the test reports
a skip).
"""
import json
import os
import sys

try:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
    from transformers.generation.logits_process import (RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
                                                        TopKLogitsWarper, TopPLogitsWarper)
except ImportError as e:
    print(f"cannot import {e.name}; skipping the comparison with transformers", file=sys.stderr)
    sys.exit(77)

VOCAB = 96
PAD = 1  # not 0: transformers fills finished beams with eos when pad_token_id is 0


def randomise(model, scale):
    # Larger than the initialisation's weights, so that the next-token distributions are peaked and
    # differ from step to step (a tiny model at init predicts almost uniformly).
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * (0.3 if p.dim() == 1 else scale))


def prompts():
    generator = torch.Generator().manual_seed(7)
    input_ids = torch.randint(2, VOCAB, (2, 6), generator=generator)
    attention_mask = torch.ones(2, 6, dtype=torch.long)
    attention_mask[1, :2] = 0  # the second prompt is two tokens shorter: left padding
    input_ids[attention_mask == 0] = PAD
    return input_ids, attention_mask


def cases(model, input_ids, attention_mask):
    def run(**settings):
        with torch.no_grad():
            out = model.generate(input_ids=input_ids, attention_mask=attention_mask, pad_token_id=PAD,
                                 bos_token_id=None, **settings)
        return {"settings": dict(settings, pad_token_id=PAD), "sequences": out.tolist()}

    plain = run(max_new_tokens=10, do_sample=False, eos_token_id=None)
    # End tokens that greedy search meets: the third generated token of the first prompt, and the
    # fifth of the second one, so that the rows end at different steps.
    prompt_length = input_ids.shape[1]
    first_eos = plain["sequences"][0][prompt_length + 2]
    second_eos = plain["sequences"][1][prompt_length + 4]
    assert first_eos != second_eos, "pick other end tokens: the model repeats itself"
    out = [plain,
           run(max_new_tokens=10, do_sample=False, eos_token_id=first_eos),
           run(max_new_tokens=10, do_sample=False, eos_token_id=[second_eos, first_eos]),
           run(max_new_tokens=8, do_sample=False, eos_token_id=None, repetition_penalty=1.8),
           run(max_length=prompt_length + 7, do_sample=False, num_beams=3, eos_token_id=first_eos),
           run(max_new_tokens=7, do_sample=False, num_beams=4, num_return_sequences=3, eos_token_id=first_eos,
               length_penalty=0.6, early_stopping=True),
           run(max_new_tokens=7, do_sample=False, num_beams=3, num_return_sequences=2, eos_token_id=second_eos,
               length_penalty=1.4, early_stopping="never"),
           run(max_new_tokens=6, do_sample=False, num_beams=2, eos_token_id=None, repetition_penalty=1.5)]
    return out


def listed(scores):
    # JSON has no infinity: a filtered score (-inf) is written as null.
    return [[None if v == float("-inf") else v for v in row] for row in scores.tolist()]


def processors():
    generator = torch.Generator().manual_seed(11)
    scores = torch.randn(3, 40, generator=generator) * 3
    scores[0, 5] = scores[0, 7]  # a tie at the top-k boundary must stay in
    input_ids = torch.randint(0, 40, (3, 9), generator=generator)
    ignored_prefix = torch.tensor([0, 3, 9])
    out = {"scores": scores.tolist(), "input_ids": input_ids.tolist(), "ignored_prefix": ignored_prefix.tolist()}
    out["repetition_penalty_1.7"] = listed(RepetitionPenaltyLogitsProcessor(1.7)(input_ids, scores.clone()))
    out["repetition_penalty_0.6_ignored_prefix"] = listed(RepetitionPenaltyLogitsProcessor(
        0.6, prompt_ignore_length=ignored_prefix)(input_ids, scores.clone()))
    out["temperature_0.7"] = listed(TemperatureLogitsWarper(0.7)(input_ids, scores.clone()))
    order = scores[0].sort(descending=True).indices
    scores[0, order[5]] = scores[0, order[4]]  # a tie at the 5th place
    out["tie_scores"] = scores.tolist()
    out["top_k_5"] = listed(TopKLogitsWarper(5)(input_ids, scores.clone()))
    out["top_k_3_keep_4"] = listed(TopKLogitsWarper(3, min_tokens_to_keep=4)(input_ids, scores.clone()))
    out["top_p_0.8"] = listed(TopPLogitsWarper(0.8)(input_ids, scores.clone()))
    out["top_p_0.01_keep_2"] = listed(TopPLogitsWarper(0.01, min_tokens_to_keep=2)(input_ids, scores.clone()))
    return out


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    input_ids, attention_mask = prompts()
    reference = {"processors": processors()}

    def gpt2():
        return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                                          bos_token_id=0, eos_token_id=0, pad_token_id=PAD))

    def llama():
        return LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                                            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                            max_position_embeddings=64, bos_token_id=0, eos_token_id=0,
                                            pad_token_id=PAD))

    for name, make, seed, scale in (("gpt2", gpt2, 3, 0.3), ("llama", llama, 4, 0.15)):
        torch.manual_seed(seed)
        model = make().eval()
        randomise(model, scale)
        model.save_pretrained(os.path.join(out_dir, name), safe_serialization=True)
        with torch.no_grad():
            position_ids = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
            logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
        reference[name] = {"input_ids": input_ids.tolist(), "attention_mask": attention_mask.tolist(),
                           "last_logits": logits[:, -1].tolist(), "cases": cases(model, input_ids, attention_mask)}

    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(reference, f)
    open(os.path.join(out_dir, "complete"), "w").close()


if __name__ == "__main__":
    main(sys.argv[1])
