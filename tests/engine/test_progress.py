"""Phases of a long job: one log line with an ETA where bars do not show, a tqdm bar where they do."""

import io
import logging
import sys

import pytest

from supcon.engine import progress
from supcon.engine.progress import Phase, bars_shown, duration


class Clock:
    """A fake ``time.perf_counter`` advanced by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(progress.time, "perf_counter", c)
    return c


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_a_phase_without_bars_says_one_line_with_its_eta(clock, caplog):
    """1 s per step, 100 steps: after 5 (5%) the line says 95 s are left; nothing more after."""
    caplog.set_level(logging.INFO, logger="supcon")
    with Phase("corruptions", 100, "pairs") as phase:
        for _ in range(100):
            clock.now += 1.0
            phase.advance()
            if phase.done == 4:
                assert lines(caplog) == []
    assert lines(caplog) == ["corruptions: 5/100 pairs, ETA 1m35s"]


def test_a_slow_first_step_is_reported_after_five_seconds(clock, caplog):
    caplog.set_level(logging.INFO, logger="supcon")
    with Phase("t-SNE", 1000, "iterations") as phase:
        clock.now += 6.0
        phase.advance(10)  # 1% done, but 6 s have passed: 594 s to go at that rate
        phase.advance(10)
    assert lines(caplog) == ["t-SNE: 10/1000 iterations, ETA 9m54s"]


def test_a_phase_done_before_its_line_says_its_time(clock, caplog):
    caplog.set_level(logging.INFO, logger="supcon")
    with Phase("calibration", 1) as phase:
        clock.now += 2.4
        phase.advance()
    with Phase("empty", 0, detail="nothing to do"):
        pass
    assert lines(caplog) == ["calibration: done in 2s", "empty: nothing to do; done in 0s"]


def test_the_detail_goes_into_the_one_line(clock, caplog):
    caplog.set_level(logging.INFO, logger="supcon")
    with Phase("corruptions", 10, "passes", detail="2 types x 5 severities on 60 images") as phase:
        clock.now += 3.0
        phase.advance()
    assert lines(caplog) == ["corruptions: 2 types x 5 severities on 60 images; 1/10 passes, ETA 27s"]


def test_with_bars_the_bar_counts_and_no_line_is_logged(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="supcon")
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with Phase("features", 8, "batches", detail="3 splits", bars=True) as phase:
        for _ in phase.iterate(range(8)):
            pass
    assert lines(caplog) == ["features: 3 splits"] and phase.done == 8  # the detail, above the bar
    assert "features" in err.getvalue() and "8/8" in err.getvalue()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_show_on_a_terminal_only(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not bars_shown()
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert bars_shown()


@pytest.mark.parametrize("seconds, text", [(0.4, "0s"), (42, "42s"), (185, "3m05s"), (3725, "1h02m")])
def test_duration(seconds, text):
    assert duration(seconds) == text
