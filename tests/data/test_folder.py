"""Image folders: layouts, label mapping, image modes, and every kind of bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from supcon.data import DataError, FileImageDataset, load_dataset
from supcon.data import folder as folder_mod
from supcon.data.images import pil_to_tensor


def _colour_of(image: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(v) for v in image[:, image.shape[1] // 2, image.shape[2] // 2])


def _assert_labels_match_colours(ds, names, colours):
    for k in range(len(ds)):
        image, label = ds[k]
        assert _colour_of(image) == colours[names[label]]


def test_train_test_layout_maps_test_classes_by_name(tmp_path, fmt):
    fmt.write_folder(tmp_path / "train")
    fmt.write_folder(
        tmp_path / "test",
        per_class=2,
        classes={"bee": fmt.colours["bee"], "cat": fmt.colours["cat"]},
    )
    s = load_dataset(tmp_path, val_fraction=0.0)
    assert s.info.class_names == ("ant", "bee", "cat")
    assert (s.info.channels, s.info.image_size, len(s.train), len(s.test)) == (3, 16, 18, 4)
    assert sorted(s.test.labels.tolist()) == [1, 1, 2, 2]  # not 0, 1: mapped by name
    _assert_labels_match_colours(s.test, s.info.class_names, fmt.colours)
    _assert_labels_match_colours(s.train, s.info.class_names, fmt.colours)


@pytest.mark.parametrize("with_test", [False, True])
def test_imagenet_val_folder_is_the_test_split_unless_there_is_a_test_folder(tmp_path, fmt, with_test):
    fmt.write_folder(tmp_path / "train", per_class=5)
    fmt.write_folder(tmp_path / "val", per_class=2)
    if with_test:
        fmt.write_folder(tmp_path / "test", per_class=3, classes={"cat": fmt.colours["cat"]})
    s = load_dataset(tmp_path, val_fraction=0.0)
    # val/ as the test split: all 15 train images stay in train (nothing carved off)
    assert len(s.train) == 15
    if with_test:
        assert s.test.labels.tolist() == [2, 2, 2]
    else:
        assert sorted(s.test.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    _assert_labels_match_colours(s.test, s.info.class_names, fmt.colours)


def test_flat_layout_carves_a_stratified_test_split(tmp_path, fmt):
    fmt.write_folder(tmp_path, per_class=10)
    s = load_dataset(str(tmp_path), val_fraction=0.1, test_fraction=0.2)
    assert torch.equal(torch.bincount(s.test.labels), torch.tensor([2, 2, 2]))
    assert len(s.train) + len(s.val) + len(s.test) == 30
    _assert_labels_match_colours(s.val, s.info.class_names, fmt.colours)


def test_mixed_modes_and_sizes(tmp_path):
    """Every mode is converted by its rule: 16-bit scaled, alpha over black, palette expanded."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    Image.new("RGB", (12, 10), (10, 20, 30)).save(tmp_path / "a" / "rgb.png")
    Image.new("RGBA", (12, 12), (200, 100, 50, 0)).save(tmp_path / "a" / "rgba_clear.png")
    Image.new("RGBA", (14, 12), (200, 100, 50, 255)).save(tmp_path / "a" / "rgba_opaque.png")
    pal = Image.new("P", (12, 12), 1)
    pal.putpalette([0, 0, 0, 7, 77, 177] + [0] * 762)
    pal.save(tmp_path / "b" / "palette.png")
    Image.fromarray(np.full((12, 16), 32896, np.uint16)).save(tmp_path / "b" / "sixteen.png")
    Image.new("L", (30, 12), 90).save(tmp_path / "b" / "grey.png")
    s = load_dataset(tmp_path, val_fraction=0.0, test_fraction=0.0)
    assert s.info.channels == 3 and s.info.image_size == 12  # median shorter side
    got = {(int(lab), _colour_of(img)) for img, lab in (s.train[k] for k in range(len(s.train)))}
    expected = {
        (0, (10, 20, 30)),
        (0, (0, 0, 0)),
        (0, (200, 100, 50)),
        (1, (7, 77, 177)),
        (1, (128, 128, 128)),
        (1, (90, 90, 90)),
    }
    assert got == expected  # 32896 / 257 = 128; transparent -> black
    assert s.train.images.shape[1:] == (3, 12, 12)


def test_all_grey_modes_give_one_channel(tmp_path):
    for name in ("x", "y"):
        (tmp_path / name).mkdir()
        Image.new("L", (8, 8), 40).save(tmp_path / name / "l.png")
        Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(tmp_path / name / "i16.png")
        Image.new("1", (8, 8), 1).save(tmp_path / name / "bit.png")
    s = load_dataset(tmp_path, val_fraction=0.0, test_fraction=0.0)
    assert s.info.channels == 1
    assert sorted({int(v) for v in s.train.images.flatten()}) == [40, 255]


def test_rgb_to_grey_uses_luma_weights():
    img = Image.new("RGB", (2, 2), (100, 150, 200))
    assert int(pil_to_tensor(img, 1)[0, 0, 0]) == round(0.299 * 100 + 0.587 * 150 + 0.114 * 200)


