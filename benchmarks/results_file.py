"""``benchmarks/RESULTS.md``: one section per benchmark, each rewritten only by its own script.

A section is fenced by ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` under its
``## Title``; :func:`write_section` replaces the text between the fences and leaves
every other section as it is (appending the section the first time).
"""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = ("# Benchmark results\n\nEach section is written by the script it names; timings on "
          "a shared machine: compare ratios measured in one run, not absolute figures across "
          "runs.\n")


def write_section(name: str, title: str, text: str, path: Path = RESULTS) -> None:
    """Put ``text`` in section ``name`` (titled ``title`` when it is new) of ``path``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    current = path.read_text() if path.exists() else HEADER
    block = f"{start}\n{text.strip()}\n{end}"
    if start in current and end in current:
        current = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, current,
                         count=1, flags=re.S)
    else:
        current = current.rstrip("\n") + f"\n\n## {title}\n\n{block}\n"
    path.write_text(current)


def read_section(name: str, path: Path = RESULTS) -> str | None:
    """The text of section ``name``, or ``None`` where there is none."""
    if not path.exists():
        return None
    found = re.search(re.escape(f"<!-- {name}:start -->") + r"\n?(.*?)\n?" +
                      re.escape(f"<!-- {name}:end -->"), path.read_text(), flags=re.S)
    return found.group(1) if found else None
