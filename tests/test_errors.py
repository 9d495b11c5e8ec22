"""Every error a user can reach from the `supcon` command line (docs/errors.md), triggered as a user
would, from a fresh folder: one ``error: ...`` line on stderr, the documented exit code, no traceback.

Also: the CLI help (every option documented, its default shown once) and ``supcon --version``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib.metadata
import io
import logging
import os
import re
import shutil
import subprocess
import sys
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from supcon import cli
from supcon.config import build_config, get_value

DOC = Path(__file__).parents[1] / "docs" / "errors.md"
# The smallest run that trains the whole pipeline on digits (about a second of CPU).
TINY = ["--data", "digits", "--method", "ce", "--workers", "0", "--batch-size", "64", "--epochs", "1",
        "model.encoder_options={widths: [8], blocks: [1], strides: [2]}", "linear.epochs=1"]
TORCHRUN = {"RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29599"}


@dataclass(frozen=True)
class Case:
    """``supcon ARGV`` after ``setup``; ``message`` is the documented line ("…": a path or value)."""

    id: str
    argv: tuple[str, ...]
    message: str
    code: int = 2
    setup: Callable[[Path, Path, pytest.MonkeyPatch], None] | None = None
    logs: bool = False  # the run had started: its log lines come before the error line


@dataclass
class Ctx:
    tmp: Path  # this case's empty folder
    run: Path  # a finished tiny ce run (shared: copy it before breaking it)


# ------------------------------------------------------------------------------------ setups
def _images(root: Path, classes: dict[str, int]) -> Path:
    for name, count in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(root / name / f"{i}.png")
    return root


def _copy_run(tmp: Path, run: Path, name: str = "run") -> Path:
    return Path(shutil.copytree(run, tmp / name))


def _break(name: str, how: Callable[[Path], None]):
    def setup(tmp, run, mp):
        how(_copy_run(tmp, run) / name)
    return setup


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not the file you are looking for")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


def _write(name: str, text: str):
    def setup(tmp, run, mp):
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)
    return setup


def _tiny_bert(tmp, run, mp):
    sys.path.insert(0, str(Path(__file__).parent))
    from _text_data import tiny_bert

    with contextlib.redirect_stderr(io.StringIO()):  # save_pretrained's progress bar
        tiny_bert(tmp / "bert")


def _raise(target: str, error: BaseException | Callable[[Path], BaseException]):
    """Replace ``target`` (module.attr) by a function that raises ``error``."""
    def setup(tmp, run, mp):
        def fail(*args, **kwargs):
            raise error(tmp) if callable(error) and not isinstance(error, BaseException) else error
        mp.setattr(target, fail)
    return setup


def _interrupt_after_checkpoint(tmp, run, mp):
    def fake(cfg, out, **kwargs):
        (Path(out) / "checkpoint.pt").write_bytes(b"a checkpoint")
        raise KeyboardInterrupt
    mp.setattr("supcon.engine.train_job.run_training", fake)


def _folder_setup(kind: str):
    def setup(tmp, run, mp):
        if kind == "empty":
            (tmp / "imgs").mkdir()
        elif kind == "one-class":
            _images(tmp / "imgs", {"cat": 3})
        elif kind == "class-without-images":
            _images(tmp / "imgs", {"cat": 3, "dog": 0})
            (tmp / "imgs" / "dog" / "notes.txt").write_text("no images here")
        elif kind == "unknown-test-class":
            _images(tmp / "imgs" / "train", {"cat": 3, "dog": 3})
            _images(tmp / "imgs" / "test", {"cat": 1, "bird": 1})
        elif kind == "unreadable":
            _images(tmp / "imgs", {"cat": 3, "dog": 3})
            _garbage(tmp / "imgs" / "cat" / "broken.png")
        elif kind == "file":
            (tmp / "imgs").write_text("a file")
    return setup


def _idx_setup(kind: str):
    """Fashion-MNIST's four idx files under ``tmp/fm/fashion-mnist``, one of them broken."""
    def setup(tmp, run, mp):
        folder = tmp / "fm" / "fashion-mnist"
        folder.mkdir(parents=True)
        for stem, shape in (("train-images-idx3-ubyte", (4, 28, 28)), ("train-labels-idx1-ubyte", (4,)),
                            ("t10k-images-idx3-ubyte", (2, 28, 28)), ("t10k-labels-idx1-ubyte", (2,))):
            header = bytes([0, 0, 8, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)
            (folder / stem).write_bytes(header + bytes(int(np.prod(shape))))
        broken = folder / "train-images-idx3-ubyte"
        if kind == "header":
            broken.write_bytes(b"\x12\x34" + broken.read_bytes()[2:])
        else:
            broken.write_bytes(broken.read_bytes()[:-100])
    return setup


def _damaged_cifar(tmp, run, mp):
    folder = tmp / "c10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        _garbage(folder / name)


def _offline(tmp, run, mp):
    import torchvision

    def download(self):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    mp.delenv("SUPCON_DATA", raising=False)
    mp.setattr(torchvision.datasets.CIFAR10, "download", download)


def _no_cuda(tmp, run, mp):
    mp.setattr(torch.cuda, "is_available", lambda: False)


def _torchrun(**env: str):
    def setup(tmp, run, mp):
        for key, value in {**TORCHRUN, **env}.items():
            mp.setenv(key, value)
        if env.get("LOCAL_RANK") == "3":  # a node with one GPU
            mp.setattr(torch.cuda, "is_available", lambda: True)
            mp.setattr(torch.cuda, "device_count", lambda: 1)
    return setup


def _two_processes(tmp, run, mp):
    mp.setattr("supcon.distributed.world_size", lambda: 2)


def _other_data_reference(tmp, run, mp):
    config = _copy_run(tmp, run, "other") / "config.yaml"
    config.write_text(config.read_text().replace("name: digits", "name: mnist"))


def _finished_compare_run(tmp, run, mp):
    (tmp / "cmp").mkdir()
    _copy_run(tmp / "cmp", run, "ce-seed0")


def _needs_timm(tmp, run, mp):
    pytest.importorskip("timm")


def _empty_weight_caches(tmp, run, mp):
    mp.setenv("TORCH_HOME", str(tmp / "torch"))


def _unpooled_backbone(tmp, run, mp):
    timm = pytest.importorskip("timm")
    mp.setattr(timm, "create_model", lambda *a, **k: torch.nn.Conv2d(k["in_chans"], 4, 3))


def _no_timm(tmp, run, mp):
    mp.setitem(sys.modules, "timm", None)  # `import timm` raises ImportError


def _label_sets(csv: str | None):
    """A two-class folder ``tmp/imgs`` (3 images each) and, unless None, its ``labels.csv``."""
    def setup(tmp, run, mp):
        _images(tmp / "imgs", {"cat": 3, "dog": 3})
        if csv is not None:
            (tmp / "imgs" / "labels.csv").write_text(csv)
    return setup


OUT = ("--out", "{tmp}/out")
TRAIN = ("train", *OUT, *TINY)
LABEL_SETS = ("train", *OUT, "--data", "{tmp}/imgs", "--method", "supcon", "data.labels_csv=labels.csv")
EVAL = ("eval", "--embedding", "none")
OOM = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)("CUDA out of memory. Tried to allocate 2 GiB")