def _load_and_log(caplog, root):
    """Load ``root`` (no val/test carve-out); returns the splits and the warning lines logged.
    Skipped files are reported by logging (the CLI's one line, train.log), never as a Python
    warning with a source line."""
    caplog.clear()
    with warnings.catch_warnings(), caplog.at_level("WARNING", logger="supcon"):
        warnings.simplefilter("error")
        splits = load_dataset(root, val_fraction=0.0, test_fraction=0.0)
    return splits, [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_unreadable_files_are_skipped_with_one_counting_log_line(tmp_path, fmt, caplog):
    fmt.write_folder(tmp_path, per_class=4)
    good = (tmp_path / "bee" / "0.png").read_bytes()
    (tmp_path / "bee" / "truncated.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "cat" / "garbage.jpg").write_bytes(b"this is not a jpeg")
    s, said = _load_and_log(caplog, tmp_path)
    skipped = [line for line in said if "unreadable" in line]
    assert len(skipped) == 1 and "\n" not in skipped[0]
    assert skipped[0].startswith(f"skipped 2 unreadable image file(s) under {tmp_path} (first: ")
    assert skipped[0].endswith("; data.strict=true stops at the first one instead")
    assert len(s.train) == 12
    _assert_labels_match_colours(s.train, s.info.class_names, fmt.colours)
    with pytest.raises(DataError, match=r"unreadable image file .*(truncated\.png|garbage\.jpg)"):
        load_dataset(tmp_path, strict=True)


def test_non_image_files_are_ignored_with_one_log_line(tmp_path, fmt, caplog):
    fmt.write_folder(tmp_path, per_class=3)
    (tmp_path / "ant" / "notes.txt").write_text("hello")
    (tmp_path / "README.md").write_text("data")
    (tmp_path / "bee" / ".DS_Store").write_bytes(b"\0")  # hidden: ignored silently
    s, said = _load_and_log(caplog, tmp_path)
    assert said == [f"ignored 2 non-image file(s) under {tmp_path} (first: {tmp_path / 'README.md'})"]
    assert len(s.train) == 9


@pytest.mark.parametrize(
    "setup, message",
    [
        ("empty_class", r"class folder .*bee has no images"),
        ("no_images", r"no images found under"),
        ("single_class", r"only one class folder \(ant\)"),
        ("images_in_root", r"no class folders under .*\(2 image file\(s\) directly in it\)"),
        ("unknown_test_class", r"test class folder\(s\) \['zebra'\]"),
        ("all_unreadable", r"class folder .*cat has no readable images"),
    ],
)
def test_bad_folders(tmp_path, fmt, setup, message):
    if setup == "empty_class":
        fmt.write_folder(tmp_path, classes={"ant": (1, 2, 3)})
        (tmp_path / "bee").mkdir()
    elif setup == "no_images":
        for name in ("ant", "bee"):
            (tmp_path / name).mkdir()
            (tmp_path / name / "a.txt").write_text("x")
    elif setup == "single_class":
        fmt.write_folder(tmp_path, classes={"ant": (1, 2, 3)})
    elif setup == "images_in_root":
        for k in range(2):
            Image.new("RGB", (4, 4)).save(tmp_path / f"{k}.png")
    elif setup == "unknown_test_class":
        fmt.write_folder(tmp_path / "train")
        fmt.write_folder(tmp_path / "test", classes={"zebra": (1, 1, 1)})
    elif setup == "all_unreadable":
        fmt.write_folder(tmp_path, classes={"ant": (1, 2, 3), "bee": (4, 5, 6)})
        (tmp_path / "cat").mkdir()
        (tmp_path / "cat" / "x.png").write_bytes(b"not a png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match=message):
            load_dataset(tmp_path)


@pytest.mark.parametrize("path", ["./no/such/folder", "/definitely/not/here"])
def test_missing_path(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        DataError,
        match=f"data folder {path.lstrip('./') if path.startswith('./') else path} does not exist",
    ):
        load_dataset(path)


def test_file_instead_of_folder(tmp_path):
    (tmp_path / "f.png").write_bytes(b"")
    with pytest.raises(DataError, match="is not a folder"):
        load_dataset(tmp_path / "f.png")


def test_large_folder_is_read_lazily(tmp_path, fmt, monkeypatch):
    monkeypatch.setattr(folder_mod, "MEMORY_LIMIT", 0)
    fmt.write_folder(tmp_path, per_class=4, size=(20, 16), ext="jpg")
    s = load_dataset(tmp_path, val_fraction=0.0, test_fraction=0.25)
    assert isinstance(s.train, FileImageDataset)
    image, label = s.train[0]
    assert image.shape == (3, 16, 20) and image.dtype == torch.uint8  # native size
    data = (tmp_path / "ant" / "0.jpg").read_bytes()
    bad = next(f for f in s.train.files + s.test.files if f.endswith("ant/0.jpg"))
    (tmp_path / "ant" / "0.jpg").write_bytes(data[: len(data) // 2])
    where = s.train if bad in s.train.files else s.test
    with pytest.raises(DataError, match="unreadable image file .*ant/0.jpg"):
        where[where.files.index(bad)]


def test_lazy_folder_through_policy_and_loader(tmp_path, fmt, monkeypatch):
    """Native-size images of mixed sizes go through a batched policy and the loader."""
    from supcon.data import AugmentedDataset, MultiView, build_loader, build_transform

    monkeypatch.setattr(folder_mod, "MEMORY_LIMIT", 0)
    fmt.write_folder(tmp_path, per_class=3, size=(20, 16))
    fmt.write_folder(
        tmp_path, per_class=2, size=(9, 30), classes={"ant": fmt.colours["ant"]}, ext="bmp"
    )
    s = load_dataset(tmp_path, val_fraction=0.0, test_fraction=0.0, image_size=12)
    for policy in ("simaugment", "crop-flip"):
        ds = AugmentedDataset(s.train, MultiView(build_transform(policy, s.info), 2), seed=0)
        x, y = next(iter(build_loader(ds, batch_size=11, shuffle=False)))
        assert x.shape == (11, 2, 3, 12, 12) and torch.isfinite(x).all()
        assert y.tolist() == s.train.labels.tolist()
