"""Shared plotting helpers: figures are built without pyplot, so no global backend state changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def new_figure(width: float = 6.0, height: float = 4.5, **kwargs: Any):
    """A ``matplotlib.figure.Figure`` rendered by the Agg canvas (no pyplot, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    kwargs.setdefault("layout", "constrained")  # keeps labels of side-by-side panels apart
    fig = Figure(figsize=(width, height), **kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` as PNG (the parent folder is created) and return the path.

    Raises:
        ValueError: ``path`` does not end in ``.png``.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path must end in .png, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png", bbox_inches="tight")
    return path
