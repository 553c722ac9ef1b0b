#!/usr/bin/env python3
"""The Python side of trainpp's safetensors interoperability tests, using the reference implementation
(safetensors.torch). The tensors follow a recipe that tests/trainpp/io/safetensors_test.cpp and
model_io_test.cpp recompute in C++:

  write PATH          save the recipe tensors with safetensors.torch.save_file, metadata {"format": "pt"}
  verify PATH         load PATH with safetensors.torch.load_file and check it holds exactly the recipe
                      tensors (names, dtypes, shapes, bytes) and metadata {"format": "pt"}
  write-model PATH    save the state_dict of the recipe model (nn.Sequential(Linear(3, 4), BatchNorm1d(4)))
  verify-model PATH   load PATH into a fresh recipe model with load_state_dict(strict=True), check values

Exit status: 0 on success, 1 on a mismatch (printed), 2 on bad usage.
The recipe file is committed as tests/data/io/python_reference.safetensors:
    .venv/bin/python tools/reference/check_safetensors.py write tests/data/io/python_reference.safetensors

Recipe for flat element i of a tensor:
  BOOL             i % 3 == 0
  integers         v = (i * 0x9E3779B97F4A7C15 + 0x0123456789ABCDEF) mod 2**64, reduced mod 2**bits,
                   read as two's complement for signed types
  floats           (i % 17 - 8) / 4       (exact in every float type here, float8 included)
  C64              real as floats, imaginary (i % 5) - 2
"""
import sys

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

# name, safetensors dtype, shape. Names are chosen so that sorting by dtype and by name both matter.
CASES = [
    ("bool", "BOOL", [3, 2]),
    ("u8", "U8", [7]),
    ("u8_empty", "U8", [0]),
    ("i8", "I8", [2, 3]),
    ("i16", "I16", [4]),
    ("u16", "U16", [2, 2]),
    ("f16", "F16", [3]),
    ("bf16", "BF16", [2, 3]),
    ("i32", "I32", [5]),
    ("u32", "U32", [3]),
    ("a_f32", "F32", [2, 3, 4]),
    ("f32_scalar", "F32", []),
    ("f32_empty", "F32", [0, 3]),
    ("z_f32", "F32", [1]),
    ("f64", "F64", [3]),
    ("i64", "I64", [2, 2]),
    ("i64_scalar", "I64", []),
    ("u64", "U64", [3]),
    ("f8_e4m3", "F8_E4M3", [4]),
    ("f8_e5m2", "F8_E5M2", [4]),
    ("f8_e4m3fnuz", "F8_E4M3FNUZ", [3]),
    ("f8_e5m2fnuz", "F8_E5M2FNUZ", [3]),
    ("c64", "C64", [2]),
]

TORCH = {
    "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16, "U16": torch.uint16,
    "F16": torch.float16, "BF16": torch.bfloat16, "I32": torch.int32, "U32": torch.uint32,
    "F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "U64": torch.uint64,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
    "F8_E4M3FNUZ": torch.float8_e4m3fnuz, "F8_E5M2FNUZ": torch.float8_e5m2fnuz, "C64": torch.complex64,
}
INTS = {"U8": "<u1", "I8": "<i1", "I16": "<i2", "U16": "<u2", "I32": "<i4", "U32": "<u4", "I64": "<i8", "U64": "<u8"}


def int_values(n, np_dtype):
    bits = np.dtype(np_dtype).itemsize * 8
    signed = np.dtype(np_dtype).kind == "i"
    out = []
    for i in range(n):
        v = (i * 0x9E3779B97F4A7C15 + 0x0123456789ABCDEF) % 2**64 % 2**bits
        if signed and v >= 2 ** (bits - 1):
            v -= 2**bits
        out.append(v)
    return out


def recipe_tensor(dtype, shape):
    n = 1
    for d in shape:
        n *= d
    if dtype == "BOOL":
        flat = torch.tensor([i % 3 == 0 for i in range(n)], dtype=torch.bool)
    elif dtype in INTS:
        flat = torch.from_numpy(np.array(int_values(n, INTS[dtype]), dtype=INTS[dtype]))
    elif dtype == "C64":
        flat = torch.complex(torch.tensor([(i % 17 - 8) / 4 for i in range(n)], dtype=torch.float32),
                             torch.tensor([float(i % 5 - 2) for i in range(n)], dtype=torch.float32))
    else:
        flat = torch.tensor([(i % 17 - 8) / 4 for i in range(n)], dtype=torch.float32).to(TORCH[dtype])
    return flat.reshape(shape)


def recipe():
    return {name: recipe_tensor(dtype, shape) for name, dtype, shape in CASES}


def raw_bytes(t):
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""


def check_metadata(path, errors):
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata()
    if metadata != {"format": "pt"}:
        errors.append(f"metadata: {metadata!r} != {{'format': 'pt'}}")


def verify(path):
    errors = []
    got = load_file(path)
    want = recipe()
    if sorted(got) != sorted(want):
        errors.append(f"names: {sorted(got)} != {sorted(want)}")
    for name in sorted(set(got) & set(want)):
        g, w = got[name], want[name]
        if g.dtype != w.dtype:
            errors.append(f"{name}: dtype {g.dtype} != {w.dtype}")
        elif list(g.shape) != list(w.shape):
            errors.append(f"{name}: shape {list(g.shape)} != {list(w.shape)}")
        elif raw_bytes(g) != raw_bytes(w):
            errors.append(f"{name}: values differ: {g.reshape(-1)[:8]} vs {w.reshape(-1)[:8]}")
    check_metadata(path, errors)
    return errors


def recipe_model():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    # Every float parameter and buffer: a distinct ramp; the step counter: 7.
    with torch.no_grad():
        for k, (name, t) in enumerate(model.state_dict().items()):
            if t.is_floating_point():
                t.copy_(torch.arange(t.numel(), dtype=torch.float32).reshape(t.shape) * 0.5 - k)
            else:
                t.fill_(7)
    return model


def verify_model(path):
    errors = []
    want = recipe_model().state_dict()
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    try:
        model.load_state_dict(load_file(path), strict=True)
    except RuntimeError as e:
        return [f"load_state_dict(strict=True) failed: {e}"]
    for name, t in model.state_dict().items():
        if t.dtype != want[name].dtype or not torch.equal(t, want[name]):
            errors.append(f"{name}: {t} != {want[name]}")
    check_metadata(path, errors)
    return errors


def main(argv):
    if len(argv) != 3 or argv[1] not in ("write", "verify", "write-model", "verify-model"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, path = argv[1], argv[2]
    if mode == "write":
        save_file(recipe(), path, metadata={"format": "pt"})
        return 0
    if mode == "write-model":
        save_file(recipe_model().state_dict(), path, metadata={"format": "pt"})
        return 0
    errors = verify(path) if mode == "verify" else verify_model(path)
    for e in errors:
        print(f"check_safetensors.py {mode} {path}: {e}", file=sys.stderr)
    if not errors:
        print(f"check_safetensors.py {mode} {path}: OK")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