CASES = [
    # usage (argparse)
    Case("unknown-command", ("frob",), "error: supcon: argument COMMAND: invalid choice: 'frob'"),
    Case("missing-out", ("train",), "the following arguments are required: --out; see supcon train --help"),
    Case("bad-choice", ("train", *OUT, "--method", "foo"), "argument --method: invalid choice: 'foo'"),
    Case("not-an-int", ("train", *OUT, "--epochs", "ten"), "argument --epochs: invalid int value: 'ten'"),
    Case("unknown-option", ("train", *OUT, "--epocs", "3"),
         "error: supcon train: unrecognized arguments: --epocs"),
    # config
    Case("unknown-preset", ("train", *OUT, "--config", "cifar-10"),
         "config 'cifar-10' is neither a file nor a preset; presets: cifar10-ce"),
    Case("bad-yaml-file", ("train", *OUT, "--config", "{tmp}/c.yaml"), "config file … is not valid YAML",
         setup=_write("c.yaml", "optim: [1, 2\n")),
    Case("yaml-not-a-mapping", ("train", *OUT, "--config", "{tmp}/c.yaml"),
         "must hold a mapping of sections, got list", setup=_write("c.yaml", "[1, 2]\n")),
    Case("section-not-a-mapping", ("train", *OUT, "--config", "{tmp}/c.yaml"), "optim must be a mapping, got 3",
         setup=_write("c.yaml", "optim: 3\n")),
    Case("unknown-key", ("train", *OUT, "optim.lrr=0.1"),
         "unknown config key 'optim.lrr' (did you mean 'optim.lr'?); valid: optim.name"),
    Case("key-of-a-value", ("train", *OUT, "optim.lr.peak=1"), "optim.lr has no sub-keys"),
    Case("not-key-value", ("train", *OUT, "train.seed"), "override 'train.seed' is not key=value"),
    Case("bad-yaml-value", ("train", *OUT, "model.encoder_options={widths: [8"),
         "the value is not valid YAML (…); quote the whole override"),
    Case("wrong-type", ("train", *OUT, "optim.lr=fast"), "optim.lr must be float or null, got 'fast'"),
    Case("null", ("train", *OUT, "train.batch_size=null"), "train.batch_size may not be null"),
    Case("negative-epochs", ("train", *OUT, "--epochs", "-1"), "train.epochs must be >= 1, got -1"),
    Case("unknown-method-in-config", ("train", *OUT, "method=supcn"),
         "unknown method 'supcn' (did you mean 'supcon'?)"),
    Case("unknown-optimizer", ("train", *OUT, "optim.name=adam"), "unknown optim.name 'adam'"),
    Case("micro-batch-too-big", ("train", *OUT, "--batch-size", "64", "train.micro_batch_size=128"),
         "train.micro_batch_size must be in [1, train.batch_size] or null, got 128"),
    Case("micro-batch-for-ce", ("train", *OUT, "--method", "ce", "train.micro_batch_size=8"),
         "train.micro_batch_size (gradient caching) is for supcon/simclr; for ce lower train.batch_size"),
    Case("per-class-not-dividing", ("train", *OUT, "--batch-size", "64", "data.per_class=5"),
         "data.per_class=5 must divide train.batch_size=64"),
    Case("memory-not-supcon", ("train", *OUT, "--method", "simclr", "--memory", "64"),
         "loss.memory (momentum queue) is for method supcon"),
    Case("labels-csv-not-supcon", ("train", *OUT, "--method", "ce", "data.labels_csv=labels.csv"),
         "data.labels_csv (label sets for the SupCon loss) is for method supcon, got method ce"),
    Case("unknown-label-overlap", ("train", *OUT, "loss.label_overlap=cosine"),
         "unknown loss.label_overlap 'cosine'"),
    # settings checked when the run is built
    Case("unknown-encoder", (*TRAIN, "model.encoder=resnet5"), "unknown encoder 'resnet5'; did you mean"),
    Case("unknown-encoder-option", (*TRAIN, "model.encoder_options={width: [8]}"),
         "encoder 'small-resnet' got unknown option(s) ['width']; valid options:"),
    Case("unknown-timm-model", (*TRAIN, "model.encoder=timm:resnt18"),
         "unknown encoder 'timm:resnt18': timm has no model 'resnt18'; did you mean 'timm:resnet18'",
         setup=_needs_timm),
    Case("unknown-torchvision-model", (*TRAIN, "model.encoder=torchvision:resnet19"),
         "unknown encoder 'torchvision:resnet19': torchvision has no model 'resnet19'; did you mean"),
    Case("no-timm", (*TRAIN, "model.encoder=timm:resnet18"),
         "encoder 'timm:resnet18' needs timm: pip install 'supcon[timm]'", setup=_no_timm),
    Case("pretrained-not-on-disk", (*TRAIN, "model.encoder=torchvision:resnet18",
                                    "model.encoder_options={pretrained: true}"),
         "encoder 'torchvision:resnet18': pretrained weights are not on disk (looked for …); nothing is "
         "downloaded at run time", setup=_empty_weight_caches),
    Case("backbone-not-pooled", (*TRAIN, "model.encoder=timm:test_resnet", "model.encoder_options={}"),
         "encoder 'timm:test_resnet': the backbone's output after pooling is (2, 4, 30, 30), not [B, F]",
         setup=_unpooled_backbone),
    Case("fixed-input-size", (*TRAIN, "model.encoder=timm:test_vit", "model.encoder_options={}"),
         "encoder 'timm:test_vit' takes only 160x160 images (a fixed input size), not 32x32: set "
         "data.image_size=160 or pick another model", setup=_needs_timm),
    Case("images-too-small", (*TRAIN, "model.encoder=torchvision:alexnet", "model.encoder_options={}"),
         "encoder 'torchvision:alexnet' does not run on 32x32 images (…); its library lists 63x63 as its "
         "smallest input: set data.image_size to at least that or pick another model"),
    Case("weights-do-not-fit", (*TRAIN, "model.encoder=torchvision:squeezenet1_1",
                                "model.encoder_options={pretrained: {tmp}/other.pth}"),
         "encoder 'torchvision:squeezenet1_1': the weights in … do not fit: … missing (…), 1 unexpected (x)",
         setup=lambda tmp, run, mp: torch.save({"x": torch.zeros(1)}, tmp / "other.pth")),
    Case("unknown-augmentation", (*TRAIN, "data.augmentation=randaug"),
         "unknown augmentation policy 'randaug'; did you mean 'randaugment'?"),
    Case("not-a-device", (*TRAIN, "--device", "gpu"), "'gpu' is not a device; use auto, cpu, cuda or cuda:N"),
    Case("no-cuda", (*TRAIN, "--device", "cuda"),
         "'cuda': CUDA is not available on this machine; use --device cpu",
         setup=_no_cuda),
    Case("fewer-images-than-processes", TRAIN,
         "the training split (… images) gives 0 per process on 5000 process(es); a batch needs at least 2: "
         "add images or use fewer processes", setup=lambda tmp, run, mp: mp.setattr(
             "supcon.distributed.world_size", lambda: 5000)),
    Case("too-few-classes-per-batch", (*TRAIN, "data.per_class=2"),
         "32 classes per batch, but labels hold only 10 classes; raise per_class or lower batch_size"),
    # data
    Case("unknown-data", ("train", *OUT, "--data", "fashion_mnst"),
         "unknown data set 'fashion_mnst' and no folder of that name; did you mean 'fashion-mnist'?"),
    Case("missing-folder", ("train", *OUT, "--data", "{tmp}/nowhere"),
         "data folder … does not exist; give an existing folder or a registered data set name"),
    Case("data-is-a-file", ("train", *OUT, "--data", "{tmp}/imgs"), "data path … is not a folder",
         setup=_folder_setup("file")),
    Case("empty-folder", ("train", *OUT, "--data", "{tmp}/imgs"),
         "no class folders under … (0 image file(s) directly in it); expected", setup=_folder_setup("empty")),
    Case("one-class", ("train", *OUT, "--data", "{tmp}/imgs"),
         "only one class folder (cat) under …; need at least 2",
         setup=_folder_setup("one-class")),
    Case("class-without-images", ("train", *OUT, "--data", "{tmp}/imgs"),
         "class folder …dog has no images (1 other file(s))", setup=_folder_setup("class-without-images")),
    Case("unknown-test-class", ("train", *OUT, "--data", "{tmp}/imgs"),
         "test class folder(s) ['bird'] under … are not in …; add them there or remove them",
         setup=_folder_setup("unknown-test-class")),
    Case("unreadable-image-strict", ("train", *OUT, "--data", "{tmp}/imgs", "data.strict=true"),
         "unreadable image file …broken.png: …; fix or delete it (data.strict=false skips such files)",
         setup=_folder_setup("unreadable")),
    Case("offline-download", ("train", *OUT, "--data", "cifar10", "--data-dir", "{tmp}/data"),
         "data set cifar10 is not on disk and downloading it into … failed (URLError: …); "
         "put its files in --data-dir or $SUPCON_DATA", setup=_offline),
    Case("idx-bad-header", ("train", *OUT, "--data", "fashion-mnist", "--data-dir", "{tmp}/fm"),
         "is not an idx file of unsigned bytes (bad header …); replace it with the original file",
         setup=_idx_setup("header")),
    Case("idx-truncated", ("train", *OUT, "--data", "fashion-mnist", "--data-dir", "{tmp}/fm"),
         "header says [4, 28, 28] (truncated?); replace it with the original file", setup=_idx_setup("short")),
    Case("cifar-damaged", ("train", *OUT, "--data", "cifar10", "--data-dir", "{tmp}/c10"),
         "could not read …data_batch_1: …; replace it with the original file", setup=_damaged_cifar),
    Case("labels-csv-missing", (*LABEL_SETS[:-1], "data.labels_csv=missing.csv"),
         "data.labels_csv: …missing.csv is not a file (a relative path is read from the data folder",
         setup=_label_sets(None)),
    Case("labels-csv-bad-row", LABEL_SETS, "labels.csv line 1: expected 2 columns file,labels",
         setup=_label_sets("cat/0.png;pet\n")),
    Case("labels-csv-no-row", LABEL_SETS,
         "data.labels_csv: 5 training image(s) have no row in …labels.csv (first: cat/1.png)",
         setup=_label_sets("cat/0.png,cat;pet\n")),
    Case("labels-csv-registered-set", ("train", *OUT, "--data", "digits", "--method", "supcon",
                                       "data.labels_csv=labels.csv"),
         "data.labels_csv is for image folders; digits is a registered data set"),
    # run folders and checkpoints
    Case("out-is-a-file", ("train", "--out", "{tmp}/c.yaml"), "--out … is a file; give a folder",
         setup=_write("c.yaml", "")),
    Case("out-not-creatable", ("train", "--out", "{tmp}/c.yaml/run"),
         "--out …: cannot create the folder (…); choose another --out", setup=_write("c.yaml", "")),
    Case("run-exists", ("train", "--out", "{tmp}/run", *TINY),
         "already holds a run; use --resume to continue it or choose another --out",
         setup=lambda tmp, run, mp: _copy_run(tmp, run)),
    Case("resume-nothing", ("train", *OUT, *TINY, "--resume"),
         "--resume: no checkpoint in …; run without --resume to start"),
    Case("resume-truncated-checkpoint", ("train", "--out", "{tmp}/run", *TINY, "--resume"),
         "checkpoint …checkpoint.pt is unreadable (…); delete it and run without --resume to start over",
         setup=_break("checkpoint.pt", _truncate)),
    Case("resume-changed-config", ("train", "--out", "{tmp}/run", *TINY, "--resume", "optim.lr=0.2"),
         "--resume: the configuration differs from the run in … (optim.lr: 0.1 -> 0.2); pass the same options",
         setup=lambda tmp, run, mp: _copy_run(tmp, run)),
    # the run fails or is stopped
    Case("non-finite-loss", (*TRAIN, "optim.lr=1e30"),
         "loss became … at step 1 (the last good checkpoint is kept); train again into a new --out with a "
         "lower optim.lr", code=1, logs=True),
    Case("out-of-memory", TRAIN, "out of memory; set train.micro_batch_size=N", code=1,
         setup=_raise("supcon.engine.train_job.run_training", OOM)),
    Case("out-of-memory-cpu", TRAIN, "out of memory; set train.micro_batch_size=N", code=1,
         setup=_raise("supcon.engine.train_job.run_training", RuntimeError(
             "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: 9 GB"))),
    Case("disk-full", TRAIN, "…checkpoint.pt: no space left on device; free some disk space",
         setup=_raise("supcon.engine.train_job.run_training", lambda tmp: OSError(
             errno.ENOSPC, "No space left on device", str(tmp / "out" / "checkpoint.pt")))),
    Case("interrupted", TRAIN, "interrupted; the checkpoint in … is kept: re-run with --resume to continue",
         code=130, setup=_interrupt_after_checkpoint),
    Case("interrupted-early", TRAIN, "interrupted before the first checkpoint; re-run the same command "
         "(without --resume)", code=130, setup=_raise("supcon.engine.train_job.run_training", KeyboardInterrupt())),
    Case("interrupted-compare", ("compare", *OUT, "--data", "digits"),
         "interrupted; re-run the same command to continue (finished runs are skipped", code=130,
         setup=_raise("supcon.workflows.run_compare", KeyboardInterrupt())),
    Case("interrupted-eval", (*EVAL, "--run", "{run}"),
         "interrupted; nothing was saved: re-run the same command to evaluate", code=130,
         setup=_raise("supcon.workflows.evaluate_run", KeyboardInterrupt())),
    # torchrun
    Case("torchrun-bad-env", TRAIN, "environment variable WORLD_SIZE must be an integer, got 'two'; launch with "
         "torchrun", setup=_torchrun(WORLD_SIZE="two")),
    Case("torchrun-too-many-gpus", TRAIN,
         "LOCAL_RANK=3 but only 1 CUDA device(s) are visible; lower --nproc_per_node",
         setup=_torchrun(WORLD_SIZE="4", LOCAL_RANK="3")),
    Case("torchrun-sync-bn-on-cpu", (*TRAIN, "--device", "cpu", "train.sync_bn=true"),
         "train.sync_bn needs CUDA devices (SyncBatchNorm has no cpu kernel); drop it or train on GPUs",
         setup=_two_processes),
    # eval
    Case("eval-missing-run", (*EVAL, "--run", "{tmp}/nowhere"), "--run … does not exist"),
    Case("eval-not-a-run", (*EVAL, "--run", "{tmp}"),
         "is not a run folder (no config.yaml); give the --out folder of a"),
    Case("eval-unfinished", (*EVAL, "--run", "{tmp}/run"),
         "is not finished (no results.json); finish it with",
         setup=_break("results.json", Path.unlink)),
    Case("eval-bad-config", (*EVAL, "--run", "{tmp}/run"), "config.yaml is invalid: config file",
         setup=_break("config.yaml", lambda p: p.write_text("optim: [\n"))),
    Case("eval-bad-results", (*EVAL, "--run", "{tmp}/run"),
         "results.json is unreadable: …; the run folder is damaged: train it again into a new --out",
         setup=_break("results.json", _garbage)),
    Case("eval-no-checkpoint", (*EVAL, "--run", "{tmp}/run"), "checkpoint.pt is missing; the run folder is damaged",
         setup=_break("checkpoint.pt", Path.unlink)),
    Case("eval-corrupt-checkpoint", (*EVAL, "--run", "{tmp}/run"),
         "checkpoint.pt is corrupt or unreadable; the run folder is damaged",
         setup=_break("checkpoint.pt", _garbage)),
    Case("eval-no-encoder-json", (*EVAL, "--run", "{tmp}/run"),
         "encoder.json is missing; the run folder is damaged",
         setup=_break("encoder.json", Path.unlink)),
    Case("eval-corrupt-encoder", (*EVAL, "--run", "{tmp}/run"),
         "encoder.safetensors is corrupt or does not match encoder.json (…); the run folder is damaged",
         setup=_break("encoder.safetensors", _garbage)),
    Case("eval-no-classifier", (*EVAL, "--run", "{tmp}/run"),
         "classifier.safetensors is missing; the run folder is damaged", setup=_break("classifier.safetensors",
                                                                                    Path.unlink)),
    Case("eval-missing-reference", (*EVAL, "--run", "{run}", "--reference", "{tmp}/nowhere"),
         "--reference … does not exist"),
    Case("eval-reference-other-data", (*EVAL, "--run", "{run}", "--reference", "{tmp}/other"),
         "--reference … was trained on 'mnist' but --run on 'digits'; mCE needs a reference on the same data",
         setup=_other_data_reference),
    Case("eval-severities-not-ints", (*EVAL, "--run", "{run}", "--severities", "1,high"),
         "--severities must be integers like 1,2,3,4,5, got '1,high'"),
    Case("eval-severities-range", (*EVAL, "--run", "{run}", "--severities", "0,6"),
         "--severities must be values in 1..5, got [0, 6]"),
    Case("eval-unknown-corruption", (*EVAL, "--run", "{run}", "--corruptions", "fog,snow"),
         "--corruptions: unknown ['snow']; known: gaussian_noise"),
    Case("eval-knn-k", (*EVAL, "--run", "{run}", "--knn-k", "0"), "--knn-k must be >= 1, got 0"),
    Case("eval-no-cuda", (*EVAL, "--run", "{run}", "--device", "cuda"),
         "--device 'cuda': CUDA is not available on this machine", setup=_no_cuda),
    # compare and sweep
    Case("compare-unknown-method", ("compare", *OUT, "--methods", "ce,moco"),
         "--methods must name some of supcon, simclr, ce, ce+supcon, got ['ce', 'moco']"),
    Case("compare-method-twice", ("compare", *OUT, "--methods", "ce,ce"), "--methods names a method twice"),
    Case("compare-seeds", ("compare", *OUT, "--seeds", "0"), "--seeds must be >= 1, got 0"),
    Case("compare-epochs", ("compare", *OUT, "--epochs", "0"), "--epochs must be >= 1, got 0"),
    Case("compare-changed-config", ("compare", "--out", "{tmp}/cmp", "--methods", "ce", "--data", "digits"),
         "ce-seed0 holds a finished run with another configuration; remove it or choose another --out",
         setup=_finished_compare_run),
    Case("compare-controlled-key", ("compare", *OUT, "--data", "digits", "optim.lr=0.1"),
         "optim.lr is set by the controlled compare; use --lr-grid instead (or --presets for each method's "
         "own preset)"),
    Case("compare-needs-ce", ("compare", *OUT, "--data", "digits", "--methods", "supcon,simclr"),
         "--methods must include ce in a controlled compare (it is the baseline every method is tested against)"),
    Case("compare-bad-lr-grid", ("compare", *OUT, "--lr-grid", "fast"),
         "--lr-grid must be numbers like 0.05,0.1,0.2, got 'fast'"),
    Case("compare-unknown-augmentation", ("compare", *OUT, "--augmentation", "randaug"),
         "--augmentation: unknown policy 'randaug'; choose from simaugment"),
    Case("compare-unknown-baseline-augmentation", ("compare", *OUT, "--baseline-augmentation", "crop"),
         "--baseline-augmentation: unknown policy in ['crop']"),
    Case("compare-image-policy-on-text", ("compare", *OUT, "--augmentation", "randaugment",
                                           "model.encoder=transformers:bert"),
         "--augmentation and --baseline-augmentation name image policies; a text encoder's views are dropout "
         "views: leave them unset", setup=_tiny_bert),
    Case("compare-select-epochs", ("compare", *OUT, "--select-epochs", "0"), "--select-epochs must be >= 1, got 0"),
    Case("compare-commit-outside-git", ("compare", *OUT, "--data", "digits", "--commit"),
         "--commit: … is not inside a git repository; give a --record folder inside one, or drop --commit"),
    Case("study-unknown-claim", ("study", *OUT, "--claims", "speed"),
         "--claims: unknown ['speed']; choose from accuracy"),
    Case("study-claim-seeds", ("study", *OUT, "--claim-seeds", "1"),
         "--claim-seeds must be >= 2 (an interval needs two), got 1"),
    Case("study-image-claim-on-text", ("study", *OUT, "--claims", "stability", "model.encoder=transformers:bert"),
         "--claims stability: these test image corruptions and augmentation policies, which a text encoder has "
         "not; leave them out", setup=_tiny_bert),
    Case("study-needs-supcon", ("study", *OUT, "--data", "digits", "--methods", "ce,simclr"),
         "--methods must include supcon and ce (the study tests SupCon against cross-entropy)"),
    Case("sweep-bad-batch-values", ("sweep", *OUT, "--vary", "batch", "--values", "1"),
         "--values for batch are batch sizes >= 2 like 128,512; got '1'"),
    Case("sweep-bad-lr-values", ("sweep", *OUT, "--vary", "lr", "--values", "half"),
         "--values for lr are positive factors like 0.5,2; got 'half'"),
    Case("sweep-unknown-value", ("sweep", *OUT, "--vary", "optimizer", "--values", "adam"),
         "--values: unknown optimizer 'adam'; choose from sgd, lars, rmsprop, adamw"),
    Case("sweep-augmentation-on-text", ("sweep", *OUT, "--vary", "augmentation", "model.encoder=transformers:bert"),
         "--vary augmentation varies image policies; a text encoder's views are dropout views: vary lr, "
         "optimizer or batch", setup=_tiny_bert),
    Case("sweep-no-values", ("sweep", *OUT, "--vary", "lr", "--values", ","), "--values names no value"),
    Case("sweep-bad-device", ("sweep", *OUT, "--vary", "lr", "--device", "gpu"), "'gpu' is not a device"),
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished tiny ce run on digits, made with the CLI (read-only for the cases)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert cli.main(["train", "--out", str(out), *TINY, "--no-progress"]) == 0
    assert (out / "results.json").is_file() and "epoch 1/1" in (out / "train.log").read_text()
    # the run's log file is closed and detached, so later commands never write into it
    assert not any(isinstance(h, logging.FileHandler) for h in logging.getLogger("supcon").handlers)
    return out


def _pattern(message: str) -> re.Pattern:
    """The documented message as a regex: "…" matches any text (a path, a value)."""
    return re.compile(".+?".join(re.escape(part) for part in message.split("…")))


def _run(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as stop:  # argparse exits by itself
        return stop.code


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_documented_error_is_one_line_with_its_exit_code(case, tmp_path, finished_run, monkeypatch,
                                                               capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SUPCON_DEBUG", raising=False)
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    if case.setup is not None:
        case.setup(tmp_path, finished_run, monkeypatch)
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{run}", str(finished_run)) for a in case.argv]
    code = _run(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    assert lines and lines[-1].startswith("error: "), err
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], err
    assert len(lines) == 1 or case.logs, err
    assert _pattern(case.message).search(lines[-1]), lines[-1]
    assert code == case.code, err


def _documented() -> list[tuple[str, int]]:
    """(message, exit code) of every row of the tables in docs/errors.md."""
    rows = []
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) == 4 and re.fullmatch(r"\d+", cells[2]):
            message = re.search(r"`([^`]+)`", cells[1])
            assert message, f"docs/errors.md row without a `message`: {line}"
            rows.append((message.group(1), int(cells[2])))
    return rows


def test_the_doc_and_the_test_table_list_the_same_errors():
    documented = _documented()
    assert len(documented) >= 60
    tested = {(c.message, c.code) for c in CASES}
    assert set(documented) == tested, (set(documented) ^ tested)


def test_the_doc_states_the_exit_codes_and_the_debug_switch():
    text = DOC.read_text()
    for code in (cli.EXIT_FAILED, cli.EXIT_USER_ERROR, cli.EXIT_INTERRUPTED):
        assert f"| {code} |" in text or f"`{code}`" in text
    assert "SUPCON_DEBUG=1" in text


@pytest.mark.parametrize("argv, code, line", [
    (["train", "--out", "x", "--config", "no-such-preset"], 2, "error: config 'no-such-preset' is neither"),
    (["train", "--out", "x", "--data", "no-such-set"], 2, "error: unknown data set 'no-such-set'"),
    (["eval"], 2, "error: supcon eval: the following arguments are required: --run"),
])
def test_a_real_process_prints_one_line_and_no_traceback(argv, code, line, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SUPCON_DEBUG"}
    proc = subprocess.run([sys.executable, "-m", "supcon.cli", *argv], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == code
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and proc.stderr.startswith(line), proc.stderr


def test_supcon_debug_shows_the_traceback_instead(monkeypatch):
    from supcon.config import ConfigError

    monkeypatch.setenv("SUPCON_DEBUG", "1")
    with pytest.raises(ConfigError, match="optim.lrr"):
        cli.main(["train", "--out", "x", "optim.lrr=1"])


@pytest.mark.parametrize("bug", [TypeError("unsupported operand"), KeyError("model"), AssertionError()])
def test_a_bug_is_not_turned_into_a_one_line_user_error(bug, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise bug

    monkeypatch.delenv("SUPCON_DEBUG", raising=False)
    monkeypatch.setattr("supcon.engine.train_job.run_training", broken)
    with pytest.raises(type(bug)):
        cli.main(["train", "--out", str(tmp_path / "out"), *TINY])


def test_bare_supcon_prints_the_help(capsys):
    assert cli.main([]) == cli.EXIT_USER_ERROR
    out = capsys.readouterr().out
    assert all(command in out for command in ("train", "eval", "compare", "sweep"))


# ------------------------------------------------------------------------------------ help
def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    return {"supcon": parser, **{f"supcon {k}": v for k, v in cli._subparsers(parser).items()}}


@pytest.mark.parametrize("name", list(_commands()))
def test_every_option_has_help_and_shows_its_default_once(name):
    parser = _commands()[name]
    assert parser.format_help()
    for action in parser._actions:
        assert (action.help or "").strip(), f"{name} {action.dest} has no help"
        if not action.option_strings or action.required or action.default is argparse.SUPPRESS:
            continue  # positional, required or --help/--version: no default to show
        rendered = parser._get_formatter()._expand_help(action)
        defaults = re.findall("default", rendered, re.IGNORECASE)
        assert len(defaults) == 1, f"{name} {action.option_strings}: {rendered}"
        assert "None" not in rendered, rendered


def test_every_command_is_listed_with_its_help():
    parser = cli.build_parser()
    choices = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {a.dest for a in choices._choices_actions} == {"train", "eval", "compare", "study", "sweep"}
    assert all(a.help for a in choices._choices_actions)


def test_train_help_states_the_defaults_a_bare_run_resolves_to():
    defaults = build_config(None)  # what `supcon train` uses when no option is given
    train = cli._subparsers(cli.build_parser())["train"]
    flags = {"--method": "method", "--data": "data.name", "--epochs": "train.epochs",
             "--batch-size": "train.batch_size", "--seed": "train.seed", "--device": "train.device",
             "--workers": "data.num_workers", "--memory": "loss.memory"}
    for action in train._actions:
        for flag in set(action.option_strings) & set(flags):
            assert f"else {get_value(defaults, flags[flag])}" in action.help, (flag, action.help)


def test_version_is_the_installed_package_version(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"supcon {importlib.metadata.version('supcon')}"
