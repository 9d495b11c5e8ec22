"""Suite-wide settings and fixtures: one torch thread per test process, the one tiny training run
the tests share, and the hook that interrupts a run at a known checkpoint.

The suite runs as two pytest-xdist workers on two cores; more threads per process only adds
hand-off overhead on the tiny tensors the tests use.
"""

import pytest
import torch

from supcon.config import build_config

torch.set_num_threads(1)

# The tiny run on scikit-learn's digits (seconds on a CPU); tests override what they need.
TINY = ["data.name=digits", "data.num_workers=0", "train.batch_size=64", "train.epochs=2",
        "model.encoder_options={widths: [16, 32], blocks: [1, 1], strides: [2, 2]}",
        "linear.epochs=3", "optim.warmup_epochs=0.5"]
# Flipped and shifted digits make 40 steps of cross-entropy too few to leave chance level.
CE_EXTRA = ["data.augmentation=none", "optim.lr=0.3"]


@pytest.fixture(scope="session")
def tiny_config():
    """``tiny_config(method="supcon", *extra)``: the tiny run as a resolved Config; ``extra`` are
    ``key=value`` overrides applied last."""

    def make(method: str = "supcon", *extra: str):
        dotted = TINY + (CE_EXTRA if method == "ce" else []) + list(extra)
        return build_config(None, overrides={"method": method}, dotted=dotted)

    return make


@pytest.fixture(scope="session")
def norm_free():
    """The override for a smaller encoder without normalisation layers: each sample's output is
    then independent of the rest of its batch (gradient caching and DDP reproduce one process)."""
    return "model.encoder_options={widths: [8, 16], blocks: [1, 1], strides: [2, 2], norm: none}"


@pytest.fixture(scope="session")
def tiny_overrides():
    """The tiny run's ``key=value`` strings (for `supcon compare/sweep` command lines)."""
    return list(TINY)


class Interrupt:
    """A ``run_training(on_checkpoint=...)`` hook: raises KeyboardInterrupt at the ``count``-th
    checkpoint (on every process alike, so none waits in a collective); ``positions`` lists the
    checkpoints seen."""

    def __init__(self, count: int) -> None:
        self.count, self.positions = count, []

    def __call__(self, position) -> None:
        self.positions.append(position.to_dict())
        if len(self.positions) == self.count:
            raise KeyboardInterrupt


@pytest.fixture(scope="session")
def interrupt():
    """``interrupt(count)``: an :class:`Interrupt` hook that stops a run at its count-th checkpoint."""
    return Interrupt
