#!/usr/bin/env python3
"""Writes tests/data/io/corrupt/: small safetensors files, each broken in one way, and expected.json
mapping every file name to a phrase that trainpp's error message for it must contain (besides the file
name). tests/trainpp/io/safetensors_test.cpp loads each one and checks both.

Run from anywhere: python3 tools/reference/gen_corrupt_safetensors.py
Plain Python, no dependencies; the output is deterministic. If the `safetensors` package is importable,
it also reports which files the reference reader accepts (it is more lenient on a few: extra keys, and
it has no F4 support to compare against), as a sanity check of the corpus.
"""
import json
import shutil
import struct
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "io" / "corrupt"

CASES = {}  # file name -> (bytes, expected phrase)


def case(name, data, phrase):
    assert name not in CASES
    CASES[name + ".safetensors"] = (data, phrase)


def file(header, buffer=b"", pad=True):
    """A file with the given header text (str or bytes) and data buffer; N counts the padding."""
    h = header.encode() if isinstance(header, str) else header
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + buffer


def entry(dtype="F32", shape=(1,), offsets=(0, 4)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


def header(**tensors):
    return json.dumps(tensors, separators=(",", ":"))


F4 = bytes(4)

# --- sizes -------------------------------------------------------------------------------------
case("empty", b"", "fewer than the 8-byte header size")
case("too_short", b"\x08\x00\x00\x00\x00", "fewer than the 8-byte header size")
case("header_over_limit", struct.pack("<Q", 100_000_001) + b"{}      ", "exceeds the limit")
case("header_size_max_u64", struct.pack("<Q", 2**64 - 1) + b"{}      ", "exceeds the limit")
case("header_past_end", struct.pack("<Q", 64) + b'{"a":{}}', "runs past the end of the file")

# --- the JSON itself ---------------------------------------------------------------------------
case("header_empty", struct.pack("<Q", 0), "not valid UTF-8 JSON")
case("header_not_json", file('{"a": {"dtype": "F32",'), "not valid UTF-8 JSON")
case("header_not_utf8", file(b'{"\xff\xfe":' + header(a=entry()).encode()[5:-1] + b"}", F4), "not valid UTF-8 JSON")
case("header_nul_bytes", file(header(a=entry()).encode() + b"\x00" * 4, F4, pad=False), "not valid UTF-8 JSON")
case("header_not_object", file("[1, 2]"), "expected a JSON object")
case("header_string", file('"hello"'), "expected a JSON object")
case("header_too_deep", file('{"a": {"shape": [[[1]]]}}'), "nested deeper")
case("header_huge_array", file('{"a": {"dtype": "F32", "shape": [' + ",".join(["1"] * 2000) + '], "data_offsets": [0, 4]}}', F4),
     "more than 1024 elements")

# --- entries -----------------------------------------------------------------------------------
case("entry_not_object", file('{"a": 5}'), "expected an object")
case("entry_array", file('{"a": ["F32", [1], [0, 4]]}', F4), "expected an object")
case("missing_dtype", file('{"a": {"shape": [1], "data_offsets": [0, 4]}}', F4), 'missing key "dtype"')
case("missing_shape", file('{"a": {"dtype": "F32", "data_offsets": [0, 4]}}', F4), 'missing key "shape"')
case("missing_offsets", file('{"a": {"dtype": "F32", "shape": [1]}}', F4), 'missing key "data_offsets"')
case("extra_key", file('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": 1}}', F4), 'unexpected key "x"')
case("dtype_not_string", file('{"a": {"dtype": 7, "shape": [1], "data_offsets": [0, 4]}}', F4), '"dtype" must be a string')
case("dtype_unknown", file(header(a=entry(dtype="F33")), F4), 'unknown dtype "F33"')
case("dtype_lowercase", file(header(a=entry(dtype="f32")), F4), 'unknown dtype "f32"')
case("dtype_unsupported_f4", file(header(a=entry(dtype="F4", shape=(2,), offsets=(0, 1))), b"\x00"), "unsupported dtype F4")
case("shape_not_array", file('{"a": {"dtype": "F32", "shape": 1, "data_offsets": [0, 4]}}', F4), '"shape" must be an array')
case("shape_negative", file(header(a=entry(shape=(-1,))), F4), '"shape" must be an array')
case("shape_fraction", file('{"a": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}}', F4), '"shape" must be an array')
case("shape_string", file('{"a": {"dtype": "F32", "shape": ["1"], "data_offsets": [0, 4]}}', F4), '"shape" must be an array')
case("shape_over_u64", file('{"a": {"dtype": "U8", "shape": [18446744073709551616], "data_offsets": [0, 0]}}'),
     '"shape" must be an array')
case("offsets_not_array", file('{"a": {"dtype": "F32", "shape": [1], "data_offsets": 4}}', F4), '"data_offsets" must be two')
case("offsets_one", file(header(a=entry(offsets=(4,))), F4), '"data_offsets" must be two')
case("offsets_three", file(header(a=entry(offsets=(0, 4, 4))), F4), '"data_offsets" must be two')
case("offsets_negative", file(header(a=entry(offsets=(-4, 0))), F4), '"data_offsets" must be two')
case("offsets_begin_after_end", file(header(a=entry(offsets=(4, 0))), F4), "begin after end")

# --- sizes against shapes ----------------------------------------------------------------------
case("size_too_small", file(header(a=entry(shape=(2,), offsets=(0, 4))), F4), "needs 8 bytes")
case("size_too_large", file(header(a=entry(shape=(1,), offsets=(0, 8))), F4 + F4), "needs 4 bytes")
case("numel_overflow", file(header(a=entry(shape=(2**32, 2**32, 2**32), offsets=(0, 0)))), "too many elements")
case("numel_overflow_ends_zero", file(header(a=entry(shape=(2**32, 2**32, 0), offsets=(0, 0)))), "too many elements")
case("numel_over_int64", file(header(a=entry(dtype="U8", shape=(2**63,), offsets=(0, 0)))), "too many elements")
case("bytes_overflow", file(header(a=entry(dtype="F64", shape=(2**62,), offsets=(0, 0)))), "too large")

# --- the buffer --------------------------------------------------------------------------------
case("offsets_not_from_zero", file(header(a=entry(offsets=(4, 8))), F4 + F4), "leaving a gap after byte 0")
case("offsets_gap", file(header(a=entry(), b=entry(offsets=(8, 12))), F4 * 3), "leaving a gap after byte 4")
case("offsets_overlap", file(header(a=entry(shape=(2,), offsets=(0, 8)), b=entry(shape=(2,), offsets=(4, 12))), F4 * 3),
     "overlaps")
case("offsets_same_range", file(header(a=entry(), b=entry()), F4), "overlaps")
case("offsets_past_buffer", file(header(a=entry(shape=(2,), offsets=(0, 8))), F4), "past the data buffer")
case("buffer_trailing_bytes", file(header(a=entry()), F4 + F4), "the tensors cover 4 bytes but the data buffer holds 8")
case("buffer_without_tensors", file("{}", F4), "the tensors cover 0 bytes but the data buffer holds 4")

# --- names and metadata ------------------------------------------------------------------------
case("duplicate_name", file('{"a": ' + json.dumps(entry()) + ', "a": ' + json.dumps(entry(offsets=(4, 8))) + "}", F4 + F4),
     'duplicate key "a"')
case("duplicate_field", file('{"a": {"dtype": "F32", "dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', F4),
     'duplicate key "dtype"')
case("duplicate_metadata", file('{"__metadata__": {"format": "pt"}, "__metadata__": {}}'), 'duplicate key "__metadata__"')
case("metadata_not_object", file('{"__metadata__": "pt"}'), '"__metadata__" must be an object')
case("metadata_value_not_string", file('{"__metadata__": {"format": 1}}'), 'value of "format" must be a string')
case("metadata_value_object", file('{"__metadata__": {"format": {"x": "y"}}}'), 'value of "format" must be a string')


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    for name, (data, _) in CASES.items():
        (OUT / name).write_bytes(data)
    (OUT / "expected.json").write_text(json.dumps({k: v[1] for k, v in CASES.items()}, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(CASES)} files to {OUT}")
    try:
        from safetensors import deserialize
    except ImportError:
        return
    for name, (data, _) in CASES.items():
        try:
            deserialize(data)
            print(f"  note: the reference reader accepts {name}")
        except Exception:  # noqa: BLE001 - any rejection is what we want to see
            pass


if __name__ == "__main__":
    main()
