"""The grid of a study: what every run shares (:class:`StudySpec`), one run to make
(:class:`RunSpec`), and the runs of `supcon compare --presets` (:func:`presets_runs`).

The other grids are built where their design lives: the controlled compare's rows, selection grid
and budget rule in :mod:`.controlled`, the sweep's factor values in :mod:`.sweep`, the claim rows'
runs in :mod:`.study`. :mod:`.execute` makes any list of :class:`RunSpec`.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..checks import check_int
from ..config import METHODS, Config, build_config, is_text_encoder
from .eval_options import EvalOptions


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

    def reads_text(self) -> bool:
        """Whether the runs' encoder is a text encoder (their views are then dropout views, and
        there are no augmentation policies or corruptions)."""
        return is_text_encoder(self.config_for(self.methods[0], 0).model.encoder)

    def command(self, verb: str = "compare", extra: tuple[str, ...] = ()) -> str:
        """The CLI line that makes (or resumes) this study (``extra``: more flags of ``verb``)."""
        parts = ["supcon", verb, *extra, "--methods", ",".join(self.methods), "--out", str(self.out)]
        parts += ["--seeds", str(self.seeds)] if verb == "compare" else []
        for flag, value in (("--data", self.data), ("--epochs", self.epochs),
                            ("--config", self.config), ("--data-dir", self.data_dir)):
            if value is not None:
                parts += [flag, str(value)]
        return shlex.join(parts + list(self.overrides))


@dataclass(frozen=True)
class RunSpec:
    """One run of a grid: its name (run folder under ``--out``, and summary name), its config,
    whether it may read the test split, and how it is evaluated (None: results.json only)."""

    name: str
    cfg: Config
    test: bool = True
    evaluate: EvalOptions | None = None


def ordered(methods: tuple[str, ...]) -> list[str]:
    """ce first: it is the others' mCE reference and must be evaluated before them."""
    return sorted(methods, key=lambda m: m != "ce")


def seed_eval_options(options: EvalOptions, seed: int) -> EvalOptions:
    """``options`` for a run of training seed ``seed``: eval seed ``options.seed + seed``
    (subsamples and corruption noise), so seeds differ in the test images they are scored on and
    the runs of one seed share them; ``options.seed`` (``--eval-seed``, default 0) is the base."""
    return replace(options, seed=options.seed + seed)


def presets_runs(spec: StudySpec, options: EvalOptions) -> list[RunSpec]:
    """The runs of `supcon compare --presets`: every method with its own preset x seeds 0..K-1,
    seed by seed, ce first (the mCE reference of seed k is ``ce-seed<k>`` when ce is compared),
    each evaluated with :func:`seed_eval_options`.

    Raises:
        ValueError: the runs would differ in data, encoder, epochs or batch size.
    """
    configs = {(m, s): spec.config_for(m, s) for s in range(spec.seeds) for m in spec.methods}
    seen = {(c.data.name, c.model.encoder, json.dumps(c.model.encoder_options, sort_keys=True), c.train.epochs,
             c.train.batch_size) for c in configs.values()}
    if len(seen) != 1:
        raise ValueError(f"compare: runs would differ in data/encoder/epochs/batch: {sorted(seen)}")
    runs = []
    for seed in range(spec.seeds):
        ref = spec.out / f"ce-seed{seed}" if "ce" in spec.methods else None
        for method in ordered(spec.methods):
            evaluate = replace(seed_eval_options(options, seed), reference=str(ref) if ref else None)
            runs.append(RunSpec(f"{method}-seed{seed}", configs[method, seed], evaluate=evaluate))
    return runs
