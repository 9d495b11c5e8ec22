"""Shared by the benchmark scripts: one case per fresh process, and their section of RESULTS.md."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path


def run_worker(script: str, args: list[str], threads: int | None, **case) -> dict:
    """Run ``script --worker ARGS`` in a fresh process (clean peak memory); its last stdout line is
    the JSON result. A failed case (e.g. killed for memory) gives ``{**case, "error": ...}``."""
    cmd = [sys.executable, script, "--worker", *args] + (["--threads", str(threads)] if threads else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["killed (out of memory?)"])[-1]
        return {**case, "error": f"rc={proc.returncode}: {tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


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


def run_header(script: str, argv: list[str], device: str, threads: int, started: str,
               loads: list[float]) -> str:
    """The command line and the machine of one benchmark run, as the first lines of its section."""
    import torch

    from supcon.workflows.record import machine

    return (f"Command: `python benchmarks/{script} {shlex.join(argv)}`\n\n"
            f"Run {started} on {device} ({machine()}, torch {torch.__version__}, "
            f"{threads} threads); load average {loads[0]:.1f} at the start, {loads[1]:.1f} at the end.")

