"""The analysis of a study, from its run summaries alone: plain data in, plain data out, nothing
drawn or written (that is :mod:`.render`'s and :mod:`.plots`'s).

- :func:`analyse`: a controlled comparison. Every metric as a mean with its 95% t interval over
  seeds, paired differences against each cross-entropy row with p-values, robustness split by
  whether a training augmentation imitates the corruption (both ways), mCE / relative mCE from
  the error tables of each run and of the ce run of the same seed, accuracy and ECE of the same
  kind of classifier for every method (eval.json's ``probe``), the pre-training budget.
- :func:`summarise`: `supcon compare --presets` (mean and sample std over seeds per metric).
- :func:`severity_curves`, :func:`mean_over_runs`: what the figures and tables of both show.

Every mean, standard deviation and interval comes from :mod:`.stats`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..eval.imitation import imitated
from .eval_corruptions import against_reference, as_table
from .stats import (
    LEVEL,
    Interval,
    Paired,
    mean,
    mean_interval,
    mean_std,
    paired_difference,
    verdict,
)

REFERENCE = "ce"  # the row every other row's mCE and paired differences are measured against


@dataclass(frozen=True)
class Metric:
    """A reported number: how it is titled, rounded, and which direction is better."""

    key: str
    title: str
    decimals: int
    higher_is_better: bool


ACCURACY = [
    Metric("clean_top1", "clean top-1 (%)", 2, True),
    Metric("knn_top1", "kNN top-1 (%)", 2, True),
    Metric("ece", "ECE", 4, False),
    Metric("corrupted_ece", "ECE under corruption", 4, False),
    # the same kind of classifier for every method: a linear probe on the frozen encoder
    Metric("probe_top1", "probe top-1 (%)", 2, True),
    Metric("probe_ece", "probe ECE", 4, False),
    Metric("probe_corrupted_ece", "probe ECE under corruption", 4, False),
]
ROBUSTNESS = [
    Metric("corrupted_top1", "corrupted top-1, all (%)", 2, True),
    Metric("corrupted_top1_unimitated", "corrupted top-1, unimitated (%)", 2, True),
    Metric("mce", "mCE, all", 3, False),
    Metric("mce_unimitated", "mCE, unimitated", 3, False),
    Metric("mce_imitated", "mCE, imitated", 3, False),
    Metric("relative_mce", "relative mCE, all", 3, False),
    Metric("relative_mce_reliable", "relative mCE, reliable", 3, False),
]
METRICS = {m.key: m for m in ACCURACY + ROBUSTNESS}
RELATIVE = ("mce", "mce_unimitated", "mce_imitated", "relative_mce", "relative_mce_reliable")  # 1 for the reference


def data_info(summaries: Mapping[str, list[dict]]) -> dict[str, int]:
    """Channels and image side of the data set (from the first summary that records them)."""
    for runs in summaries.values():
        for s in runs:
            if s.get("data_info"):
                return s["data_info"]
    return {"channels": 1, "image_size": 28}


def run_metrics(summary: dict, reference: dict | None, unimitated: list[str],
                reliable: list[str]) -> dict[str, float | None]:
    """The metrics of one run (``reference``: the ce run of the same seed). The imitated
    corruptions are the evaluated ones not in ``unimitated``; the probe's metrics are None for
    an evaluation made before eval.json had a ``probe``."""
    e = summary["eval"]
    out: dict[str, float | None] = dict.fromkeys(METRICS)
    out.update(clean_top1=e["linear"]["top1"], knn_top1=e["knn"]["top1"], ece=e["calibration"]["ece"])
    probe = e.get("probe") or {}
    out.update(probe_top1=probe.get("top1"), probe_ece=probe.get("ece"))
    if probe.get("ece_per_severity"):
        out["probe_corrupted_ece"] = mean(probe["ece_per_severity"][1:])
    c = e.get("corruptions")
    if not c:
        return out
    out["corrupted_top1"] = c["mean_corrupted_top1"]
    out["corrupted_top1_unimitated"] = mean(mean(c["top1"][n]) for n in unimitated if n in c["top1"])
    out["corrupted_ece"] = mean(c["ece_per_severity"][1:])
    ref = (reference or {}).get("eval", {}).get("corruptions") if reference else None
    if ref:
        scores = against_reference(as_table(c), as_table(ref))
        out["mce"], out["relative_mce"] = scores["mce"], scores["relative_mce"]
        out["mce_unimitated"] = mean(scores["ce"].get(n) for n in unimitated)
        out["mce_imitated"] = mean(v for n, v in scores["ce"].items() if n not in unimitated)
        out["relative_mce_reliable"] = mean(scores["relative_ce"].get(n) for n in reliable)
    return out


def reference_drop(summary: dict, name: str) -> float | None:
    """The run's own mean drop in top-1 under corruption ``name`` (points, mean over severities)."""
    c = (summary.get("eval") or {}).get("corruptions")
    if not c or name not in c["error"]:
        return None
    return 100.0 * (mean(c["error"][name]) - c["clean"]["error"])


