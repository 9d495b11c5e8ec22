"""Shared tiny runs on scikit-learn's digits for the workflow tests (seconds each on a CPU)."""

import pytest

from supcon.engine.train_job import run_training

# The suite's tiny run, one epoch shorter for the contrastive runs and two linear epochs.
WORKFLOW = ["linear.epochs=2"]


@pytest.fixture(scope="session")
def tiny(tiny_overrides):
    """The tiny run as `key=value` strings for `supcon compare/sweep` command lines."""
    return [*tiny_overrides, "train.epochs=1", *WORKFLOW]


@pytest.fixture(scope="session")
def fast_eval():
    """Cheap evaluation flags: two corruptions that always hurt, a small subsample, no embedding."""
    return ["--corruptions", "contrast,fog", "--corruption-samples", "60", "--embedding", "none"]


@pytest.fixture(scope="session")
def runs(tmp_path_factory, tiny_config):
    """Finished supcon and ce runs on digits (read-only: copy one before breaking it)."""
    root = tmp_path_factory.mktemp("runs")
    for method, epochs in (("supcon", 1), ("ce", 2)):
        run_training(tiny_config(method, f"train.epochs={epochs}", *WORKFLOW), root / method)
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


def md_tables(md: str) -> list[list[list[str]]]:
    """The Markdown tables of a report, each as rows of cells (header first, separator left out)."""
    tables, current = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            if not set(line) <= set("|-"):
                current.append([c.strip() for c in line.strip().strip("|").split(" | ")])
        elif current:
            tables.append(current)
            current = []
    return tables


def md_sections(md: str) -> list[str]:
    """The section titles (``## ...``) of a report, in order."""
    return [line[3:] for line in md.splitlines() if line.startswith("## ")]
