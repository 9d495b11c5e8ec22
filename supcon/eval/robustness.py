"""Corruption robustness: top-1 error and ECE under each corruption and severity, and the
ImageNet-C summary numbers (Hendrycks & Dietterich, 2019), with a reference run in place of AlexNet.

For model f, corruption c and severity s with top-1 error ``E^f_{s,c}``:

- ``CE^f_c = sum_s E^f_{s,c} / sum_s E^ref_{s,c}``; **mCE** is the mean of ``CE^f_c`` over c.
- ``relative CE^f_c = sum_s (E^f_{s,c} - E^f_clean) / sum_s (E^ref_{s,c} - E^ref_clean)``;
  **relative mCE** is its mean over c (how much *more* the model degrades than the reference).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from supcon.eval.calibration import expected_calibration_error
from supcon.eval.corruptions import CORRUPTIONS, SEVERITIES, check_uint8_images, corrupt

Errors = Mapping[str, Sequence[float]]
SINGLE = ""  # the head name of a classifier that returns one logits tensor


def default_preprocess(images: Tensor) -> Tensor:
    """uint8 ``[B, C, H, W]`` -> float32 in [0, 1] (no normalisation)."""
    return images.float() / 255.0


@torch.no_grad()
def corruption_errors(
    classifier: Callable[[Tensor], Tensor],
    images: Tensor,
    labels: Tensor,
    *,
    preprocess: Callable[[Tensor], Tensor] = default_preprocess,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = SEVERITIES,
    batch_size: int = 500,
    seed: int = 0,
    device: str | torch.device = "cpu",
    n_bins: int = 15,
    on_step: Callable[[], None] | None = None,
) -> dict:
    """Evaluate ``classifier`` on clean and corrupted copies of the test images.

    Args:
        classifier: callable (e.g. encoder + linear head) mapping preprocessed float images
            ``[B, C, H, W]`` to logits ``[B, K]``, or to ``{head name: logits [B, K]}`` (several
            heads on one encoder pass over the same corrupted images); an ``nn.Module`` is put in
            eval mode (its mode is restored afterwards).
        images: the test set as ``uint8 [n, C, H, W]``.
        labels: ``[n]`` integer classes.
        preprocess: batch transform uint8 ``[B, C, H, W]`` -> float ``[B, C, S, S]`` applied after
            the corruption (e.g. scaling and the data set's mean/std normalisation).
        corruptions: names from :data:`CORRUPTIONS` (default: all).
        severities: which of 1..5 to run.
        batch_size: images per forward pass; also the unit of the corruption's random stream
            (batch j of corruption c at severity s uses seed ``f(seed, c, s, j)``), so results
            are reproducible for a fixed batch size.
        seed: base seed of every corruption draw.
        device: where the classifier runs.
        n_bins: ECE bins.
        on_step: called after each pass over the images: the clean one, then one per
            corruption and severity (``1 + len(corruptions) * len(severities)`` calls; progress).

    Returns:
        ``{"clean": {"error", "ece"}, "severities": [...], "error": {name: [E per severity]},
        "ece": {name: [ECE per severity]}}``; errors are fractions in [0, 1]. The ``error`` map
        is what :func:`mce` and :func:`relative_mce` take. With several heads these are the
        first head's, and ``"heads": {name: {"clean", "error", "ece"}}`` holds every head's.

    Raises:
        ValueError: images not uint8 ``[n, C, H, W]``, labels not ``[n]``, unknown or no
            corruptions, severities outside 1..5, ``batch_size < 1``, or a classifier output
            that is not ``[B, K]``.
    """
    names = list(CORRUPTIONS) if corruptions is None else list(corruptions)
    _check_eval_args(images, labels, names, severities, batch_size)
    was_training = isinstance(classifier, nn.Module) and classifier.training
    if isinstance(classifier, nn.Module):
        classifier.eval()
    evaluate = functools.partial(
        _evaluate, classifier=classifier, images=images, labels=labels, preprocess=preprocess,
        batch_size=batch_size, seed=seed, device=device, n_bins=n_bins,
    )  # fmt: skip

    def run(name: str | None, severity: int) -> dict:
        out = evaluate(name, severity)
        if on_step is not None:
            on_step()
        return out

    try:
        per_head = {head: {"clean": {"error": e, "ece": c}, "error": {}, "ece": {}}
                    for head, (e, c) in run(None, 0).items()}
        for name in names:
            per_severity = [run(name, s) for s in severities]
            for head, table in per_head.items():
                table["error"][name] = [p[head][0] for p in per_severity]
                table["ece"][name] = [p[head][1] for p in per_severity]
    finally:
        if was_training:
            classifier.train()
    first = next(iter(per_head.values()))
    result = {"clean": first["clean"], "severities": list(severities), "error": first["error"],
              "ece": first["ece"]}
    if SINGLE not in per_head:
        result["heads"] = per_head
    return result


def severity_curve(result: dict) -> list[float]:
    """Mean top-1 error over corruptions at each severity of a :func:`corruption_errors` result
    (the clean error first), for accuracy-vs-severity plots."""
    per_severity = zip(*result["error"].values(), strict=True)
    return [result["clean"]["error"]] + [sum(e) / len(e) for e in per_severity]


def compare_to_reference(result: dict, reference: dict) -> dict:
    """mCE and relative mCE of one :func:`corruption_errors` result against a reference run's.

    Raises:
        ValueError: when the two runs used different severities or corruptions.
    """
    if result["severities"] != reference["severities"]:
        raise ValueError(
            f"result and reference used different severities: {result['severities']} "
            f"and {reference['severities']}"
        )
    return {
        "mce": mce(result["error"], reference["error"]),
        "relative_mce": relative_mce(
            result["error"],
            result["clean"]["error"],
            reference["error"],
            reference["clean"]["error"],
        ),
    }


def _batch_seed(seed: int, name: str, severity: int, batch: int) -> int:
    """Seed of one batch's corruption draw: distinct per (corruption, severity, batch), and
    independent of which other corruptions are evaluated."""
    c_index = list(CORRUPTIONS).index(name)
    return (((seed * 64 + c_index) * 8 + severity) * 1_000_003 + batch) % 2**63


def _evaluate(
    name, severity, *, classifier, images, labels, preprocess, batch_size, seed, device, n_bins
) -> dict[str, tuple[float, float]]:
    """Top-1 error and ECE of each head under one corruption and severity (``name=None``: clean)."""
    logits: dict[str, list[Tensor]] = {}
    for j, start in enumerate(range(0, images.shape[0], batch_size)):
        batch = images[start : start + batch_size]
        if name is not None:
            batch = corrupt(batch, name, severity, seed=_batch_seed(seed, name, severity, j))
        out = classifier(preprocess(batch).to(device))
        for head, head_logits in (out.items() if isinstance(out, Mapping) else [(SINGLE, out)]):
            if head_logits.dim() != 2 or head_logits.shape[0] != batch.shape[0]:
                raise ValueError(f"classifier must return logits [B, K], got {tuple(head_logits.shape)}")
            logits.setdefault(head, []).append(head_logits.float().cpu())
    truth = labels.long().cpu()
    scores = {}
    for head, parts in logits.items():
        joined = torch.cat(parts)
        error = (joined.argmax(dim=1) != truth).double().mean().item()
        scores[head] = (error, expected_calibration_error(joined, truth, n_bins, from_logits=True).ece)
    return scores


def _check_eval_args(images, labels, names, severities, batch_size) -> None:
    check_uint8_images(images)
    if not isinstance(labels, Tensor) or labels.shape != (images.shape[0],):
        what = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"labels must be [{images.shape[0]}] to match images, got {what}")
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown or not names:
        raise ValueError(f"corruptions must be names from {list(CORRUPTIONS)}, got {list(names)}")
    if not severities or any(s not in SEVERITIES for s in severities):
        raise ValueError(
            f"severities must be a non-empty subset of {SEVERITIES}, got {list(severities)}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def mce(errors: Errors, ref_errors: Errors) -> dict:
    """Corruption errors normalised by a reference model, and their mean (mCE).

    Args:
        errors: ``{corruption: [E_{s,c} for each severity]}`` of the evaluated model.
        ref_errors: the same for the reference model (same corruptions and severities).

    Returns:
        ``{"per_corruption": {c: CE_c}, "mean": mCE}`` with
        ``CE_c = sum_s E_{s,c} / sum_s E^ref_{s,c}``.

    Raises:
        ValueError: mismatched corruptions/severity counts, or a reference sum of 0.
    """
    _check_errors(errors, ref_errors)
    per = {}
    for c in errors:
        denominator = sum(ref_errors[c])
        if denominator == 0:
            raise ValueError(f"ref_errors[{c!r}] sums to 0 over severities; CE is undefined")
        per[c] = sum(errors[c]) / denominator
    return {"per_corruption": per, "mean": sum(per.values()) / len(per)}


def relative_mce(
    errors: Errors, clean_error: float, ref_errors: Errors, ref_clean_error: float
) -> dict:
    """Relative corruption errors (degradation beyond the clean error) and their mean.

    ``relative CE_c = sum_s (E_{s,c} - E_clean) / sum_s (E^ref_{s,c} - E^ref_clean)``.
    Returns ``{"per_corruption": {c: value}, "mean": relative mCE}``.

    Raises:
        ValueError: mismatched inputs, or a reference whose corrupted errors sum to exactly its
            clean error times the number of severities (no degradation to normalise by).
    """
    _check_errors(errors, ref_errors)
    per = {}
    for c in errors:
        denominator = sum(e - ref_clean_error for e in ref_errors[c])
        if denominator == 0:
            raise ValueError(
                f"ref_errors[{c!r}] minus ref_clean_error sums to 0 over severities "
                "(the reference does not degrade); relative CE is undefined"
            )
        per[c] = sum(e - clean_error for e in errors[c]) / denominator
    return {"per_corruption": per, "mean": sum(per.values()) / len(per)}


def _check_errors(errors: Errors, ref_errors: Errors) -> None:
    if not errors:
        raise ValueError("errors must name at least one corruption, got none")
    if set(errors) != set(ref_errors):
        raise ValueError(
            f"errors and ref_errors must cover the same corruptions, got {sorted(errors)} "
            f"and {sorted(ref_errors)}"
        )
    for c in errors:
        if len(errors[c]) != len(ref_errors[c]) or len(errors[c]) == 0:
            raise ValueError(
                f"errors[{c!r}] and ref_errors[{c!r}] must list the same number of severities, "
                f"got {len(errors[c])} and {len(ref_errors[c])}"
            )
