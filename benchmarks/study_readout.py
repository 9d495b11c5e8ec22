"""The early families of a `supcon study` that is still running, read from its record folder.

The primary family (clean top-1 and mCE over all corruptions, Holm) and the exploratory one (the
imitated and unimitated corruption subsets) need only the selection and core runs of supcon and
the cross-entropy rows, which the study makes first. Each family is adjusted on its own, so once
those runs are committed these rows are what the finished study's claims.md will say: this script
prints them without waiting for the other rows. It trains nothing and reads only the summaries
in the record (no run folders); a run still missing is named.

    python benchmarks/study_readout.py benchmarks/study-fashion-mnist-16
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from supcon.cli import build_parser, study_spec
from supcon.command_line import from_flags
from supcon.workflows import EvalOptions
from supcon.workflows.controlled import Controls
from supcon.workflows.eval_options import RUN_ONLY
from supcon.workflows.study import ClaimOptions, read_early_families


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("record", type=Path, help="the study's record folder (with plan.json)")
    record = parser.parse_args().record
    plan_path = record / "plan.json"
    if not plan_path.is_file():
        print(f"error: {record}: no plan.json (not a study record)", file=sys.stderr)
        return 2
    # the study's own command, as its plan gives it: the same flags make the same design
    args = build_parser().parse_args(shlex.split(json.loads(plan_path.read_text())["command"])[1:])
    controls = replace(from_flags(Controls, args), record=record, commit=False)
    try:
        result = read_early_families(study_spec(args, args.seeds), from_flags(EvalOptions, args, skip=RUN_ONLY),
                                     controls, from_flags(ClaimOptions, args))
    except (LookupError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"families: {', '.join(result['families'])} (final: every run they need is recorded)\n")
    print(result["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
