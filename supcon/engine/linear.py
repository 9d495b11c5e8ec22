"""Stage 2: a linear classifier on frozen encoder representations, chosen on the validation split.

Representations are computed once (no augmentation) and the classifier is trained on them with
the shared training loop (``linear.solver=sgd``, seconds on a CPU) or fitted to convergence by
scikit-learn's logistic regression (``linear.solver=logistic``, meant for few labelled examples);
either is independent of the encoder's train/eval state, which is never touched.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..config import LinearConfig
from .loop import LoopSpec, Position, train_loop
from .optim import set_lr

LOGISTIC_C = (0.01, 0.1, 1.0, 10.0, 100.0)
"""Inverse L2 strengths tried by ``linear.solver=logistic`` (scikit-learn's C; 1 is its default)."""


@dataclass
class LinearResult:
    """What :func:`fit_linear` returns: the classifier on raw features, the chosen epoch (from
    1; for the logistic solver the position of the chosen C), its validation top-1 (%), one
    ``{"epoch", "loss", "val_top1"}`` per epoch (with ``"C"`` per fit for the logistic solver)
    and the chosen C (None for SGD)."""

    classifier: nn.Module
    best_epoch: int
    val_top1: float
    history: list[dict[str, float]]
    C: float | None = None

    def selected(self) -> dict[str, float]:
        """What was chosen on validation, as the run's results name it."""
        return {"linear_best_epoch": self.best_epoch} if self.C is None else {"linear_C": self.C}


def fit_units(cfg: LinearConfig) -> tuple[int, str]:
    """How many fits a progress bar of the linear stage counts, and what they are."""
    return (cfg.epochs, "epochs") if cfg.solver == "sgd" else (len(LOGISTIC_C), "fits")


def topk_accuracy(logits: Tensor, labels: Tensor, k: int = 1) -> float:
    """Share (in %) of rows whose label is among the ``k`` highest scores (k capped at #classes)."""
    k = min(k, logits.shape[1])
    hits = (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1)
    return 100.0 * hits.float().mean().item()


@torch.no_grad()
def bank_accuracy(classifier: nn.Module, bank: tuple[Tensor, Tensor], k: int = 1) -> float:
    """Top-``k`` accuracy (%) of ``classifier`` on a feature bank ``(features [N, F], labels [N])``;
    NaN for an empty bank."""
    feats, labels = bank
    return topk_accuracy(classifier(feats), labels, k) if len(labels) else float("nan")


def informative_topk(k: int, num_classes: int) -> bool:
    """Whether top-``k`` accuracy is worth reporting: with ``k >= num_classes`` every label is
    among the top k scores, so it is 100% by construction (top-5 with 5 classes or fewer)."""
    return k < num_classes


def fit_linear(
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor],
    num_classes: int,
    cfg: LinearConfig,
    seed: int = 0,
    on_epoch=None,
) -> LinearResult:
    """Train ``nn.Linear`` on ``train`` features with SGD + cosine; keep the epoch best on ``val``.

    ``train``/``val`` are ``(features [n, F], labels [n])``. Features are standardised with the
    training mean/std (folded into the returned classifier), which makes one learning rate fit
    encoders of any scale. With ``cfg.solver == "logistic"``, L2-regularised multinomial logistic
    regression is fitted instead, on the raw features, once per C of :data:`LOGISTIC_C`, and
    the C best on ``val`` is kept (the first of equals).

    Args:
        train: training features and labels.
        val: validation features and labels (may be empty: val top-1 0 then, the first epoch
            wins).
        num_classes: output size K.
        cfg: ``linear.*``: the solver; for SGD epochs, batch size, lr (momentum 0.9, cosine, no
            warm-up), weight decay.
        seed: seeds the initialisation and the batch order.
        on_epoch: optional ``on_epoch(position, {"loss", "lr", ..., "val_top1"})`` after every
            epoch (for the logistic solver after every fit, with ``"C"`` and without ``"lr"``).

    Returns:
        A :class:`LinearResult` whose ``classifier`` is an ``nn.Linear(F, K)`` on raw features.
    """
    if cfg.solver == "logistic":
        return _fit_logistic(train, val, num_classes, on_epoch)
    feats, labels = train
    mean, std = feats.mean(0), feats.std(0).clamp_min(1e-6)
    classifier = nn.Linear(feats.shape[1], num_classes)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        classifier.reset_parameters()
    optimizer = torch.optim.SGD(classifier.parameters(), lr=cfg.lr, momentum=0.9,
                                weight_decay=cfg.weight_decay)
    x = (feats - mean) / std
    xv = (val[0] - mean) / std
    n = x.shape[0]
    steps = max(1, -(-n // cfg.batch_size))

    def epoch_batches(epoch: int, start: int):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000 + epoch))
        for i in range(start, steps):
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            yield x[idx], labels[idx]

    def step_fn(batch):
        inputs, targets = batch
        return {"loss": nn.functional.cross_entropy(classifier(inputs), targets)}

    best = {"top1": -1.0, "epoch": 0, "state": None}
    history: list[dict[str, float]] = []

    def after_epoch(position: Position, summary: dict[str, float]) -> None:
        with torch.no_grad():
            top1 = topk_accuracy(classifier(xv), val[1]) if len(xv) else 0.0
        history.append({"epoch": position.epoch, "loss": summary["loss"], "val_top1": top1})
        if top1 > best["top1"]:
            best.update(top1=top1, epoch=position.epoch, state=copy.deepcopy(classifier.state_dict()))
        if on_epoch is not None:
            on_epoch(position, {**summary, "val_top1": top1})

    spec = LoopSpec(epochs=cfg.epochs, steps_per_epoch=steps, peak_lr=cfg.lr)
    set_lr(optimizer, cfg.lr)
    train_loop(classifier, step_fn, epoch_batches, optimizer, spec, Position(), on_epoch=after_epoch,
               stage="linear")
    classifier.load_state_dict(best["state"])
    return LinearResult(_fold_standardisation(classifier, mean, std), best["epoch"], best["top1"], history)


