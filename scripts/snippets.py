#!/usr/bin/env python3
"""Keeps the README's code snippets identical to regions of files the test command runs.

A README line `<!-- snippet: examples/python/quickstart.py#connect -->` is followed by a
fenced code block that must equal the lines between `[start connect]` and `[end connect]`
in that file (dedented). Without arguments: fails listing every snippet that differs.
With --fix: rewrites the blocks from the files.
"""

import re
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARK = re.compile(r"<!-- snippet: (?P<path>[^#\s]+)#(?P<name>[\w-]+) -->")


def region(path: str, name: str) -> str:
    lines = (ROOT / path).read_text().splitlines()
    start = [i for i, l in enumerate(lines) if l.strip().endswith(f"[start {name}]")]
    end = [i for i, l in enumerate(lines) if l.strip().endswith(f"[end {name}]")]
    if len(start) != 1 or len(end) != 1 or end[0] <= start[0]:
        raise SystemExit(f"{path}: no single [start {name}] ... [end {name}] region")
    return textwrap.dedent("\n".join(lines[start[0] + 1 : end[0]])).strip("\n")


def main() -> int:
    fix = "--fix" in sys.argv
    readme = ROOT / "README.md"
    lines = readme.read_text().splitlines()
    out, stale, i = [], [], 0
    while i < len(lines):
        out.append(lines[i])
        m = MARK.search(lines[i])
        if not m:
            i += 1
            continue
        fence = lines[i + 1]
        if not fence.startswith("```"):
            raise SystemExit(f"README.md:{i + 2}: a snippet marker must be followed by a code block")
        close = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
        want = region(m["path"], m["name"])
        if "\n".join(lines[i + 2 : close]) != want:
            stale.append(f"{m['path']}#{m['name']}")
        out += [fence, *want.splitlines(), lines[close]]
        i = close + 1
    if fix:
        readme.write_text("\n".join(out) + "\n")
        return 0
    if stale:
        print("README.md snippets differ from their files (scripts/snippets.py --fix):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
