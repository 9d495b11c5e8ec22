"""The committable record of a study: one small JSON summary per finished run, no weights.

A study trains into ``--out`` (checkpoints, weights: machine-local) and keeps, per finished
run, ``<record>/summaries/<name>.json``: the run's portable configuration, its ``results.json``,
its pre-training curve and wall time, and its evaluation (``eval.json`` without paths). Reports
are made from these files alone, so a record copied to another machine (e.g. committed to git)
is enough to skip every run it holds there: a run is redone only when no summary with the same
configuration (and evaluation settings) exists.

``portable`` forms leave out what depends on the machine, not on the experiment: where the data
lives, worker processes and the device.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from .. import __version__
from ..config import Config
from .eval_options import EvalOptions

SUMMARIES = "summaries"
_MACHINE_KEYS = (("data", "data_dir"), ("data", "num_workers"), ("train", "device"))
_EVAL_DROPPED = ("run", "output", "plots", "settings")


def portable_config(cfg: Config | dict[str, Any]) -> dict[str, Any]:
    """The config as a nested dict without the machine-dependent keys (data_dir, workers, device)."""
    out = copy.deepcopy(cfg.to_dict() if isinstance(cfg, Config) else cfg)
    for section, key in _MACHINE_KEYS:
        out.get(section, {}).pop(key, None)
    return out


def portable_settings(settings: dict[str, Any] | None) -> dict[str, Any] | None:
    """Evaluation settings (``EvalOptions.settings()``) without paths and the device."""
    if settings is None:
        return None
    return {k: v for k, v in settings.items() if k not in ("device", "data_dir", "reference")}


def config_key(kind: str, cfg: Config) -> str:
    """A string that is equal for two runs exactly when they are the same experiment."""
    return kind + ":" + json.dumps(portable_config(cfg), sort_keys=True)


def summary_path(record: Path, name: str) -> Path:
    """Where the summary of run ``name`` (e.g. ``core/supcon-seed0``) lives."""
    return Path(record) / SUMMARIES / f"{name}.json"


def read_summary(record: Path, name: str) -> dict[str, Any] | None:
    """The summary of run ``name``, None when missing or unreadable (the run is then redone)."""
    path = summary_path(record, name)
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def matches(summary: dict[str, Any] | None, cfg: Config, eval_settings: dict[str, Any] | None,
            need_test: bool) -> bool:
    """Whether ``summary`` records this experiment (config, and evaluation when one is asked for).

    A key the summary lacks (a setting added to the package after it was written) counts as its
    default, which is how that run behaved: a record stays valid when new options appear. An
    evaluation without a result today's evaluation writes (the same-head ``probe``) does not
    match: its run is evaluated again rather than reported with a hole.
    """
    if summary is None or not isinstance(summary.get("config"), dict):
        return False
    if with_defaults(summary["config"], portable_config(Config())) != portable_config(cfg):
        return False
    if need_test and "test_top1" not in summary.get("results", {}):
        return False
    if eval_settings is None:
        return True
    recorded, evaluation = summary.get("eval_settings"), summary.get("eval")
    defaults = portable_settings(EvalOptions().settings())
    return (isinstance(recorded, dict) and with_defaults(recorded, defaults) == portable_settings(eval_settings)
            and isinstance(evaluation, dict) and "probe" in evaluation)


def with_defaults(recorded: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``recorded`` with every key it lacks taken from ``defaults`` (nested dicts key by key)."""
    out = dict(recorded)
    for key, value in defaults.items():
        if key not in out:
            out[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(out[key], dict):
            out[key] = with_defaults(out[key], value)
    return out


def epoch_records(run: Path) -> dict[str, list[float]]:
    """``{"epoch", "loss", "epoch_time_s"}`` of a run's ``pretrain_epoch`` records (the last record
    of each epoch wins, so an interrupted attempt's records are replaced by the resumed ones)."""
    by_epoch: dict[int, dict] = {}
    path = Path(run) / "metrics.jsonl"
    for line in path.read_text().splitlines() if path.is_file() else []:
        record = json.loads(line)
        if record.get("stage") == "pretrain_epoch":
            by_epoch[int(record["epoch"])] = record
    epochs = sorted(by_epoch)
    return {"epoch": epochs, "loss": [float(by_epoch[e]["loss"]) for e in epochs],
            "epoch_time_s": [float(by_epoch[e].get("epoch_time_s", 0.0)) for e in epochs]}


def machine() -> str:
    """The CPU this process runs on, in a few words (``AMD EPYC, avx2, 2 cores``): wall times
    recorded on different machines do not compare, and a study of many sessions may span several."""
    model, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    simd = next((f for f in ("avx512f", "avx2", "avx", "asimd") if f in flags), None)
    parts = [model or platform.processor() or platform.machine(), simd, f"{os.cpu_count()} cores"]
    return ", ".join(p for p in parts if p)


def make_summary(name: str, cfg: Config, run: Path, results: dict[str, Any],
                 evaluation: dict[str, Any] | None) -> dict[str, Any]:
    """The summary of a finished run (and its evaluation, when it has one)."""
    curve = epoch_records(run)
    views = cfg.data.n_views
    try:
        meta = json.loads((Path(run) / "encoder.json").read_text())
        info = {"channels": meta["in_channels"], "image_size": meta["image_size"]}
    except (OSError, ValueError, KeyError):
        info = None
    summary = {
        "name": name, "supcon_version": __version__, "config": portable_config(cfg),
        "results": results, "data_info": info, "pretrain": curve,
        "pretrain_time_s": round(sum(curve["epoch_time_s"]), 1),
        "encoder_passes": int(results.get("steps", 0)) * cfg.train.batch_size * views,
        "machine": machine(), "eval_settings": None, "eval": None,
    }
    if evaluation is not None:
        summary["eval_settings"] = portable_settings(evaluation.get("settings"))
        kept = {k: v for k, v in evaluation.items() if k not in _EVAL_DROPPED}
        if kept.get("corruptions"):
            kept["corruptions"] = {k: v for k, v in kept["corruptions"].items() if k != "indices"}
        summary["eval"] = kept
    return summary


def write_summary(record: Path, summary: dict[str, Any]) -> Path:
    """Write ``summary`` to its path under ``record`` (atomically: a temporary file, then renamed)."""
    path = summary_path(record, summary["name"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=1) + "\n")
    tmp.replace(path)
    return path


def check_git(folder: Path) -> Path:
    """The top folder of the git work tree that holds ``folder`` (created if missing).

    Raises:
        ValueError: ``folder`` is not inside a git work tree, or git is not installed.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(["git", "-C", str(folder), "rev-parse", "--show-toplevel"],
                              capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise ValueError("--commit: git is not installed; drop --commit and commit the summaries "
                         "yourself") from None
    if proc.returncode != 0:
        raise ValueError(f"--commit: {folder} is not inside a git repository; give a --record folder "
                         "inside one, or drop --commit") from None
    return Path(proc.stdout.strip())


def commit_files(paths: list[Path], message: str) -> bool:
    """``git add`` + ``git commit`` exactly ``paths`` (other staged changes are left alone);
    False when there was nothing new to commit.

    Raises:
        ValueError: git refused (the message quotes its first line), e.g. no user identity.
    """
    if not paths:
        return False
    top = check_git(Path(paths[0]).parent)
    rel = [str(Path(p).resolve().relative_to(top.resolve())) for p in paths]
    add = _git(top, "add", "--", *rel)
    if add.returncode != 0:
        raise ValueError(f"--commit: git add failed: {_first(add.stderr)}")
    diff = _git(top, "diff", "--cached", "--quiet", "--", *rel)
    if diff.returncode == 0:
        return False  # the same content is already committed
    commit = _git(top, "commit", "-q", "-m", message, "--", *rel)
    if commit.returncode != 0:
        raise ValueError(f"--commit: git commit failed: {_first(commit.stderr or commit.stdout)}")
    return True


LOCK_WAIT_S = 60.0


def _git(top: Path, *args: str) -> subprocess.CompletedProcess:
    """``git -C top args``, tried again for up to LOCK_WAIT_S while another git command (the user's,
    alongside a study of hours) holds the index lock, so that a finished run is not lost to it."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        proc = subprocess.run(["git", "-C", str(top), *args], capture_output=True, text=True, timeout=120)
        if proc.returncode == 0 or "index.lock" not in proc.stderr or time.monotonic() > deadline:
            return proc
        time.sleep(0.5)


def _first(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "no message"
