"""Stage 2 of `supcon train`: the linear stage on the frozen encoder (contrastive methods) or
ce's own classifier, selected on the validation split; the test split is read once, at the end."""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

from .. import distributed as dist
from .. import run_folder
from ..config import Config
from ..data import Splits, eval_loader
from ..eval.knn import extract_features
from .linear import bank_accuracy, fit_linear, fit_units, informative_topk
from .logger import MetricsLogger

log = logging.getLogger("supcon")


def final_evaluation(cfg: Config, splits: Splits, model: nn.Module, multi_view: bool, device: torch.device,
                     logger: MetricsLogger, test: bool = True) -> dict:
    """``val_top1`` (and for contrastive methods ``linear_best_epoch``, or ``linear_C`` with
    ``linear.solver=logistic``; ``test_top1``/``test_top5`` unless ``test`` is False,
    ``test_top5`` only with more than 5 classes) of ``model`` (an encoder + head or +
    classifier), rounded to 4 digits;
    the main process also writes ``classifier.safetensors`` into the logger's folder.

    Raises:
        RuntimeError: the encoder changed during the linear stage (it must stay frozen).
    """
    info = splits.info
    encoder = model.encoder
    loaders = {name: eval_loader(getattr(splits, name), info, batch_size=cfg.linear.batch_size,
                                 seed=cfg.train.seed)
               for name in ("train", "val", "test") if test or name != "test"}
    banks = {name: extract_features(encoder, loader, device) for name, loader in loaders.items()}
    if not multi_view:  # the model holds its own classifier
        classifier = copy.deepcopy(model.classifier).cpu().eval()
        selected = {"val_top1": bank_accuracy(classifier, banks["val"], 1)}
    else:
        fingerprint = _fingerprint(encoder)

        total = fit_units(cfg.linear)[0]

        def on_epoch(pos, summary):
            logger.log("linear_epoch", pos.epoch, summary)
            what = f"C={summary['C']:g}" if "C" in summary else "epoch"
            log.info("linear %s %d/%d  loss %.4f  val top-1 %.2f%%", what, pos.epoch, total,
                     summary["loss"], summary["val_top1"])

        fitted = fit_linear(banks["train"], banks["val"], info.num_classes, cfg.linear, cfg.train.seed, on_epoch)
        if not all(torch.equal(a, b) for a, b in zip(_fingerprint(encoder), fingerprint, strict=True)):
            raise RuntimeError("the encoder changed during the linear stage")
        classifier = fitted.classifier
        selected = {"val_top1": fitted.val_top1, **fitted.selected()}
    results = {"test_top1": bank_accuracy(classifier, banks["test"], 1)} if test else {}
    if test and informative_topk(5, info.num_classes):
        results["test_top5"] = bank_accuracy(classifier, banks["test"], 5)
    results.update(selected)
    if dist.is_main() and logger.folder is not None:
        # one format for every method: the linear layer's weight and bias
        run_folder.save_classifier(getattr(classifier, "fc", classifier), logger.folder)
    logger.log("final", 0, results)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in results.items()}


def _fingerprint(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.state_dict().values()]
