"""`supcon eval`: every evaluation of a finished run, written as ``eval.json`` plus PNGs.

On the run's own data the files go into the run folder; a transfer evaluation (``data`` another
data set) goes into ``<run>/transfer-<data>/`` so it never overwrites the run's own results.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from ..distributed import resolve_device
from ..engine.components import method_from_config
from ..engine.linear import bank_accuracy, fit_linear, fit_units, informative_topk
from ..engine.progress import Phase, bars_shown
from ..eval.calibration import expected_calibration_error, reliability_diagram
from ..eval.embeddings import embed_2d, plot_embedding
from ..eval.knn import knn_top1
from ..run_folder import EVAL as EVAL_NAME
from ..run_folder import RunError
from . import eval_corruptions
from .eval_data import Target, check_same_data, features, load_target
from .eval_gradients import gradient_summary
from .eval_options import EvalOptions
from .plots import plot_corruption_curves
from .runs import Run, open_run

log = logging.getLogger("supcon")
PLOTS = ("reliability.png", "corruptions.png", "embedding.png", "gradients.png")


def output_folder(run_path: Path, target: Target) -> Path:
    """Where an evaluation writes: the run folder, or ``<run>/transfer-<data>/`` for transfer."""
    return run_path if target.transfer is None else run_path / f"transfer-{target.slug}"


def evaluate_run(run_dir: str | Path, options: EvalOptions | None = None, *,
                 progress: bool = True) -> dict[str, Any]:
    """Evaluate the run in ``run_dir``; write ``eval.json`` and PNGs; return what was written
    (``output``: the folder, ``plots``: the PNGs' names there).

    ``options`` (default ``EvalOptions()``, the CLI's defaults) says what to compute and on
    which data; see docs/evaluation.md for every key of the result. Each phase (features,
    linear probe, kNN, corruptions, embedding, gradients) shows a tqdm bar with its ETA when
    ``progress`` and stderr is a terminal (or a notebook draws bars), else one log line with its ETA.

    Raises:
        RunError: ``run_dir`` or the reference is not a usable finished run, or the reference was
            trained on another data set. Checked before any work starts.
    """
    options = options or EvalOptions()
    run = open_run(run_dir, what="run_dir")
    reference = None
    if options.reference is not None:
        reference = open_run(options.reference, what="reference")
        check_same_data(run, reference)
    device = resolve_device(options.device, what="device")
    target = load_target(run, options.data, options.data_dir)
    out = output_folder(run.path, target)
    out.mkdir(parents=True, exist_ok=True)
    bars = progress and bars_shown()
    banks = features(run.encoder, target, run.cfg, device, bars=bars)
    classifier, linear = _classifier(run, target, banks, bars)
    calibration = _calibration(classifier, banks["test"], out, run, target)
    probe_head, probe = _probe(run, target, banks, linear, calibration, bars)
    result: dict[str, Any] = {
        "run": str(run.path), "output": str(out), "method": run.method,
        "trained_on": run.cfg.data.name,
        "data": target.info.name, "transfer": target.transfer,
        "units": {"top1": "percent", "ece": "fraction in [0, 1]", "error": "fraction in [0, 1]",
                  "mce": "ratio to the reference (1 = as robust as the reference)"},
        "linear": linear, "knn": _knn(banks, target, options, bars),
        "calibration": calibration, "probe": probe,
        "plots": ["reliability.png"], "settings": options.settings(),
    }
    if run.modality == "image":
        _add_corruptions(result, run, reference, target, classifier, options, out, device, bars, probe_head)
    else:
        result["corruptions"] = None
        result["notes"] = [f"corruption robustness is image-only: skipped for this {run.modality} run"]
        log.info(result["notes"][0])
    _add_embedding(result, banks["test"], target, run, options, out, bars)
    if options.gradients and run.head is not None and target.transfer is None and run.modality == "image":
        with Phase("gradients", 1, detail=f"gradient analysis of {options.gradient_batch} augmented test images",
                   bars=bars) as phase:
            result["gradients"] = gradient_summary(run, target, options, out / "gradients.png", device)
            phase.advance()
        result["plots"].append("gradients.png")
    for stale in set(PLOTS) - set(result["plots"]):  # left by an earlier evaluation of this run
        (out / stale).unlink(missing_ok=True)
    result = _rounded(result)
    (out / EVAL_NAME).write_text(json.dumps(result, indent=1) + "\n")
    return result


def _rounded(value: Any, digits: int = 6) -> Any:
    """Floats rounded for a readable eval.json (6 decimals: far below any reported precision),
    except the error tables, kept exact so a cached reference gives the same mCE as a fresh one."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: v if k == "error" else _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v, digits) for v in value]
    return value


def _classifier(run: Run, target: Target, banks, bars: bool = False) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The saved linear classifier (own data) or a new one fitted on the target (transfer)."""
    if target.transfer is None:
        classifier, source = run.classifier, "saved classifier.safetensors"
        val_top1 = bank_accuracy(classifier, banks["val"], 1)
    else:
        with Phase("linear (transfer)", *fit_units(run.cfg.linear), bars=bars) as phase:
            fitted = fit_linear(banks["train"], banks["val"], target.info.num_classes, run.cfg.linear,
                                run.cfg.train.seed, on_epoch=lambda *_: phase.advance())
        classifier, val_top1 = fitted.classifier.eval(), fitted.val_top1
        how = f"{run.cfg.linear.epochs} epochs" if fitted.C is None else f"logistic regression, C={fitted.C:g}"
        source = f"fitted on {target.info.name}'s train split ({how})"
    linear = {"top1": bank_accuracy(classifier, banks["test"], 1)}
    if informative_topk(5, target.info.num_classes):  # else 100% by construction: left out
        linear["top5"] = bank_accuracy(classifier, banks["test"], 5)
    return classifier, {**linear, "val_top1": val_top1, "classifier": source,
                        "test_images": len(banks["test"][1])}


def _probe(run: Run, target: Target, banks, linear: dict[str, Any], calibration: dict[str, Any],
           bars: bool = False) -> tuple[torch.nn.Module | None, dict[str, Any] | None]:
    """A linear probe on the frozen encoder fitted as the linear stage fits one (``fit_linear``
    with ``run.cfg.linear`` and the run's seed on its own train split), so every method's ECE is
    that of the same kind of classifier; a contrastive run's saved classifier already is that
    probe and is reported as it is. Returns the newly fitted head (None when none was fitted)
    and the eval.json entry (None for transfer, whose head already is such a probe)."""
    if target.transfer is not None:
        return None, None
    if method_from_config(run.cfg).multi_view:
        return None, {"top1": linear["top1"], "val_top1": linear["val_top1"], "ece": calibration["ece"],
                      "classifier": "the run's linear stage (saved classifier.safetensors)"}
    cfg = run.cfg.linear
    with Phase("linear probe", *fit_units(cfg), bars=bars) as phase:
        fitted = fit_linear(banks["train"], banks["val"], target.info.num_classes, cfg, run.cfg.train.seed,
                            on_epoch=lambda *_: phase.advance())
    head = fitted.classifier.eval()
    feats, labels = banks["test"]
    with torch.no_grad():
        ece = expected_calibration_error(head(feats), labels, 15, from_logits=True).ece
    return head, {"top1": bank_accuracy(head, banks["test"], 1), "val_top1": fitted.val_top1, "ece": ece,
                  "classifier": f"fitted on the frozen encoder's train split with the linear stage's "
                                f"settings ({cfg.epochs} epochs, chosen on val)"}


def _knn(banks, target: Target, options: EvalOptions, bars: bool = False) -> dict[str, Any]:
    (train, train_y), (test, test_y) = banks["train"], banks["test"]
    k = min(options.knn_k, len(train_y))
    with Phase("kNN", 1, detail=f"{len(test_y)} test vs {len(train_y)} train representations", bars=bars) as phase:
        top1 = knn_top1(train, train_y, test, test_y, k=k, temperature=options.knn_temperature,
                        num_classes=target.info.num_classes)
        phase.advance()
    return {"top1": 100.0 * top1, "k": k, "temperature": options.knn_temperature,
            "bank": f"{len(train_y)} train representations (cosine)"}


@torch.no_grad()
def _calibration(classifier, test_bank, out: Path, run: Run, target: Target) -> dict[str, Any]:
    feats, labels = test_bank
    calib = expected_calibration_error(classifier(feats), labels, 15, from_logits=True)
    reliability_diagram(calib, out / "reliability.png",
                        title=f"{run.method} on {target.info.name} (test split, {len(labels)} images):\n"
                              "reliability of the linear classifier")
    return {"n_bins": 15, **calib.to_dict()}


def _add_corruptions(result, run, reference, target, classifier, options, out, device, bars=False,
                     probe_head=None) -> None:
    if not options.corruption_names:
        result["corruptions"] = None
        if reference is not None:
            result["reference"] = {"run": str(reference.path), "mce": None, "relative_mce": None,
                                   "notes": ["no corruptions evaluated (--corruptions none)"]}
        return
    kwargs = dict(names=options.corruption_names, severities=options.severities,
                  samples=options.corruption_samples, seed=options.seed,
                  batch_size=options.batch_size, device=device, bars=bars)
    table = eval_corruptions.corruption_table(run.encoder, classifier, target, probe=probe_head, **kwargs)
    summary = eval_corruptions.summary(table)
    result["corruptions"] = summary
    if result["probe"] is not None:  # the saved classifier, or the probe's head in the same pass
        result["probe"]["ece_per_severity"] = (summary["ece_per_severity"] if probe_head is None else
                                               eval_corruptions.ece_per_severity(table["heads"]["probe"]))
    plot_corruption_curves(summary, out / "corruptions.png",
                           title=f"{run.method} on {target.info.name}: top-1 under corruption")
    result["plots"].append("corruptions.png")
    if reference is not None:
        ref_table = _reference_table(run, reference, target, table, options, kwargs)
        result["reference"] = {"run": str(reference.path), "method": reference.method,
                               **eval_corruptions.against_reference(table, ref_table)}


def _reference_table(run, reference, target, table, options, kwargs) -> dict:
    """The reference's errors on the same images: this run's own table when it is its own
    reference, the reference's eval.json when made with the same settings, else computed now."""
    if reference.path.resolve() == run.path.resolve():
        return table
    cached = output_folder(reference.path, target) / EVAL_NAME
    if cached.is_file():
        try:
            previous = json.loads(cached.read_text())
            if _same_corruptions(previous.get("settings", {}), options, previous.get("data"), target):
                log.info("reference errors from %s", cached)
                return eval_corruptions.as_table(previous["corruptions"])
        except (ValueError, KeyError, TypeError):
            pass  # unreadable or old format: recompute below
    log.info("computing the reference's corruption errors (%s)", reference.path)
    ref_target = load_target(reference, options.data, options.data_dir)
    ref_classifier = reference.classifier
    if ref_target.transfer is not None:  # the reference gets its own head on the target too
        banks = features(reference.encoder, ref_target, reference.cfg, kwargs["device"], bars=kwargs["bars"],
                         phase="reference features")
        ref_classifier, _ = _classifier(reference, ref_target, banks, kwargs["bars"])
    return eval_corruptions.corruption_table(reference.encoder, ref_classifier, ref_target,
                                             phase="reference corruptions", **kwargs)


def _same_corruptions(settings: dict, options: EvalOptions, data, target: Target) -> bool:
    keys = ("corruption_samples", "corruptions", "severities", "seed", "batch_size")
    mine = options.settings()
    return data == target.info.name and all(settings.get(k) == mine[k] for k in keys)


def _add_embedding(result, test_bank, target: Target, run: Run, options: EvalOptions, out, bars=False) -> None:
    if options.embedding == "none":
        result["embedding"] = None
        return
    feats, labels = test_bank
    idx = eval_corruptions.subsample(len(labels), options.embedding_samples, options.seed)
    method = options.embedding
    shown = {"tsne": "t-SNE", "umap": "UMAP"}[method]
    steps = (options.tsne_iter, "iterations") if method == "tsne" else (1, "passes")
    with Phase(f"embedding ({shown})", *steps, detail=f"{len(idx)} test representations", bars=bars) as phase:
        points = embed_2d(feats[idx], method, seed=options.seed, max_iter=options.tsne_iter,
                          on_progress=lambda done, _: phase.advance(done - phase.done))
        phase.advance(phase.total - phase.done)  # t-SNE may converge before tsne_iter
    plot_embedding(points, labels[idx], target.info.class_names, out / "embedding.png",
                   title=f"{run.method} on {target.info.name}: {shown} of {len(idx)} test "
                         "representations (encoder output),\ncoloured by true class")
    result["embedding"] = {"method": method, "samples": len(idx)}
    result["plots"].append("embedding.png")


def evaluate_if_needed(run_dir: str | Path, options: EvalOptions) -> dict[str, Any]:
    """The run's eval.json when it was made with the same settings (and has every entry of
    today's: ``probe``), else a fresh evaluation."""
    path = Path(run_dir) / EVAL_NAME
    if path.is_file() and options.data is None:
        try:
            previous = json.loads(path.read_text())
        except ValueError:
            previous = {}
        if previous.get("settings") == _rounded(options.settings()) and "probe" in previous:
            log.info("%s: evaluated with these settings, skipping", Path(run_dir).name)
            return previous
    return evaluate_run(run_dir, options)


__all__ = ["EVAL_NAME", "EvalOptions", "RunError", "evaluate_if_needed", "evaluate_run", "output_folder"]
