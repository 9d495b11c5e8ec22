"""A study's plan: every claim row it will test (endpoint, comparator, family), the adjustment of
each family and the order of the runs, fixed before the first run.

:func:`write_or_check` puts ``plan.json`` and ``plan.md`` into the record folder before any run
(the study commits them with ``--commit``, so the history shows the plan came first). A study that
finds a plan there made by another configuration refuses to run: the endpoints cannot change
after results exist. At the end the study checks that its claim rows are exactly the planned ones.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .claims import ADJUSTMENT, ALPHA

PLAN_JSON, PLAN_MD = "plan.json", "plan.md"


def planned_row(claim: str, endpoint: str, comparator: str, family: str) -> dict[str, str]:
    """One planned claim row: what it claims, the endpoint measured, against what (a row key such
    as ``ce-own``: its label is known only after the selection), in which family."""
    return {"claim": claim, "endpoint": endpoint, "comparator": comparator, "family": family}


def row_key(row: dict[str, Any]) -> tuple[str, str, str]:
    """What identifies a claim row in the plan: endpoint, comparator (key) and family."""
    return row["endpoint"], row.get("comparator_key", row["comparator"]), row["family"]


def build_plan(title: str, command: str, rows: Sequence[dict[str, str]], comparators: dict[str, str],
               order: Sequence[str], design: dict[str, Any]) -> dict[str, Any]:
    """The plan as plain data: the rows, the comparators (key -> how it is chosen), the families'
    adjustment, the level, the order of the runs and the design (seeds, epochs, grids)."""
    families = list(dict.fromkeys(r["family"] for r in rows))
    return {"title": title, "command": command, "alpha": ALPHA,
            "adjustment": {f: ADJUSTMENT.get(f, "Benjamini-Hochberg") for f in families},
            "comparators": dict(comparators), "design": design, "order": list(order), "rows": list(rows)}


def plan_markdown(plan: dict[str, Any]) -> str:
    """The plan as a page: what is tested, against what, how p is adjusted, in which order."""
    lines = [f"# Plan: {plan['title']}", "",
             "Written before the first run of the study; the study refuses to run under another plan.", "",
             f"Command: `{plan['command']}`", "", "## Comparators (fixed in advance)", ""]
    lines += [f"- `{k}`: {v}" for k, v in plan["comparators"].items()]
    lines += ["", "## Families and adjustment", ""]
    for family, method in plan["adjustment"].items():
        n = sum(r["family"] == family for r in plan["rows"])
        lines.append(f"- **{family}** ({n} tests): {method}; a verdict is better / worse when the adjusted "
                     f"p is below {plan['alpha']}.")
    lines += ["", "## Claim rows", "", "| family | claim | endpoint | compared with |", "|---|---|---|---|"]
    lines += [f"| {r['family']} | {r['claim']} | {r['endpoint']} | {r['comparator']} |" for r in plan["rows"]]
    lines += ["", "## Design", ""]
    lines += [f"- {k}: {v}" for k, v in plan["design"].items()]
    lines += ["", "## Order of the runs", ""]
    lines += [f"{i}. {step}" for i, step in enumerate(plan["order"], 1)]
    return "\n".join(lines) + "\n"


MACHINE_FLAGS = {"--out": 1, "--record": 1, "--commit": 0, "--no-progress": 0}  # flag: values it takes


def experiment_command(command: str | None) -> list[str]:
    """The command without where it runs and records (``--out``, ``--record``, ``--commit``)."""
    words, kept = shlex.split(command or ""), []
    while words:
        word = words.pop(0)
        if word in MACHINE_FLAGS:
            del words[:MACHINE_FLAGS[word]]
        else:
            kept.append(word)
    return kept


def substance(plan: dict[str, Any]) -> dict[str, Any]:
    """What a plan commits to: the command (but where it runs and records), level, adjustment,
    design, comparators and rows (endpoint, comparator, family); the wording of claims and
    descriptions may be edited."""
    return {"command": experiment_command(plan.get("command")), "alpha": plan.get("alpha"), "adjustment": plan.get("adjustment"),
            "design": plan.get("design"), "comparators": sorted(plan.get("comparators") or {}),
            "rows": [list(row_key(r)) for r in plan.get("rows", [])]}


def write_or_check(record: Path, plan: dict[str, Any]) -> list[Path]:
    """Write ``plan.json`` / ``plan.md`` into ``record``, or check that the plan already there
    commits to the same (:func:`substance`). Returns the files written ([] when the plan was there).

    Raises:
        ValueError: ``record`` holds another plan (the message says which part differs).
    """
    path = Path(record) / PLAN_JSON
    if path.exists():
        have, want = substance(json.loads(path.read_text())), substance(plan)
        if have != want:
            differs = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
            raise ValueError(f"{path} holds another plan (it differs in {', '.join(differs)}); a study keeps the "
                             "plan it started with: use another --record, or rerun with the planned options")
        return []
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plan, indent=1) + "\n")
    (path.parent / PLAN_MD).write_text(plan_markdown(plan))
    return [path, path.parent / PLAN_MD]


def check_rows_follow(plan: dict[str, Any], rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` in the plan's order, after checking they are exactly the planned ones.

    Raises:
        RuntimeError: a row the plan lacks, or a planned row not made (a defect of the study).
    """
    made = {row_key(r): r for r in rows}
    planned = [row_key(r) for r in plan["rows"]]
    if set(made) != set(planned) or len(made) != len(rows):
        extra, missing = set(made) - set(planned), set(planned) - set(made)
        raise RuntimeError(f"claim rows do not follow the plan: not planned {sorted(extra)}, missing {sorted(missing)}")
    return [made[k] for k in planned]
