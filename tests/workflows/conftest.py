"""Shared tiny runs on scikit-learn's digits for the workflow tests (seconds each on a CPU)."""

import pytest

from supcon.config import build_config
from supcon.engine.train_job import run_training

# The tiny setting of tests/engine/test_train_job.py, one epoch shorter for the contrastive runs.
TINY = [
    "data.num_workers=0", "train.batch_size=64", "train.epochs=1",
    "model.encoder_options={widths: [16, 32], blocks: [1, 1], strides: [2, 2]}",
    "linear.epochs=2", "optim.warmup_epochs=0.5",
]
CE_EXTRA = ["optim.lr=0.3", "data.augmentation=none", "train.epochs=2"]


def _config(method: str, *extra: str):
    return build_config(None, overrides={"method": method, "data.name": "digits"},
                        dotted=TINY + (CE_EXTRA if method == "ce" else []) + list(extra))


@pytest.fixture(scope="session")
def tiny():
    """The TINY overrides as `key=value` strings (for `supcon compare/sweep` command lines)."""
    return list(TINY)


@pytest.fixture(scope="session")
def fast_eval():
    """Cheap evaluation flags: two corruptions that always hurt, a small subsample, no embedding."""
    return ["--corruptions", "contrast,fog", "--corruption-samples", "60", "--embedding", "none"]


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """Finished supcon and ce runs on digits (read-only: copy one before breaking it)."""
    root = tmp_path_factory.mktemp("runs")
    for method in ("supcon", "ce"):
        run_training(_config(method), root / method)
    return {"supcon": root / "supcon", "ce": root / "ce"}


@pytest.fixture
def cli(capsys):
    """``cli(*args) -> (exit code, stdout, stderr)`` of `supcon ARGS` run in-process."""
    from supcon.cli import main

    def run(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run
