"""The renderer's base: a small document model written twice, as Markdown (PNGs linked) and as one
self-contained HTML page (PNGs embedded as base64), so both always say the same thing; and how a
number, an interval or a p-value is written in a table (the ``fmt_*`` helpers)."""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .stats import Interval


@dataclass
class Table:
    """A table of strings: one header row, then rows of the same length."""

    header: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    """A PNG with its caption."""

    path: Path  # a PNG; linked relative to the report in Markdown, embedded in HTML
    caption: str


@dataclass
class Section:
    """A titled part of a report."""

    title: str
    blocks: list[str | Table | Figure | list[str]] = field(default_factory=list)
    """Paragraphs (str, with `code` spans), tables, figures, bullet lists (list[str])."""


def write_report(title: str, sections: list[Section], folder: str | Path,
                 stem: str = "report") -> tuple[Path, Path]:
    """Write ``<folder>/<stem>.md`` and ``<folder>/<stem>.html``; return both paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md, page = folder / f"{stem}.md", folder / f"{stem}.html"
    md.write_text(to_markdown(title, sections, folder))
    page.write_text(to_html(title, sections))
    return md, page


def to_markdown(title: str, sections: list[Section], folder: Path) -> str:
    """The report as Markdown, figures linked relative to ``folder`` (where it is written)."""
    out = [f"# {title}", ""]
    for section in sections:
        out += [f"## {section.title}", ""]
        for block in section.blocks:
            out += [*_md_block(block, folder), ""]
    return "\n".join(out).rstrip() + "\n"


def _md_block(block, folder: Path) -> list[str]:
    if isinstance(block, Table):
        return [_md_row(block.header), "|" + "---|" * len(block.header), *map(_md_row, block.rows)]
    if isinstance(block, Figure):
        rel = Path(os.path.relpath(block.path, folder)).as_posix()
        return [f"![{block.caption}]({rel})", "", f"*{block.caption}*"]
    if isinstance(block, list):
        return [f"- {item}" for item in block]
    return [block]


def table_markdown(table: Table) -> str:
    """One table as Markdown (e.g. to print or to paste into a README)."""
    return "\n".join(_md_block(table, Path(".")))


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def to_html(title: str, sections: list[Section]) -> str:
    """The report as one self-contained HTML page (figures embedded as base64 PNGs)."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for section in sections:
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        body.extend(_html_block(block) for block in section.blocks)
    return _PAGE.format(title=html.escape(title), body="\n".join(body))


def _inline(text: str) -> str:
    """Escape, then render `code` and **bold** spans."""
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def _html_block(block) -> str:
    if isinstance(block, Table):
        head = "".join(f"<th>{_inline(c)}</th>" for c in block.header)
        rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                       for row in block.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    if isinstance(block, Figure):
        data = base64.b64encode(Path(block.path).read_bytes()).decode("ascii")
        return (f'<figure><img alt="{html.escape(block.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{_inline(block.caption)}</figcaption></figure>")
    if isinstance(block, list):
        return "<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block) + "</ul>"
    return f"<p>{_inline(block)}</p>"


def fmt_interval(interval: Interval, decimals: int = 2) -> str:
    """``"86.02 [85.71, 86.33]"``; one value: ``"86.02 (1 seed)"``; none: ``"—"``."""
    if interval.mean is None:
        return "—"
    mean = f"{interval.mean:.{decimals}f}"
    if interval.low is None:
        return f"{mean} (1 seed)"
    return f"{mean} [{interval.low:.{decimals}f}, {interval.high:.{decimals}f}]"


def fmt_pm(interval: Interval, decimals: int = 2) -> str:
    """``"86.02 ± 0.31"`` (± the half-width of the interval); one value: the mean; none: ``"—"``."""
    if interval.mean is None:
        return "—"
    mean = f"{interval.mean:.{decimals}f}"
    return mean if interval.low is None else f"{mean} ± {interval.half_width:.{decimals}f}"


def fmt_std(stat: Mapping[str, Any], decimals: int) -> str:
    """``"mean ± std"`` of a :func:`~.stats.mean_std` result (``"—"`` without values, no std for one)."""
    if stat["mean"] is None:
        return "—"
    text = f"{stat['mean']:.{decimals}f}"
    return text if stat["std"] is None else f"{text} ± {stat['std']:.{decimals}f}"


def fmt_p(p: float | None) -> str:
    """A p-value for a table: 3 significant digits, ``< 0.001`` below that, ``—`` when absent."""
    if p is None:
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3g}"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #bbb; padding: 0.3em 0.7em; text-align: right; }}
th {{ background: #f0f0f0; }}
td:first-child, th:first-child {{ text-align: left; }}
figure {{ margin: 1.5em 0; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
figcaption {{ font-style: italic; color: #555; }}
code {{ background: #f4f4f4; padding: 0 0.2em; }}
</style></head>
<body>
{body}
</body></html>
"""
