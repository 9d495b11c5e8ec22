"""Label sets from a CSV (``data.labels_csv``): multi-hot targets per training image, carried
through the splits and the loader, into the SupCon loss from the command line."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from supcon import cli
from supcon.config import ConfigError, build_config
from supcon.data import AugmentedDataset, DataError, build_loader, load_dataset
from supcon.data import folder as folder_mod

# class folder -> label set of each of its images: the class plus a tag shared across classes
TAGS = {"boot": "footwear;winter", "sandal": "footwear;summer", "coat": "tops;winter"}


def write_images(root, per_class: int = 6, *, split: str = ""):
    """Grey 8x8 PNGs whose pixel value is a unique id; returns {relative path: id}."""
    ids, n = {}, 0
    for name in TAGS:
        folder = root / split / name if split else root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            n += 1
            Image.fromarray(np.full((8, 8), 10 * n, np.uint8)).save(folder / f"{i}.png")
            ids[(folder / f"{i}.png").relative_to(root).as_posix()] = 10 * n
    return ids


def write_csv(root, files, header: bool = True, extra: str = "", name: str = "labels.csv"):
    lines = (["file,labels"] if header else []) + [f"{f},{p.split('/')[-2]};{TAGS[p.split('/')[-2]]}"
                                                   for p, f in ((p, p) for p in files)]
    (root / name).write_text("\n".join(lines) + "\n" + extra)
    return root / name


def expected_sets(files):
    return {value: {f.split("/")[-2], *TAGS[f.split("/")[-2]].split(";")} for f, value in files.items()}


def _warnings_logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_each_training_image_gets_its_label_set_through_both_splits(tmp_path, caplog):
    ids = write_images(tmp_path)
    write_csv(tmp_path, ids)
    with warnings.catch_warnings(), caplog.at_level("WARNING", logger="supcon"):
        warnings.simplefilter("error")
        splits = load_dataset(tmp_path, val_fraction=0.2, labels_csv="labels.csv")
    assert _warnings_logged(caplog) == []  # the CSV in the folder is not a stray file
    names = ("boot", "coat", "footwear", "sandal", "summer", "tops", "winter")
    want = expected_sets(ids)
    for part in (splits.train, splits.val, splits.test):
        assert part.targets is not None and part.targets.shape == (len(part), len(names))
        assert part.targets.dtype == torch.float32
        for k in range(len(part)):
            value = int(part.images[k, 0, 0, 0])
            assert {names[c] for c in torch.nonzero(part.targets[k]).flatten().tolist()} == want[value]
    assert splits.info.class_names == ("boot", "coat", "sandal")  # classes stay the folders


def test_train_test_layout_rows_name_the_split_and_lazy_folders_keep_targets(tmp_path, monkeypatch):
    ids = write_images(tmp_path, split="train")
    test_ids = write_images(tmp_path, per_class=1, split="test")
    path = write_csv(tmp_path, {**ids, **test_ids}, header=False)
    monkeypatch.setattr(folder_mod, "MEMORY_LIMIT", 0)  # decoded per item
    splits = load_dataset(tmp_path, val_fraction=0.0, labels_csv=path)  # absolute path too
    assert isinstance(splits.train, folder_mod.FileImageDataset)
    want = expected_sets(ids)
    assert len(splits.train) == 18
    for k in range(len(splits.train)):
        image, _ = splits.train[k]
        row = splits.train.targets[k]
        assert int(row.sum()) == len(want[int(image[0, 0, 0])])


def test_the_loader_yields_label_sets_and_samples_by_class(tmp_path, caplog):
    ids = write_images(tmp_path)
    write_csv(tmp_path, ids)
    splits = load_dataset(tmp_path, val_fraction=0.0, labels_csv="labels.csv")
    data = AugmentedDataset(splits.train, lambda x: x.float(), targets=True)
    loader = build_loader(data, batch_size=6, per_class=2, seed=0)
    loader.set_epoch(0)
    images, labels = next(iter(loader))
    assert labels.shape == (6, 7) and labels.dtype == torch.float32
    for image, row in zip(images, labels, strict=True):
        k = int((splits.train.images[:, 0, 0, 0] == image[0, 0, 0]).nonzero())
        assert torch.equal(row, splits.train.targets[k])
    caplog.clear()
    with caplog.at_level("WARNING", logger="supcon"):
        plain = load_dataset(tmp_path, val_fraction=0.0)
    assert [line[:22] for line in _warnings_logged(caplog)] == ["ignored 1 non-image fi"]  # a stray file
    with pytest.raises(ValueError, match="targets=True: the dataset has no label sets"):
        AugmentedDataset(plain.train, lambda x: x, targets=True)


@pytest.mark.parametrize("csv, message", [
    (None, r"data.labels_csv: .*missing.csv is not a file"),
    ("file,labels\nboot/0.png\n", r"line 2: expected 2 columns file,labels"),
    ("boot/0.png, ; \n", r"line 1: 'boot/0.png' has no label"),
    ("boot/0.png,a\nboot/0.png,b\n", r"line 2: 'boot/0.png' is listed twice"),
    ("# only a comment\n", r"lists no image"),
    ("boot/0.png,a\n", r"17 training image\(s\) have no row in .*labels.csv \(first: boot/1.png\)"),
])
def test_bad_csv_files_are_data_errors(tmp_path, csv, message):
    write_images(tmp_path)
    name = "missing.csv"
    if csv is not None:
        (tmp_path / "labels.csv").write_text(csv)
        name = "labels.csv"
    with pytest.raises(DataError, match=message):
        load_dataset(tmp_path, labels_csv=name)


def test_rows_naming_no_image_are_reported_once(tmp_path, caplog):
    ids = write_images(tmp_path)
    write_csv(tmp_path, ids, extra="ghost/1.png,a\nghost/2.png,b\n")
    with caplog.at_level("WARNING", logger="supcon"):
        load_dataset(tmp_path, labels_csv="labels.csv")
    said = _warnings_logged(caplog)
    assert len(said) == 1 and re.fullmatch(r"2 row\(s\) of .*labels.csv name no image .*first: ghost/1.png\)",
                                           said[0]), said


def test_a_registered_set_takes_no_labels_csv():
    with pytest.raises(DataError, match="data.labels_csv is for image folders; digits is a registered"):
        load_dataset("digits", labels_csv="x.csv")


@pytest.mark.parametrize("dotted, message", [
    (["method=ce", "data.labels_csv=x.csv"], "data.labels_csv .* is for method supcon, got method ce"),
    (["loss.memory=8", "data.labels_csv=x.csv"], "data.labels_csv cannot be combined with loss.memory"),
    (["loss.label_overlap=cosine"], "unknown loss.label_overlap 'cosine'"),
])
def test_config_checks(dotted, message):
    with pytest.raises(ConfigError, match=message):
        build_config(None, dotted=dotted)


def test_cli_trains_supcon_on_label_sets(tmp_path, monkeypatch):
    ids = write_images(tmp_path / "images", per_class=8)
    write_csv(tmp_path / "images", ids)
    seen = []
    import supcon.losses.supcon as loss_module  # what the method's SupConLoss calls

    real = loss_module.supcon_loss

    def spy(z, labels, *args, **kwargs):
        seen.append((tuple(labels.shape), kwargs["label_overlap"]))
        return real(z, labels, *args, **kwargs)

    monkeypatch.setattr(loss_module, "supcon_loss", spy)
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--data", "images", "--out", "run", "--method", "supcon", "--epochs", "1",
            "--batch-size", "6", "--workers", "0", "--no-progress", "data.labels_csv=labels.csv",
            "loss.label_overlap=jaccard", "model.encoder_options={widths: [8], blocks: [1], strides: [2]}",
            "linear.epochs=1", "data.val_fraction=0.2"]
    assert cli.main(argv) == 0
    assert seen and all(shape == (6, 7) and how == "jaccard" for shape, how in seen)
    assert (tmp_path / "run" / "results.json").is_file()
