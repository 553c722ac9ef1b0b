"""Write the benchmark's shared inputs: initial weights and training data for every workload.

For each workload (mlp, cnn, encoder) it writes, as bench/README.md specifies:
  <out>/<workload>_init.safetensors  the model's state dict right after torch.manual_seed(0)
  <out>/<workload>_data.safetensors  train_x, train_y (and test_x, test_y for cnn), rows already in
                                     the order batches are taken

Run it with the project's Python:
  .venv/bin/python bench/make_inputs.py [--out DIR] [--force] [--fashion_mnist DIR]
DIR defaults to bench/results/inputs. Files that already exist are kept unless --force is given, so
every contestant of every run starts from the same bytes.
"""

import argparse
import gzip
import os
import struct
import sys

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import WORKLOADS, build_model  # noqa: E402

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(BENCH_DIR, "results", "inputs")
# Debian's dataset-fashion-mnist package installs the idx files here.
DEFAULT_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"

# The synthetic data has its own generator, seeded apart from the weights' global RNG, so the data
# does not replay the random stream the initial weights were drawn from.
DATA_SEED = 1
SHUFFLE_SEED = 0  # the one shuffle of the Fashion-MNIST training set
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530

IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


def read_idx(path, expected_magic):
    """An idx file (optionally gzip'd) as a numpy uint8 array of the shape its header gives."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != expected_magic:
        raise ValueError(f"{path}: magic {magic:#010x}, expected {expected_magic:#010x}")
    ndim = magic & 0xFF
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = raw[4 + 4 * ndim :]
    if len(body) != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape} ({int(np.prod(shape))} bytes), body has {len(body)}")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def find_idx(directory, stem):
    """The path of `stem` in `directory`, gzip'd or not."""
    for name in (stem + ".gz", stem):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"no {stem}[.gz] in {directory}")


def fashion_split(directory, prefix):
    images = read_idx(find_idx(directory, f"{prefix}-images-idx3-ubyte"), IDX_IMAGES_MAGIC)
    labels = read_idx(find_idx(directory, f"{prefix}-labels-idx1-ubyte"), IDX_LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{prefix}: {images.shape[0]} images but {labels.shape[0]} labels")
    pixels = torch.from_numpy(images.astype(np.float32)).unsqueeze(1)  # [N, 1, 28, 28]
    pixels = (pixels / 255.0 - FASHION_MEAN) / FASHION_STD
    return pixels, torch.from_numpy(labels.astype(np.int64))


def cnn_data(fashion_dir):
    train_x, train_y = fashion_split(fashion_dir, "train")
    test_x, test_y = fashion_split(fashion_dir, "t10k")
    order = torch.randperm(train_x.shape[0], generator=torch.Generator().manual_seed(SHUFFLE_SEED))
    return {"train_x": train_x[order], "train_y": train_y[order], "test_x": test_x, "test_y": test_y}


def mlp_data():
    generator = torch.Generator().manual_seed(DATA_SEED)
    train_x = torch.randn(8192, 64, generator=generator)
    teacher = torch.randn(64, 10, generator=generator)
    return {"train_x": train_x, "train_y": (train_x @ teacher).argmax(dim=1)}


def encoder_data():
    generator = torch.Generator().manual_seed(DATA_SEED)
    tokens = torch.randint(0, 1024, (4096, 64), generator=generator, dtype=torch.int64)
    below_half = (tokens < 512).sum(dim=1)
    return {"train_x": tokens, "train_y": (below_half > tokens.shape[1] // 2).to(torch.int64)}


def initial_weights(workload):
    torch.manual_seed(0)
    return build_model(workload).state_dict()


def write(path, tensors):
    # safetensors refuses views; clone so every tensor owns exactly its own contiguous storage.
    save_file({name: t.detach().contiguous().clone() for name, t in tensors.items()}, path)
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder to write into (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="rewrite files that already exist")
    parser.add_argument("--fashion_mnist", default=DEFAULT_FASHION_MNIST,
                        help="folder with the Fashion-MNIST idx files (default: %(default)s)")
    args = parser.parse_args()

    os.makedirs(args.out, exist_ok=True)
    data_makers = {"mlp": mlp_data, "cnn": lambda: cnn_data(args.fashion_mnist), "encoder": encoder_data}
    for workload in WORKLOADS:
        init_path = os.path.join(args.out, f"{workload}_init.safetensors")
        data_path = os.path.join(args.out, f"{workload}_data.safetensors")
        if args.force or not os.path.exists(init_path):
            write(init_path, initial_weights(workload))
        if args.force or not os.path.exists(data_path):
            write(data_path, data_makers[workload]())


if __name__ == "__main__":
    main()
