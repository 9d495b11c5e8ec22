"""Where registered data sets are found and how a missing one is downloaded: ``$SUPCON_DATA``,
the one-line `DataError` of a set found nowhere, and torchvision downloads whose failures become
one `DataError` too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from .base import DataError
from .images import describe


def _not_found(name: str, searched: Sequence[Path]) -> DataError:
    where = ", ".join(str(p) for p in searched) or "no folder (no --data-dir, no $SUPCON_DATA)"
    return DataError(
        f"data set {name} not found in {where}; give --data-dir or $SUPCON_DATA, or allow download"
    )


def _download(name: str, target: Path, fetch: Callable[[], object]) -> None:
    """Run a torchvision download; any failure (offline, proxy, disk) becomes one `DataError`."""
    try:
        fetch()
    except Exception as exc:  # urllib, ssl, OSError and torchvision's RuntimeError alike
        apt = " (or apt-get install dataset-fashion-mnist)" if name == "fashion-mnist" else ""
        raise DataError(
            f"data set {name} is not on disk and downloading it into {target} failed "
            f"({describe(exc)}); put its files in --data-dir or $SUPCON_DATA{apt}, see docs/data.md"
        ) from exc


def env_root() -> Path | None:
    """``$SUPCON_DATA`` as a path, if set and non-empty."""
    value = os.environ.get("SUPCON_DATA", "").strip()
    return Path(value).expanduser() if value else None