def _fit_logistic(train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor], num_classes: int,
                  on_epoch=None) -> LinearResult:
    """:func:`fit_linear` for ``linear.solver=logistic``: one scikit-learn fit per C, the best on ``val``."""
    from sklearn.linear_model import LogisticRegression

    x, y = train[0].numpy(), train[1].numpy()
    best: LinearResult | None = None
    history: list[dict[str, float]] = []
    for i, c in enumerate(LOGISTIC_C, start=1):
        classifier = _as_linear(LogisticRegression(C=c, max_iter=2000).fit(x, y), num_classes, train[0].dtype)
        with torch.no_grad():
            loss = nn.functional.cross_entropy(classifier(train[0]), train[1]).item()
        top1 = bank_accuracy(classifier, val) if len(val[1]) else 0.0
        history.append({"epoch": i, "C": c, "loss": loss, "val_top1": top1})
        if best is None or top1 > best.val_top1:
            best = LinearResult(classifier, i, top1, history, C=c)
        if on_epoch is not None:
            on_epoch(Position(epoch=i), {"loss": loss, "val_top1": top1, "C": c})
    return best


def _as_linear(fit, num_classes: int, dtype: torch.dtype) -> nn.Linear:
    """scikit-learn's fitted logistic regression as ``nn.Linear(F, K)`` with the same
    probabilities: its one binary row ``z`` becomes logits ``(-z/2, z/2)``; a class the training
    split lacks gets a logit so low that it is never predicted."""
    coef, bias = torch.as_tensor(fit.coef_, dtype=dtype), torch.as_tensor(fit.intercept_, dtype=dtype)
    if len(fit.classes_) == 2:
        coef, bias = torch.cat([-coef, coef]) / 2, torch.cat([-bias, bias]) / 2
    linear = nn.Linear(coef.shape[1], num_classes).to(dtype)
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.fill_(-1e4)
        rows = torch.as_tensor(fit.classes_, dtype=torch.long)
        linear.weight[rows] = coef
        linear.bias[rows] = bias
    return linear


def _fold_standardisation(classifier: nn.Linear, mean: Tensor, std: Tensor) -> nn.Linear:
    """Return a Linear on raw features equal to ``classifier((x - mean) / std)``."""
    folded = nn.Linear(classifier.in_features, classifier.out_features)
    with torch.no_grad():
        folded.weight.copy_(classifier.weight / std)
        folded.bias.copy_(classifier.bias - (classifier.weight / std) @ mean)
    return folded
