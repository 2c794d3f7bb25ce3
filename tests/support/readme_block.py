#!/usr/bin/env python3
"""Print the first fenced code block of a language from README.md.

    tests/support/readme_block.py python|lua|nginx|c

The README's quickstarts are tested as written: each suite takes its
snippet from here rather than keeping a copy that could drift.
Exit status 1 (with a message) when the README has no such block.
"""
from __future__ import annotations

import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def block(lang: str, readme: Path = README) -> str:
    lines: list[str] = []
    inside = False
    for line in readme.read_text(encoding="utf-8").splitlines():
        if not inside and line.strip() == "```" + lang:
            inside = True
        elif inside and line.strip() == "```":
            return "\n".join(lines) + "\n"
        elif inside:
            lines.append(line)
    raise LookupError(f"{readme}: no ```{lang} block")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    try:
        sys.stdout.write(block(sys.argv[1]))
    except LookupError as e:
        sys.exit(str(e))
