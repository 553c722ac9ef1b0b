#!/usr/bin/env python3
"""Writes the small idx fixtures of tests/data/data/idx/: one directory per case, each holding a
train split (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz) that is valid or broken in one way.

Run from the repository root: python3 tools/reference/gen_idx_fixtures.py
The output is deterministic (gzip mtime 0), so rerunning changes nothing.
"""
import gzip
import shutil
import struct
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "tests" / "data" / "data" / "idx"
N, ROWS, COLS = 3, 28, 28
LABELS = [9, 0, 3]


def pixels(n=N):
    # A pattern every test can recompute: pixel (i, r, c) = (7*i + 3*r + c) % 256.
    return bytes((7 * i + 3 * r + c) % 256 for i in range(n) for r in range(ROWS) for c in range(COLS))


def images_idx(n_header=N, n_data=N, magic=2051, extra=b""):
    return struct.pack(">IIII", magic, n_header, ROWS, COLS) + pixels(n_data) + extra


def labels_idx(labels=LABELS, magic=2049):
    return struct.pack(">II", magic, len(labels)) + bytes(labels)


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


def write(case, images=None, labels=None, images_raw=None, labels_raw=None):
    d = OUT / case
    d.mkdir(parents=True, exist_ok=True)
    if images is not None:
        (d / "train-images-idx3-ubyte.gz").write_bytes(images)
    if labels is not None:
        (d / "train-labels-idx1-ubyte.gz").write_bytes(labels)
    if images_raw is not None:
        (d / "train-images-idx3-ubyte").write_bytes(images_raw)
    if labels_raw is not None:
        (d / "train-labels-idx1-ubyte").write_bytes(labels_raw)


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    good_images, good_labels = gz(images_idx()), gz(labels_idx())

    write("valid", good_images, good_labels)
    write("valid_uncompressed", images_raw=images_idx(), labels_raw=labels_idx())
    write("missing_labels", good_images)
    # The data is 10 bytes shorter than the header declares.
    write("truncated", gz(images_idx()[:-10]), good_labels)
    # The gzip stream itself is cut: the last 40 compressed bytes are gone.
    write("truncated_gzip", good_images[:-40], good_labels)
    # The header claims a million images; three follow.
    write("overclaiming_header", gz(images_idx(n_header=1_000_000)), good_labels)
    write("trailing_bytes", gz(images_idx(extra=b"\0\0\0\0")), good_labels)
    write("bad_magic", gz(images_idx(magic=2049)), good_labels)
    write("count_mismatch", good_images, gz(labels_idx(LABELS[:2])))
    write("bad_label", good_images, gz(labels_idx([9, 12, 3])))
    # A flipped bit in the gzip trailer's CRC-32: the data inflates but fails its check.
    bad_crc = bytearray(good_images)
    bad_crc[-8] ^= 0x01
    write("bad_crc", bytes(bad_crc), good_labels)
    # Garbage in the middle of the deflate stream.
    bad_deflate = bytearray(good_images)
    for k in range(20, 40):
        bad_deflate[k] ^= 0xA5
    write("corrupt_deflate", bytes(bad_deflate), good_labels)
    # Named .gz, but not compressed at all.
    write("not_gzip", images_idx(), good_labels)
    for p in sorted(OUT.rglob("*")):
        if p.is_file():
            print(p.relative_to(OUT), p.stat().st_size)


if __name__ == "__main__":
    main()
