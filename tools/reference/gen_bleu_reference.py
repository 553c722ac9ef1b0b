#!/usr/bin/env python3
"""Record sacrebleu's corpus BLEU (its defaults) and 13a tokenization on fixed cases, for trainpp's text
metrics tests.

Each BLEU case is a list of hypotheses and, per hypothesis, its references (one or several; the number
may vary). sacrebleu takes reference *streams* (refs[k][i] is reference k of hypothesis i), so the lists
are transposed here, padding with None where a hypothesis has fewer references, which sacrebleu skips.
Recorded: score, precisions, bp, sys_len, ref_len, counts and totals of `sacrebleu.corpus_bleu` with no
options (tokenizer 13a, smoothing exp, 4-grams, no lowercasing). The tokenizer cases record the tokens
of sacrebleu's Tokenizer13a on single lines.

Usage: python tools/reference/gen_bleu_reference.py [output.json]
(default: tests/data/metrics/bleu_reference.json next to this repository's tools/)
Needs: pip install sacrebleu
"""

import json
import random
import sys
from pathlib import Path

import sacrebleu
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a


def bleu_case(name, hypotheses, references):
    assert len(hypotheses) == len(references)
    width = max(len(r) for r in references)
    streams = [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]
    s = sacrebleu.corpus_bleu(hypotheses, streams)
    return {"name": name, "hypotheses": hypotheses, "references": references,
            "score": s.score, "precisions": list(s.precisions), "bp": s.bp, "sys_len": s.sys_len,
            "ref_len": s.ref_len, "counts": list(s.counts), "totals": list(s.totals)}


def random_corpus(seed, n):
    """Sentences over a small vocabulary with punctuation and numbers, and noisy copies of them as
    hypotheses: many partial n-gram matches, repeated words, varying lengths."""
    rng = random.Random(seed)
    vocab = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "home", "quickly", "and", "then", "it",
             "rained", "3.5", "1,000", "e.g.", "(see", "below)", "well-known", "don't", "--", "$5", "50%"]
    hyps, refs = [], []
    for _ in range(n):
        ref = [rng.choice(vocab) for _ in range(rng.randint(1, 14))]
        hyp = [w for w in ref if rng.random() > 0.2]
        for _ in range(rng.randint(0, 3)):
            hyp.insert(rng.randint(0, len(hyp)), rng.choice(vocab))
        end = rng.choice(["", ".", "!", " ?", "..."])
        hyps.append(" ".join(hyp) + end)
        refs.append([" ".join(ref) + rng.choice(["", ".", "!"])])
    return hyps, refs


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else (
        Path(__file__).resolve().parents[2] / "tests/data/metrics/bleu_reference.json")

    rand_h, rand_r = random_corpus(0, 60)
    cases = [
        bleu_case("perfect_match",
                  ["The cat sat on the mat.", "It was a sunny day in the park today."],
                  [["The cat sat on the mat."], ["It was a sunny day in the park today."]]),
        bleu_case("punctuation",
                  ["Hello, world! (Isn't it \"great\"?) [yes]: {no}; a/b @home #1 $x %y ^z _w `q` ~t |p",
                   "Wait... what?! -- no way, right?"],
                  [["Hello world! (Isn't it great?) [yes]: {no}; a/b @home #1 $x %y ^z _w `q` ~t |p"],
                   ["Wait... what?! - no way, right ?"]]),
        bleu_case("numbers_with_commas_and_periods",
                  ["It costs 1,000.50 dollars, i.e. 3.5 per cent in 2020-2021.",
                   "Version 2.0, not 2. Call 555-1234."],
                  [["It costs 1,000.50 dollars, i.e. 3.5 percent in 2020-2021."],
                   ["Version 2.0 , not 2 . Call 555-1234 ."]]),
        bleu_case("zero_matches",
                  ["alpha beta gamma delta epsilon"],
                  [["one two three four five"]]),
        bleu_case("short_hypotheses_brevity_penalty",
                  ["the cat sat on", "a dog ran home quickly today"],
                  [["the cat sat on the mat and looked at the dog"], ["a dog ran home quickly today"]]),
        bleu_case("hypotheses_under_four_tokens",  # no 4-grams at all: precision 0, score 0
                  ["the cat", "sat on"],
                  [["the cat"], ["sat on"]]),
        bleu_case("multiple_references",
                  ["the cat is on the mat", "there is a cat on the mat"],
                  [["the cat is on the mat", "there is a cat on the mat"],
                   ["a cat is on the mat", "there is a cat sitting on the mat", "the mat has a cat"]]),
        bleu_case("variable_number_of_references",
                  ["he read the book because he was interested in world history",
                   "the quick brown fox", "jumps over the lazy dog"],
                  [["he was interested in world history because he read the book"],
                   ["the quick brown fox", "a quick brown fox", "the fast brown fox"],
                   ["jumps over the lazy dog", "leaps over the lazy dog"]]),
        bleu_case("closest_reference_length_tie",  # hyp 4 tokens, refs 2 and 6: the shorter wins
                  ["w x y z"],
                  [["w x y z q r", "w x"]]),
        bleu_case("clipped_repeats",
                  ["the the the the the the the", "on on on the mat mat"],
                  [["the cat is on the mat"], ["the cat is on the mat"]]),
        bleu_case("unicode",
                  ["Le café est très bon — n’est-ce pas ?", "日本語 の 文 です 。", "Ünïcödé «quotes» and emoji 🙂!"],
                  [["Le café est très bon — n'est-ce pas ?"], ["日本語 の 文 です 。"], ["Ünïcödé «quotes» and emoji 🙂 !"]]),
        bleu_case("unicode_whitespace",
                  ["a\u00a0b\u2003c d\u3000e f\tg\u200bh  ", "x y z w v \u2028"],
                  [["a b c d e f g\u200bh"], ["x y z w v"]]),
        bleu_case("html_entities_and_skipped",
                  ["AT&amp;T &lt;b&gt; &quot;bold&quot; <skipped> text &amp;lt; end",
                   "line one-\nbreak and\nnewline here"],
                  [["AT&T <b> \"bold\" text &lt; end"], ["line onebreak and newline here"]]),
        bleu_case("empty_hypothesis",
                  ["", "the cat sat on the mat today"],
                  [["nothing to see here"], ["the cat sat on the mat today"]]),
        bleu_case("all_hypotheses_empty",
                  ["", ""],
                  [["some words here"], ["more words"]]),
        bleu_case("random_corpus", rand_h, rand_r),
    ]

    tokenizer = Tokenizer13a()
    lines = [
        "Hello, world!", "It costs 1,000.50 dollars.", "3.14, 2.71. a.b,c", "e.g. U.S.A. ...", ",.5 .,",
        "2020-2021 well-known -5 a-1", "don't won't 'quoted'", "x&y &amp;amp; &quot;q&quot;", "a\u00a0b\u2009c",
        "tab\there", "café, naïve. 日本。", "<skipped>gone", "end with period.", "  spaces   around  ",
        "{}[]()<>|~^_`@#$%&*+=:;?!/\\\"", "1.2.3,4,5", "a.", ".a", "9.", ".9", "9,a", "a,9",
    ]
    tokenize = [{"line": line, "tokens": tokenizer(line).split()} for line in lines]

    data = {"sacrebleu_version": sacrebleu.__version__, "bleu_cases": cases, "tokenize_cases": tokenize}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out} ({out.stat().st_size} bytes, {len(cases)} BLEU cases, {len(tokenize)} tokenizer cases)")


if __name__ == "__main__":
    main()