def analyse(rows: Sequence[Mapping[str, Any]], design: Mapping[str, Any], selection: Mapping[str, Any],
            summaries: Mapping[str, list[dict]]) -> dict[str, Any]:
    """Everything a controlled comparison reports, as plain data (written to summary.json).

    Args:
        rows: the compared rows in table order, ``{"key", "label", "method", "augmentation",
            "lr", "temperature"}`` (the settings chosen on validation); ``key`` names the row's
            runs in ``summaries``; ``ce`` is the reference.
        design: ``{"augmentation", "budget", "lr_grid", "temperature_grid", "unreliable_below",
            "seeds"}``: what the comparison shares and how it chose.
        selection: ``{row key: {"chosen", "label", "grid"}}``, recorded as given.
        summaries: ``{row key: [run summary per seed]}`` (:mod:`.record`).
    """
    keys = [r["key"] for r in rows]
    refs = summaries[REFERENCE]
    info = data_info(summaries)
    policies = list(dict.fromkeys(r["augmentation"] for r in rows))
    first = summaries[keys[0]][0]["eval"]
    names = list((first.get("corruptions") or {}).get("top1", {}))
    # which corruptions the policies imitate; nothing to say when none was evaluated (text runs)
    seen = imitated(policies, channels=info["channels"], image_size=info["image_size"]) if names else {}
    unimitated = [n for n in names if n not in seen]
    drops = {n: mean_interval([reference_drop(s, n) for s in refs]) for n in names}
    threshold = design["unreliable_below"]
    reliable = [n for n in names if drops[n].mean is not None and drops[n].mean >= threshold]
    per_seed = {r: [run_metrics(s, refs[k] if k < len(refs) else None, unimitated, reliable)
                    for k, s in enumerate(summaries[r])] for r in keys}
    values = {r: {m: [x[m] for x in per_seed[r]] for m in METRICS} for r in keys}
    intervals = {r: {m: mean_interval(v) for m, v in values[r].items()} for r in keys}
    baselines = [r["key"] for r in rows if r["method"] == "ce"]
    paired = {f"{r} vs {b}": {m: paired_common(values[r][m], values[b][m]) for m in METRICS}
              for b in baselines for r in keys if r != b}
    return {
        "level": LEVEL, "seeds": design["seeds"], "rows": [dict(r) for r in rows],
        "design": {"augmentation": design["augmentation"], "budget": design["budget"],
                   "lr_grid": list(design["lr_grid"]), "temperature_grid": list(design["temperature_grid"]),
                   "training_policies": policies, "imitated": seen, "unimitated": unimitated,
                   "imitated_evaluated": [n for n in names if n not in unimitated],
                   "unreliable_below": threshold, "reliable": reliable, "corruptions": names,
                   "data_info": info},
        "selection": selection,
        "values": values, "intervals": intervals, "paired": paired, "baselines": baselines,
        "per_corruption": _per_corruption(summaries, keys, names, refs, drops, reliable),
        "budget": _budget(keys, summaries),
    }


def paired_common(a: list, b: list) -> Paired:
    """Paired difference over the seeds both rows trained (a row may train fewer, e.g. simclr)."""
    n = min(len(a), len(b))
    return paired_difference(a[:n], b[:n])


