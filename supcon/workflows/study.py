"""The runs a study shares: :class:`StudySpec`, the base of `supcon compare` and `supcon sweep`."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checks import check_int
from ..config import METHODS, Config, build_config


@dataclass(frozen=True)
class StudySpec:
    """The runs of a comparison (also the base of a sweep): what they all share.

    ``None`` fields keep the config's value; ``overrides`` are ``key=value`` strings applied last.

    Raises:
        ValueError: no or unknown methods, a method named twice, ``seeds`` or ``epochs`` < 1.
    """

    out: Path
    methods: tuple[str, ...] = ("ce", "simclr", "supcon")
    seeds: int = 1
    data: str | None = None
    epochs: int | None = None
    config: str | None = None
    overrides: tuple[str, ...] = ()
    data_dir: str | None = None

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if not self.methods or bad:
            raise ValueError(f"methods must name some of {', '.join(METHODS)}, got {list(self.methods)}")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods names a method twice: {list(self.methods)}")
        check_int("seeds", self.seeds)
        if self.epochs is not None:  # None: the config's
            check_int("epochs", self.epochs)

    def config_for(self, method: str, seed: int, extra: dict[str, Any] | None = None) -> Config:
        """The resolved config of one run: shared settings, then the method's own defaults."""
        flags = {"method": method, "train.seed": seed, "data.name": self.data,
                 "train.epochs": self.epochs, "data.data_dir": self.data_dir, **(extra or {})}
        return build_config(self.config, overrides={k: v for k, v in flags.items() if v is not None},
                            dotted=list(self.overrides))

    def command(self, verb: str = "compare", extra: tuple[str, ...] = ()) -> str:
        """The CLI line that makes (or resumes) this study (``extra``: more flags of ``verb``)."""
        parts = ["supcon", verb, *extra, "--methods", ",".join(self.methods), "--out", str(self.out)]
        parts += ["--seeds", str(self.seeds)] if verb == "compare" else []
        for flag, value in (("--data", self.data), ("--epochs", self.epochs),
                            ("--config", self.config), ("--data-dir", self.data_dir)):
            if value is not None:
                parts += [flag, str(value)]
        return shlex.join(parts + list(self.overrides))


def ordered(methods: tuple[str, ...]) -> list[str]:
    """ce first: it is the others' mCE reference and must be evaluated before them."""
    return sorted(methods, key=lambda m: m != "ce")
