"""Progress of long jobs: tqdm bars where they show as bars, log lines elsewhere.

A bar redrawn in a log file or a pipe is one line per redraw, so bars are drawn only where stderr
is a terminal or a notebook draws tqdm's widgets (:func:`bars_shown`). Elsewhere a :class:`Phase`
(one step of a longer job, such as `supcon eval`'s corruptions or t-SNE) says one line with its
ETA once a first share of it is done.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

log = logging.getLogger("supcon")

# A phase without bars logs its one line once this share of it is done or this many seconds
# have passed, whichever comes first: early enough to help, late enough for a fair ETA.
LINE_AFTER_SHARE = 0.05
LINE_AFTER_S = 5.0


def bars_shown() -> bool:
    """Whether a progress bar shows as one: stderr is a terminal, or a notebook draws tqdm's
    widgets (in a log file or a pipe each redraw would be a line)."""
    from tqdm.auto import tqdm

    return sys.stderr.isatty() or any(cls.__module__ == "tqdm.notebook" for cls in tqdm.__mro__)


def progress_bar(iterable: Iterable | None = None, **kwargs: Any):
    """A tqdm bar (``tqdm.auto``: widgets in a notebook) that fits the terminal's width and is
    removed when done unless ``leave=True``."""
    from tqdm.auto import tqdm

    kwargs.setdefault("leave", False)
    return tqdm(iterable, dynamic_ncols=True, **kwargs)


def duration(seconds: float) -> str:
    """``seconds`` as ``42s``, ``3m05s`` or ``1h02m``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Phase:
    """One phase of a job, ``total`` units long: a tqdm bar (with its rate and ETA) when ``bars``,
    else a single log line ``NAME: [DETAIL; ]done/total UNIT, ETA ...`` once a first share is done
    (or ``NAME: [DETAIL; ]done in ...`` at the end of a phase too short to have said it). With
    bars, ``detail`` (what the phase works on) is a log line of its own above the bar. Use it as a
    context manager and call :meth:`advance` after each unit.
    """

    def __init__(self, name: str, total: int, unit: str = "steps", *, detail: str | None = None,
                 bars: bool = False) -> None:
        self.name, self.total, self.unit = name, max(int(total), 0), unit
        self.prefix = f"{name}: {detail}; " if detail else f"{name}: "
        self.done, self.said = 0, False
        self.started = time.perf_counter()
        self._bar = None
        if bars:
            if detail:
                log.info("%s: %s", name, detail)
            self._bar = progress_bar(total=self.total, desc=name, unit=f" {unit}", leave=True)

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more units done."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        elapsed = time.perf_counter() - self.started
        if self.said or self.done >= self.total:
            return
        if self.done >= LINE_AFTER_SHARE * self.total or elapsed >= LINE_AFTER_S:
            eta = elapsed / self.done * (self.total - self.done)
            log.info("%s%d/%d %s, ETA %s", self.prefix, self.done, self.total, self.unit, duration(eta))
            self.said = True

    def iterate(self, iterable: Iterable) -> Iterator:
        """Yield the items of ``iterable``, advancing by one after each."""
        for item in iterable:
            yield item
            self.advance()

    def close(self) -> None:
        """End the phase (the bar stays, showing its total time)."""
        if self._bar is not None:
            self._bar.close()
        elif not self.said:
            log.info("%sdone in %s", self.prefix, duration(time.perf_counter() - self.started))
            self.said = True

    def __enter__(self) -> Phase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