def _per_corruption(summaries, rows, names, refs, drops, reliable) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in names:
        top1 = {r: [mean(s["eval"]["corruptions"]["top1"][n]) for s in summaries[r]] for r in rows}
        ce, rel = {}, {}
        for r in rows:
            ce[r], rel[r] = [], []
            for k, s in enumerate(summaries[r]):
                scores = against_reference(as_table(s["eval"]["corruptions"]),
                                           as_table(refs[k]["eval"]["corruptions"]))
                ce[r].append(scores["ce"].get(n))
                rel[r].append(scores["relative_ce"].get(n))
        out[n] = {
            "reference_drop": drops[n], "reliable": n in reliable,
            "top1": {r: mean_interval(v) for r, v in top1.items()},
            "top1_difference": {r: paired_common(top1[r], top1[REFERENCE]) for r in rows if r != REFERENCE},
            "ce": {r: mean_interval(v) for r, v in ce.items()},
            "ce_difference": {r: paired_common(ce[r], ce[REFERENCE]) for r in rows if r != REFERENCE},
            "relative_ce": {r: mean_interval(v) for r, v in rel.items()},
        }
    return out


def _budget(rows: list[str], summaries) -> dict[str, Any]:
    out = {}
    for key in rows:
        runs = summaries[key]
        cfg = runs[0]["config"]
        out[key] = {
            "epochs": cfg["train"]["epochs"], "views": cfg["data"]["n_views"],
            "batch_size": cfg["train"]["batch_size"], "steps": runs[0]["results"].get("steps"),
            "encoder_passes": runs[0]["encoder_passes"],
            "pretrain_time_s": mean_interval([s.get("pretrain_time_s") for s in runs]),
            "train_time_s": mean_interval([s["results"].get("train_time_s") for s in runs]),
            "machines": [s.get("machine") or "not recorded" for s in runs],
        }
    return out


def is_bold(analysis: dict, row: str, metric: str) -> bool:
    """Whether ``row`` is better than every other row on ``metric`` by the paired 95% interval
    (with at least 2 seeds): the only cells a report may bold."""
    m = METRICS[metric]
    values = analysis["values"]
    others = [r for r in values if r != row]
    return bool(others) and all(
        verdict(paired_common(values[row][metric], values[o][metric]), m.higher_is_better) == "better"
        for o in others)


def to_json(value: Any) -> Any:
    """An analysis with intervals and paired differences as plain dicts."""
    if isinstance(value, (Interval, Paired)):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


# ------------------------------------------------------------------------------ presets, figures
# key, column title, how to read it from an evaluation (eval.json), decimals
PRESET_METRICS: list[tuple[str, str, Callable[[dict], float | None], int]] = [
    ("clean_top1", "clean top-1 (%)", lambda e: e["linear"]["top1"], 2),
    ("knn_top1", "kNN top-1 (%)", lambda e: e["knn"]["top1"], 2),
    ("ece", "ECE", lambda e: e["calibration"]["ece"], 4),
    ("corrupted_top1", "corrupted top-1 (%)",
     lambda e: (e.get("corruptions") or {}).get("mean_corrupted_top1"), 2),
    ("mce", "mCE", lambda e: (e.get("reference") or {}).get("mce"), 3),
    ("relative_mce", "relative mCE", lambda e: (e.get("reference") or {}).get("relative_mce"), 3),
]


def summarise(evals: Mapping[str, list[dict]]) -> dict[str, dict[str, Any]]:
    """``{method: {metric: {"mean", "std", "n", "values"}}}`` over the seeds' evaluations."""
    return {method: {key: mean_std([read(e) for e in runs]) for key, _, read, _ in PRESET_METRICS}
            for method, runs in evals.items()}


def mean_over_runs(evals: Sequence[dict], corruption: str) -> float | None:
    """Top-1 under ``corruption``, mean over its severities and the runs' evaluations."""
    return mean(v for e in evals for v in e["corruptions"]["top1"][corruption])


def severity_curves(evals: Mapping[str, Sequence[dict]]) -> dict[str, dict[str, Any]]:
    """Per row, mean over corruptions of top-1 and of ECE per severity (clean first): the seeds'
    mean and sample std at each severity (std None for one seed), and the number of seeds."""
    out = {}
    for label, runs in evals.items():
        curves = {"n": len(runs)}
        for key, field in (("top1", "mean_top1_per_severity"), ("ece", "ece_per_severity")):
            per_seed = [e["corruptions"][field] for e in runs]
            stats = [mean_std(list(column)) for column in zip(*per_seed, strict=True)]
            curves[key] = {"mean": [s["mean"] for s in stats], "std": [s["std"] for s in stats]}
        out[label] = curves
    return out
