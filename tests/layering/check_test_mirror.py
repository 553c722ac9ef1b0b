#!/usr/bin/env python3
"""Checks that the tests mirror the include tree: every include/trainpp/<path>.hpp has a
tests/trainpp/<path>_test.cpp that includes it, unless headers_without_test_file.txt lists the header
with its reason.

    tests/layering/check_test_mirror.py              check the tree; exit 1 naming each header
    tests/layering/check_test_mirror.py --self-test  plant a header without a test file in a copy;
                                                     the check must refuse it

Refused: a header without its test file, a test file that does not include its header (a mirror in
name only), and a stale exemption (its header gone, or its test file present after all).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXEMPTIONS = Path(__file__).with_name("headers_without_test_file.txt")


def read_exemptions(path: Path) -> dict[str, str]:
    """header path (under include/) -> reason."""
    exemptions: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header, _, reason = line.partition("#")
        header, reason = header.strip(), reason.strip()
        if not reason:
            raise SystemExit(f"{path}:{number}: '{header}' needs a reason after '#'")
        exemptions[header] = reason
    return exemptions


def check(root: Path, exemptions: dict[str, str]) -> list[str]:
    include = root / "include"
    problems = []
    headers = sorted(p.relative_to(include).as_posix() for p in (include / "trainpp").rglob("*.hpp"))
    for header in headers:
        test = root / "tests" / (header[: -len(".hpp")] + "_test.cpp")
        if header in exemptions:
            if test.exists():
                problems.append(f"{header}: listed in {EXEMPTIONS.name} but {test.relative_to(root)} exists; "
                                "drop the exemption")
            continue
        if not test.exists():
            problems.append(f"{header}: no test file {test.relative_to(root)} (write one, or list the header in "
                            f"{EXEMPTIONS.name} with the reason it has no logic of its own)")
            continue
        included = re.search(r'^\s*#\s*include\s*[<"]' + re.escape(header) + r'[>"]',
                             test.read_text(encoding="utf-8"), re.M)
        if not included:
            problems.append(f"{test.relative_to(root)}: does not include <{header}>, the header it mirrors")
    for header in exemptions:
        if header not in headers:
            problems.append(f"{EXEMPTIONS.name}: '{header}' is not a header of include/trainpp")
    return problems


def self_test(root: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp)
        shutil.copytree(root / "include", copy / "include")
        shutil.copytree(root / "tests" / "trainpp", copy / "tests" / "trainpp")
        exemptions = read_exemptions(EXEMPTIONS)
        if check(copy, exemptions):
            print("self-test: the unmodified copy already fails", file=sys.stderr)
            return 1
        planted = copy / "include" / "trainpp" / "io" / "planted_format.hpp"
        planted.write_text("#pragma once\n", encoding="utf-8")
        caught_missing = any("planted_format.hpp: no test file" in p for p in check(copy, exemptions))
        test = copy / "tests" / "trainpp" / "io" / "planted_format_test.cpp"
        test.write_text("#include <doctest/doctest.h>\n", encoding="utf-8")
        caught_name_only = any("does not include <trainpp/io/planted_format.hpp>" in p for p in check(copy, exemptions))
        test.write_text("#include <trainpp/io/planted_format.hpp>\n", encoding="utf-8")
        accepted = not check(copy, exemptions)
        caught_stale = any("exists; drop the exemption" in p
                           for p in check(copy, {**exemptions, "trainpp/io/planted_format.hpp": "planted"}))
    results = {"a header without a test file": caught_missing, "a test file that does not include its header":
               caught_name_only, "the planted header once mirrored is accepted": accepted,
               "a stale exemption": caught_stale}
    for what, ok in results.items():
        print(f"self-test: {what}: {'ok' if ok else 'NOT CAUGHT'}")
    return 0 if all(results.values()) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--self-test", action="store_true")
    options = parser.parse_args()
    if options.self_test:
        return self_test(options.root)
    problems = check(options.root, read_exemptions(EXEMPTIONS))
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} header(s) not mirrored by a test file", file=sys.stderr)
        return 1
    print("every header of include/trainpp has its test file, or a reason not to")
    return 0


if __name__ == "__main__":
    sys.exit(main())
