#!/usr/bin/env python3
"""Checks include/trainpp against the layering of docs/design.md ("Layering").

    tests/layering/check_layering.py              check the tree; exit 1 naming each violation
    tests/layering/check_layering.py --self-test  plant violations in a copy; each must be caught

A family is a folder of include/trainpp, or a root header (by its stem), unless the spec's block
puts a header into a named group (`name = path path ...`); a group is one family wherever its
headers sit. Each `family: families...` line lists what that family's headers may include.
Refused: a family missing from the spec, an include the spec does not allow, and any cycle between
families (which the spec, itself checked for cycles, would not allow either).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]trainpp/([^>"]+)[>"]')
BLOCK = re.compile(r"^```layering\s*\n(.*?)^```", re.S | re.M)


class SpecError(Exception):
    pass


def read_spec(path: Path):
    """(groups: header -> family, allowed: family -> set of families) from the design document."""
    match = BLOCK.search(path.read_text(encoding="utf-8"))
    if not match:
        raise SpecError(f"{path}: no ```layering block")
    groups: dict[str, str] = {}
    allowed: dict[str, set[str]] = {}
    for number, raw in enumerate(match.group(1).splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if "=" in line:
            name, files = (part.strip() for part in line.split("=", 1))
            for f in files.split():
                groups[f] = name
        elif ":" in line:
            name, deps = (part.strip() for part in line.split(":", 1))
            if name in allowed:
                raise SpecError(f"{path}: layering block line {number}: family {name} listed twice")
            allowed[name] = set(deps.split())
        else:
            raise SpecError(f"{path}: layering block line {number}: expected 'family: families' or "
                            f"'group = headers', got {raw!r}")
    for name, deps in allowed.items():
        for d in sorted(deps - set(allowed)):
            raise SpecError(f"{path}: family {name} may include {d}, which the spec does not list")
    return groups, allowed


def family_of(header: str, groups: dict[str, str]) -> str:
    if header in groups:
        return groups[header]
    parts = header.split("/")
    return parts[0] if len(parts) > 1 else Path(header).stem


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a closed path of families) per strongly connected component with more than one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan; the graph has a few dozen nodes
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    out = []
    for component in components:
        members = set(component)
        # A shortest path back to the start, walking inside the component (breadth first).
        start = component[0]
        previous = {start: None}
        queue = [start]
        closing = None
        while queue and closing is None:
            v = queue.pop(0)
            for w in sorted(edges.get(v, ())):
                if w == start:
                    closing = v
                    break
                if w in members and w not in previous:
                    previous[w] = v
                    queue.append(w)
        path = [start]
        v = closing
        while v is not None and v != start:
            path.insert(1, v)
            v = previous[v]
        out.append(path + [start])
    return out


def check(root: Path, spec: Path) -> list[str]:
    """The violations in root/include/trainpp, as messages; empty when the tree keeps the layering."""
    try:
        groups, allowed = read_spec(spec)
    except SpecError as e:
        return [str(e)]
    problems: list[str] = []
    tree = root / "include" / "trainpp"
    headers = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())
    for header in sorted(set(groups) - set(headers)):
        problems.append(f"{spec}: the group {groups[header]} names {header}, which is not in include/trainpp")
    for family in sorted({family_of(h, groups) for h in headers} - set(allowed)):
        first = next(h for h in headers if family_of(h, groups) == family)
        problems.append(f"include/trainpp/{first}: its family '{family}' is not in the layering of {spec.name}")
    edges: dict[str, set[str]] = {}
    lines: dict[tuple[str, str], list[str]] = {}
    for header in headers:
        source = family_of(header, groups)
        text = (tree / header).read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            target = family_of(m.group(1), groups)
            if target == source:
                continue
            where = f"include/trainpp/{header}:{number}: {line.strip()}"
            edges.setdefault(source, set()).add(target)
            lines.setdefault((source, target), []).append(where)
            if source in allowed and target in allowed and target not in allowed[source]:
                problems.append(f"{where}: family '{source}' may not include family '{target}' "
                                f"(it may include: {', '.join(sorted(allowed[source])) or 'nothing'})")
    problems += definitions_without_config(tree, headers)
    for cycle in cycles(edges):
        steps = [f"  {a} -> {b}: {lines[(a, b)][0]}" for a, b in zip(cycle, cycle[1:])]
        problems.append("include cycle between families: " + " -> ".join(cycle) + "\n" + "\n".join(steps))
    for cycle in cycles(allowed):
        problems.append(f"{spec}: the layering itself has a cycle: " + " -> ".join(cycle))
    return problems


def definitions_without_config(tree: Path, headers: list[str]) -> list[str]:
    """Headers that test TRAINPP_DEFINITIONS without reaching detail/config.hpp first. The preprocessor
    reads an undefined macro as 0 without a word, so such a header would drop its definitions in
    header-only mode, and the program would fail to link only where it uses one of them."""
    includes: dict[str, list[str]] = {}
    before_block: dict[str, list[str]] = {}
    for header in headers:
        found: list[str] = []
        for line in (tree / header).read_text(encoding="utf-8", errors="replace").splitlines():
            if "TRAINPP_DEFINITIONS" in line and re.match(r"^\s*#\s*(el)?if", line) and header not in before_block:
                before_block[header] = list(found)
            m = INCLUDE.match(line)
            if m:
                found.append(m.group(1))
        includes[header] = found
    config = "detail/config.hpp"
    problems = []
    for header, direct in sorted(before_block.items()):
        if header == config:
            continue
        seen, todo = set(), list(direct)
        while todo:
            h = todo.pop()
            if h not in seen:
                seen.add(h)
                todo.extend(includes.get(h, []))
        if config not in seen:
            problems.append(f"include/trainpp/{header}: tests TRAINPP_DEFINITIONS without including "
                            f"<trainpp/{config}> first, so the macro reads as 0 and header-only mode loses "
                            f"its definitions")
    return problems


def self_test(root: Path, spec: Path) -> int:
    """Copies the tree, plants one violation of each kind, and checks that each is caught."""
    groups, allowed = read_spec(spec)
    failures = []

    def run(name: str, plant, expect: str | None) -> None:
        with tempfile.TemporaryDirectory(prefix="trainpp-layering-") as tmp:
            copy = Path(tmp)
            shutil.copytree(root / "include" / "trainpp", copy / "include" / "trainpp")
            plant(copy / "include" / "trainpp")
            problems = check(copy, spec)
            text = "\n".join(problems)
            if expect is None and problems:
                failures.append(f"{name}: the untouched copy fails:\n{text}")
            elif expect is not None and expect not in text:
                failures.append(f"{name}: expected a failure containing {expect!r}, got:\n{text or '(it passed)'}")
            else:
                caught = next((p for p in problems if expect and expect in p), "")
                print(f"self-test {name}: ok" + (f"; caught:\n{caught}" if caught else ""))

    def append(path: Path, line: str) -> None:
        path.write_text(path.read_text(encoding="utf-8") + line + "\n", encoding="utf-8")

    run("untouched copy", lambda tree: None, None)
    run("planted cycle", lambda tree: append(tree / "detail" / "error.hpp", "#include <trainpp/trainer.hpp>"),
        "include cycle between families: ")

    # An acyclic edge the spec does not allow: from a family to one that does not reach it back.
    tree = root / "include" / "trainpp"
    headers = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*.hpp"))
    reach: dict[str, set[str]] = {}
    for family in allowed:
        seen, todo = set(), [family]
        while todo:
            for d in allowed[todo.pop()]:
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        reach[family] = seen
    pair = next(((a, b) for a in sorted(allowed) for b in sorted(allowed)
                 if a != b and b not in allowed[a] and a not in reach[b]
                 and any(family_of(h, groups) == a for h in headers)
                 and any(family_of(h, groups) == b for h in headers)), None)
    if pair is None:
        failures.append("no pair of families to plant a disallowed acyclic include between")
    else:
        source = next(h for h in headers if family_of(h, groups) == pair[0])
        target = next(h for h in headers if family_of(h, groups) == pair[1])
        expect = f"family '{pair[0]}' may not include family '{pair[1]}'"
        run(f"planted {pair[0]} -> {pair[1]}", lambda tree: append(tree / source, f"#include <trainpp/{target}>"), expect)

    def new_family(tree: Path) -> None:
        (tree / "unlisted").mkdir()
        (tree / "unlisted" / "x.hpp").write_text("#pragma once\n#include <trainpp/detail/error.hpp>\n")

    run("unlisted family", new_family, "its family 'unlisted' is not in the layering")

    def definitions_before_config(tree: Path) -> None:
        (tree / "io" / "planted.hpp").write_text(
            "#pragma once\n#include <trainpp/detail/error.hpp>\n#if TRAINPP_DEFINITIONS\n#endif\n")

    run("definitions block without config.hpp", definitions_before_config,
        "io/planted.hpp: tests TRAINPP_DEFINITIONS without including")
    for f in failures:
        print(f"self-test FAILED: {f}", file=sys.stderr)
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this script's)")
    parser.add_argument("--spec", type=Path, help="the document with the layering block (default: docs/design.md)")
    parser.add_argument("--self-test", action="store_true", help="check that planted violations are caught")
    args = parser.parse_args()
    spec = args.spec or args.root / "docs" / "design.md"
    if args.self_test:
        return self_test(args.root, spec)
    problems = check(args.root, spec)
    for p in problems:
        print(f"layering: {p}", file=sys.stderr)
    if not problems:
        print(f"layering: include/trainpp keeps the layering of {spec.relative_to(args.root) if spec.is_relative_to(args.root) else spec}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
