"""Corruption robustness of a run on a seeded test subsample, and mCE against a reference run.

Errors are measured with :func:`supcon.eval.corruption_errors` on the same subsample, corruption
seed and batch size for the run and its reference, so the two error tables are comparable image
for image. A corruption whose reference error does not change with severity (or is 0) gives a 0
denominator in relative CE (or CE); it is dropped from both means with a note.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..engine.progress import Phase
from ..eval.robustness import compare_to_reference, corruption_errors
from .eval_data import Target, preprocess_fn, uint8_images

ZERO = 1e-12  # sums of error fractions below this are "no change"


def subsample(n_total: int, samples: int, seed: int) -> torch.Tensor:
    """Sorted indices of a seeded subsample of ``min(samples, n_total)`` test images."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n_total, generator=gen)[: min(samples, n_total)].sort().values


def corruption_table(encoder: nn.Module, classifier: nn.Module, target: Target, *,
                     names: Sequence[str], severities: Sequence[int], samples: int, seed: int,
                     batch_size: int, device, bars: bool = False, phase: str = "corruptions",
                     probe: nn.Module | None = None) -> dict:
    """Top-1 error and ECE of ``classifier(encoder(x))`` per corruption and severity, with the
    progress of a :class:`~supcon.engine.progress.Phase` named ``phase`` (one unit per pass).

    Returns :func:`corruption_errors`'s dict plus ``samples`` (images used), ``of`` (test size)
    and ``seed``. With ``probe`` (a second linear head on the same representations), one encoder
    pass serves both: ``heads["probe"]`` holds the probe's ``clean``, ``error`` and ``ece``.
    """
    test = target.splits.test
    idx = subsample(len(test), samples, seed)
    images = uint8_images(test, idx, target.info.image_size)
    labels = test.labels[idx]
    model = (nn.Sequential(encoder, classifier) if probe is None else _TwoHeads(encoder, classifier, probe))
    model = model.to(device).eval()
    detail = (f"{len(names)} types x {len(severities)} severities on {len(idx)} of {len(test)} test "
              "images (and the clean ones)")
    with Phase(phase, 1 + len(names) * len(severities), "passes", detail=detail, bars=bars) as progress:
        table = corruption_errors(model, images, labels, preprocess=preprocess_fn(target.info),
                                  corruptions=list(names), severities=list(severities),
                                  batch_size=batch_size, seed=seed, device=device, on_step=progress.advance)
    return {**table, "samples": len(idx), "of": len(test), "seed": seed}


class _TwoHeads(nn.Module):
    """``{"classifier": logits, "probe": logits}`` from one encoder pass."""

    def __init__(self, encoder: nn.Module, classifier: nn.Module, probe: nn.Module) -> None:
        super().__init__()
        self.encoder, self.classifier, self.probe = encoder, classifier, probe

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.encoder(x)
        return {"classifier": self.classifier(feats), "probe": self.probe(feats)}


def against_reference(table: dict, reference: dict) -> dict:
    """mCE / relative mCE of ``table`` vs ``reference`` (both :func:`corruption_table` dicts),
    over the corruptions whose reference denominators are non-zero.

    Returns ``{"mce", "relative_mce", "ce": {c: CE_c}, "relative_ce": {c: rCE_c}, "dropped":
    [c, ...], "notes": [...]}``; ``mce``/``relative_mce`` are None when every corruption is dropped.
    """
    kept, notes = [], []
    ref_clean = reference["clean"]["error"]
    for c, ref_errors in reference["error"].items():
        if c not in table["error"]:
            continue
        if sum(ref_errors) < ZERO:
            notes.append(f"{c}: dropped, the reference makes no error under it (CE undefined)")
        elif abs(sum(e - ref_clean for e in ref_errors)) < ZERO:
            notes.append(f"{c}: dropped, the reference's error does not change under it "
                         "(relative CE undefined)")
        else:
            kept.append(c)
    dropped = [c for c in table["error"] if c not in kept]
    if not kept:
        return {"mce": None, "relative_mce": None, "ce": {}, "relative_ce": {}, "dropped": dropped,
                "notes": notes or ["no corruption in common with the reference"]}
    scores = compare_to_reference(_only(table, kept), _only(reference, kept))
    return {"mce": scores["mce"]["mean"], "relative_mce": scores["relative_mce"]["mean"],
            "ce": scores["mce"]["per_corruption"], "relative_ce": scores["relative_mce"]["per_corruption"],
            "dropped": dropped, "notes": notes}


def _only(table: dict, names: list[str]) -> dict:
    return {**table, "error": {c: table["error"][c] for c in names}}


def summary(table: dict) -> dict:
    """The eval.json form of a corruption table (at least one corruption): top-1 in %, ECE, and
    the means over corruptions per severity (clean first)."""
    sev = table["severities"]
    top1 = {c: [100.0 * (1 - e) for e in errs] for c, errs in table["error"].items()}
    mean_top1 = [sum(v[i] for v in top1.values()) / len(top1) for i in range(len(sev))]
    clean_top1 = 100.0 * (1 - table["clean"]["error"])
    return {
        "samples": table["samples"], "of": table["of"], "seed": table["seed"],
        "note": f"seeded subsample of {table['samples']} of the {table['of']} test images",
        "severities": sev,
        "clean": {"top1": clean_top1, "ece": table["clean"]["ece"], "error": table["clean"]["error"]},
        "top1": top1, "ece": table["ece"], "error": table["error"],
        "mean_top1_per_severity": [clean_top1, *mean_top1],
        "ece_per_severity": ece_per_severity(table),
        "mean_corrupted_top1": sum(mean_top1) / len(mean_top1),
    }


def ece_per_severity(table: dict) -> list[float]:
    """The clean ECE, then the mean ECE over corruptions at each severity, of a table (or of one
    of its ``heads``)."""
    per_corruption = table["ece"].values()
    return [table["clean"]["ece"], *(sum(v) / len(v) for v in zip(*per_corruption, strict=True))]


def as_table(summary_: dict) -> dict:
    """Back from :func:`summary` to the error-table form :func:`against_reference` reads."""
    return {"severities": summary_["severities"], "clean": summary_["clean"],
            "error": summary_["error"], "ece": summary_["ece"]}
