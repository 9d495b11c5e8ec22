"""Shared by the benchmark scripts: rewrite one script's section of RESULTS.md, leaving the rest."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, heading: str, text: str) -> None:
    """Replace the section starting at ``heading`` (up to the next ``## ``) with ``text``, or append it."""
    old = path.read_text() if path.exists() else "# Benchmark results\n\n"
    start = old.find(heading)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + len(heading))
        rest = "\n" + old[end + 1 :] if end >= 0 else ""
        new = old[:start] + text.rstrip("\n") + "\n" + rest
    path.write_text(new)
