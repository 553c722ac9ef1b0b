#!/usr/bin/env python3
"""Record transformers' own greedy and beam search on logits from a fixed table, for trainpp's generation tests.

The model is a T5ForConditionalGeneration whose encoder and forward are replaced: the encoder output of
an example is its first source token (the example's index), and the logits of the decoder token at
position p are table[example][p][token]. transformers.generate then runs its real search (greedy, or
_beam_search with its top-k, length penalty, early-stopping heuristics and padding) on those logits.
The C++ test feeds the same table to trainpp::generate and compares the sequences token for token.

The cache is off (use_cache=False) so that every step passes the whole decoder prefix and positions are
known; pad_token_id is not 0, where transformers' beam search fills with eos instead (`pad or eos`).

Usage: python tools/reference/gen_generation_reference.py [output.json]
(default: tests/data/generation/reference.json next to this repository's tools/)
"""

import json
import sys
from pathlib import Path

import torch
import transformers
from transformers import T5Config, T5ForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput

EXAMPLES, VOCAB, POSITIONS = 4, 6, 12
START, EOS, PAD = 0, 1, 5


class TableEncoder(torch.nn.Module):
    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        return BaseModelOutput(last_hidden_state=input_ids[:, :1].to(torch.float64).unsqueeze(-1))


class TableModel(T5ForConditionalGeneration):
    """A T5 shell whose encoder and forward read the table."""

    def attach(self, table):
        self.table = table
        self.table_encoder = TableEncoder()
        return self

    def get_encoder(self, *args, **kwargs):
        return self.table_encoder

    def forward(self, decoder_input_ids=None, encoder_outputs=None, **kwargs):
        example = encoder_outputs[0][:, 0, 0].to(torch.int64)
        steps = [self.table[example, torch.full_like(example, p), decoder_input_ids[:, p]]
                 for p in range(decoder_input_ids.shape[1])]
        return Seq2SeqLMOutput(logits=torch.stack(steps, 1))


def main():
    out_path = Path(sys.argv[1]) if len(sys.argv) > 1 else \
        Path(__file__).resolve().parents[2] / "tests" / "data" / "generation" / "reference.json"
    torch.manual_seed(2024)
    table = torch.randn(EXAMPLES, POSITIONS, VOCAB, VOCAB, dtype=torch.float64) * 1.5
    # Make the end token likelier further on, so that hypotheses end at different lengths.
    table[..., EOS] += torch.linspace(-1.5, 2.5, POSITIONS, dtype=torch.float64)[None, :, None]
    config = T5Config(vocab_size=VOCAB, d_model=4, d_kv=2, d_ff=4, num_layers=1, num_heads=2,
                      decoder_start_token_id=START, eos_token_id=EOS, pad_token_id=PAD)
    model = TableModel(config).attach(table).eval()
    input_ids = torch.arange(EXAMPLES).unsqueeze(1)

    cases = []
    settings = [dict(num_beams=1, max_length=10), dict(num_beams=1, max_new_tokens=6),
                dict(num_beams=1, max_length=10, min_length=5)]
    for num_beams in (2, 3, 4):
        for length_penalty in (1.0, 0.0, 2.0, -0.5):
            for early_stopping in (False, True, "never"):
                settings.append(dict(num_beams=num_beams, length_penalty=length_penalty,
                                     early_stopping=early_stopping, max_length=10))
    settings += [dict(num_beams=3, max_new_tokens=4), dict(num_beams=2, max_length=10, min_length=6),
                 dict(num_beams=4, max_length=11, early_stopping="never", length_penalty=1.5)]
    for s in settings:
        with torch.no_grad():
            sequences = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                       do_sample=False, use_cache=False, **s)
        cases.append({"settings": s, "sequences": sequences.tolist()})

    out = {
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "decoder_start_token_id": START, "eos_token_id": EOS, "pad_token_id": PAD,
        "table": table.tolist(),
        "cases": cases,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out) + "\n")
    print(f"wrote {len(cases)} cases to {out_path}")

    # A generation_config.json as save_pretrained writes it (every key, unset ones null), for the loader's test.
    config_dir = out_path.parent / "saved_generation_config"
    transformers.GenerationConfig(num_beams=4, early_stopping="never", length_penalty=0.6, max_new_tokens=32,
                                  decoder_start_token_id=0, eos_token_id=[1], pad_token_id=0,
                                  no_repeat_ngram_size=0, repetition_penalty=1.0).save_pretrained(config_dir)
    text = (config_dir / "generation_config.json").read_text()
    full = json.loads(transformers.GenerationConfig.from_pretrained(config_dir)
                      .to_json_string(use_diff=False))
    (config_dir / "generation_config_full.json").write_text(json.dumps(full, indent=2) + "\n")
    print(f"wrote {config_dir}: {len(json.loads(text))} keys saved, {len(full)} in the full form")


if __name__ == "__main__":
    main()
