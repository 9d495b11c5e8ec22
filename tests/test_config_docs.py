"""docs/training.md's "Every config key" table is the config dataclasses, key for key.

The table is made from the field docstrings of supcon/config.py; when a key is added or its
default or docstring changes, this test fails and prints the table to paste.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import supcon.config as config_module
from supcon.config import Config

DOC = Path(__file__).resolve().parents[1] / "docs" / "training.md"
HEADING = "## Every config key"


def _field_docs() -> dict[tuple[str, str], str]:
    """(class name, field) -> the string literal right under the field, on one line."""
    tree = ast.parse(Path(config_module.__file__).read_text())
    docs = {}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        body = cls.body
        for stmt, nxt in zip(body, body[1:], strict=False):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
                docs[(cls.name, stmt.target.id)] = " ".join(nxt.value.value.split())
    return docs


def _default(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return json.dumps(value).replace('"', "") if value else "{}"
    return str(value)


def expected_rows() -> list[str]:
    docs, cfg, rows = _field_docs(), Config(), []
    for top in dataclasses.fields(Config):
        value = getattr(cfg, top.name)
        if not dataclasses.is_dataclass(value):
            rows.append(f"| `{top.name}` | `{_default(value)}` | {docs[('Config', top.name)]} |")
            continue
        for f in dataclasses.fields(value):
            doc = docs[(type(value).__name__, f.name)]
            rows.append(f"| `{top.name}.{f.name}` | `{_default(getattr(value, f.name))}` | {doc} |")
    return rows


def documented_rows() -> list[str]:
    text = DOC.read_text()
    section = text[text.index(HEADING):]
    section = section[: section.index("\n## ", len(HEADING))]
    return [line for line in section.splitlines() if line.startswith("| `")]


def test_every_config_key_is_documented_with_its_default_and_docstring():
    expected = expected_rows()
    assert documented_rows() == expected, (
        "docs/training.md's config table is out of date; replace its rows with:\n"
        + "\n".join(expected))


def test_the_table_covers_every_key_the_config_accepts():
    keys = {row.split("`")[1] for row in expected_rows()}
    cfg = Config().to_dict()
    flat = {f"{s}.{k}" for s, sec in cfg.items() if isinstance(sec, dict) for k in sec}
    assert keys == flat | {"method"}
