#!/usr/bin/env python3
"""Trains small tokenizers with the `tokenizers` library on a generated corpus and writes, for each,
its tokenizer.json and what the library makes of a generated test corpus, for tokenizer_test.cpp.

    tokenizers_reference.py <out_dir> [--lines N] [--only gpt2,bert,llama,unigram]

Nothing is downloaded: both corpora come from a seeded generator. The test lines are bytes, some of
them not UTF-8; the library sees each as Python's bytes.decode("utf-8", errors="replace") gives it,
and so must the C++ side. Exit status 77: the `tokenizers` module is missing.

<out_dir>/<name>/tokenizer.json and <out_dir>/<name>/<case>.bin, a case being records of
  u32 flags (1: has a pair, 2: encoded without special tokens), the text (u32 length, bytes), the pair (same, when flagged), the encoding,
  the decode of its ids (u32 length, bytes)
where an encoding is u32 n, then n ids, n type ids, n (start, end) offsets, n attention-mask values,
n special-tokens-mask values (all u32), then u32 k and k encodings (the overflowing windows).
"""

from __future__ import annotations

import json
import random
import struct
import sys
from pathlib import Path

try:
    import tokenizers
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
except ImportError:
    sys.exit(77)

WORDS = ("the of and to in is was for on that with as by at from it this be are or an which have not "
         "tokenizer model training data language learning network deep neural vector gradient batch "
         "epoch loss optimizer weight layer attention transformer encoder decoder sequence token embedding "
         "don't can't it's we're they've I'm you'll she'd Hello World Python Rust München naïve café").split()
ACCENTED = ["résumé", "façade", "jalapeño", "Ångström", "crème brûlée", "Zürich", "São Paulo", "İstanbul",
            "ŁÓDŹ", "Ελληνικά", "Русский язык", "español", "français", "e\u0301cole", "n\u0303", "ﬁ ligature",
            "Ⅻ", "①②③", "ｆｕｌｌｗｉｄｔｈ", "ß straße", "ǅ", "ΣΊΣΥΦΟΣ"]
CJK = ["中文分词", "日本語のテキスト", "한국어 문장", "漢字と仮名", "你好，世界！", "東京都", "北京大学", "カタカナ"]
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧", "🎉🎉", "❤️", "🇫🇷", "🚀", "✨", "🙂"]
CODE = ["def f(x):\n    return x ** 2", "for (int i = 0; i < n; ++i) { sum += a[i]; }", "if x != None and y >= 3:",
        "std::vector<int> v{1, 2, 3};", "SELECT * FROM users WHERE id = 42;", "let s = \"quoted\\tstring\";",
        "<div class=\"main\">text</div>", "#include <cstdio>", "x = {'a': [1, 2.5e-3], 'b': None}"]
SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", " \n ", "\t\t", "\r\n", "\u00a0", "\u3000", "\u2003", "\u0085", "      "]
SPECIALS = ["<|endoftext|>", "[SEP]", "[MASK]", "<s>", "</s>", "<mask>", "[CLS]"]
INVALID = [b"\xff", b"\xc3(", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf0\x9f\x98", b"\x80\x80", b"\xfe\xfe"]


def number(rng: random.Random) -> str:
    return rng.choice([str(rng.randint(0, 10**rng.randint(1, 9))), f"{rng.uniform(-1e4, 1e4):.3f}", "3.14159",
                       "1,000,000", "2024-01-05", "0x1F", "١٢٣", "٣.١٤"])


def piece(rng: random.Random, specials: bool) -> str:
    kind = rng.random()
    if kind < 0.45:
        return rng.choice(WORDS)
    if kind < 0.55:
        return rng.choice(ACCENTED)
    if kind < 0.62:
        return rng.choice(CJK)
    if kind < 0.67:
        return rng.choice(EMOJI)
    if kind < 0.73:
        return rng.choice(CODE)
    if kind < 0.83:
        return number(rng)
    if kind < 0.93:
        return rng.choice(",.;:!?()[]{}\"'-—–…/@#$%&*+=<>|\\~^`")
    if kind < 0.97 or not specials:
        # The training corpus draws from a narrower range: the test lines then hold characters the
        # vocabularies lack (unknown tokens, byte fallback).
        top = 0x2FFF if specials else 0x4FF
        return "".join(chr(rng.randint(0x21, top)) for _ in range(rng.randint(1, 3)))
    return rng.choice(SPECIALS)


def line(rng: random.Random, specials: bool) -> str:
    parts = []
    for _ in range(rng.randint(0, 14)):
        parts.append(piece(rng, specials))
        parts.append(rng.choice(SPACES) if rng.random() < 0.25 else ("" if rng.random() < 0.15 else " "))
    text = "".join(parts)
    if rng.random() < 0.05:
        text = rng.choice(SPACES) + text
    return text


def test_lines(n: int) -> list[bytes]:
    rng = random.Random(1234)
    out = []
    for i in range(n):
        data = line(rng, specials=True).encode("utf-8")
        if rng.random() < 0.03:  # bytes that are not UTF-8, somewhere in the line
            cut = rng.randint(0, len(data))
            data = data[:cut] + rng.choice(INVALID) + data[cut:]
        out.append(data)
    out[:6] = [b"", b" ", b"Hello world", b"  leading and trailing  ", b"\n\n\t", "[SEP] <s> x".encode()]
    return out


def train_lines(n: int) -> list[str]:
    rng = random.Random(99)
    return [line(rng, specials=False) for _ in range(n)]


def u32(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def encoding_bytes(e) -> bytes:
    n = len(e.ids)
    flat = [x for o in e.offsets for x in o]
    out = [u32(n), u32(*e.ids), u32(*e.type_ids), u32(*flat), u32(*e.attention_mask), u32(*e.special_tokens_mask),
           u32(len(e.overflowing))]
    out += [encoding_bytes(o) for o in e.overflowing]
    return b"".join(out)


def write_case(tok: Tokenizer, path: Path, inputs: list[tuple[bytes, bytes | None]], add_special_tokens: bool = True) -> None:
    texts = [a.decode("utf-8", errors="replace") for a, _ in inputs]
    pairs = [None if b is None else b.decode("utf-8", errors="replace") for _, b in inputs]
    if all(p is None for p in pairs):
        encodings = tok.encode_batch(texts, add_special_tokens=add_special_tokens)
    else:
        encodings = tok.encode_batch([t if p is None else (t, p) for t, p in zip(texts, pairs)],
                                     add_special_tokens=add_special_tokens)
    decodes = tok.decode_batch([e.ids for e in encodings])
    with open(path, "wb") as f:
        for (a, b), e, d in zip(inputs, encodings, decodes):
            flags = (0 if b is None else 1) | (0 if add_special_tokens else 2)
            f.write(u32(flags) + u32(len(a)) + a)
            if b is not None:
                f.write(u32(len(b)) + b)
            f.write(encoding_bytes(e))
            dd = d.encode("utf-8")
            f.write(u32(len(dd)) + dd)


def save(tok: Tokenizer, out: Path, name: str, lines: list[bytes]) -> Path:
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    tok.save(str(d / "tokenizer.json"))
    write_case(tok, d / "corpus.bin", [(x, None) for x in lines])
    return d


def gpt2(corpus: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(vocab_size=3000, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
    tok.add_tokens([AddedToken("tokenizer", single_word=True, normalized=False)])
    return tok


def bert(corpus: list[str]) -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=3000, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                                        show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok


def llama(corpus: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trainer = trainers.BpeTrainer(vocab_size=2500, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=200,
                                  show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    # Llama's vocabulary holds the 256 byte tokens as ordinary tokens, after the specials.
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    tok = Tokenizer.from_str(json.dumps(spec))
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B:1",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return tok


def unigram(corpus: list[str]) -> Tokenizer:
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Strip()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=3000, special_tokens=["<unk>", "<pad>"], unk_token="<unk>",
                                      show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    return tok


def main() -> None:
    out = Path(sys.argv[1])
    n = int(sys.argv[sys.argv.index("--lines") + 1]) if "--lines" in sys.argv else 50000
    only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None
    corpus = train_lines(20000)
    lines = test_lines(n)
    rng = random.Random(7)
    few = lines[:3000]
    for name, build in (("gpt2", gpt2), ("bert", bert), ("llama", llama), ("unigram", unigram)):
        if only and name not in only:
            continue
        tok = build(corpus)
        d = save(tok, out, name, lines)
        # Truncation with overflowing windows and padding, written into a second tokenizer.json as the
        # library saves them.
        if name in ("gpt2", "llama"):
            tok.enable_truncation(max_length=12, stride=3, direction="left" if name == "gpt2" else "right")
            tok.enable_padding(direction="left" if name == "gpt2" else "right", pad_id=0, pad_token="<pad>",
                               pad_to_multiple_of=8 if name == "llama" else None)
            (d / "truncated").mkdir(exist_ok=True)
            tok.save(str(d / "truncated" / "tokenizer.json"))
            write_case(tok, d / "truncated.bin", [(x, None) for x in few])
        if name in ("bert", "llama"):
            pairs = [(few[i], few[rng.randrange(len(few))]) for i in range(len(few))]
            tok.no_padding()
            tok.no_truncation()
            write_case(tok, d / "pairs.bin", pairs)
            write_case(tok, d / "pairs_plain.bin", pairs, add_special_tokens=False)
            tok.enable_truncation(max_length=20, stride=0, direction="right" if name == "bert" else "left")
            tok.enable_padding(length=24, pad_id=0, pad_token="[PAD]")
            (d / "pairs_truncated").mkdir(exist_ok=True)
            tok.save(str(d / "pairs_truncated" / "tokenizer.json"))
            write_case(tok, d / "pairs_truncated.bin", pairs)
    (out / "tokenizers_version").write_text(tokenizers.__version__)


if __name__ == "__main__":
    main()
