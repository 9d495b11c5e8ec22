"""Text data: CSV / JSONL folders and files, labels as names or integers, the splits carved exactly
as an image folder's, your own (str, label) items, the loader's (TextBatch, labels) batches, and a
one-line error for each bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from supcon.data import DataError, TextBatch, TextViews, build_loader, eval_loader, load_dataset
from supcon.data.base import stratified_split
from supcon.data.objects import splits_from_objects

sys.path.insert(0, str(Path(__file__).parents[1]))
from _text_data import csv_folder, items, write_csv  # noqa: E402


def test_csv_folder_gives_train_test_and_a_carved_val_split(tmp_path):
    folder = csv_folder(tmp_path / "topics", n_train=60, n_test=30)
    splits = load_dataset(folder, val_fraction=0.1, seed=3)
    info = splits.info
    assert (info.modality, info.class_names, info.num_classes) == ("text", ("food", "sports", "tech"), 3)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (54, 6, 30)
    rows = items(60, seed=0)
    # the validation split is the image folders' carving of the training rows
    keep, held = stratified_split(torch.tensor([info.class_names.index(y) for _, y in rows]), 0.1, 3)
    assert splits.val.texts == [rows[i][0] for i in held.tolist()]
    assert splits.train.texts == [rows[i][0] for i in keep.tolist()]
    assert splits.test.texts == [t for t, _ in items(30, seed=1)]
    assert splits.test.labels.tolist() == [info.class_names.index(y) for _, y in items(30, seed=1)]


def test_one_file_is_carved_like_a_folder_without_test(tmp_path):
    rows = items(50, seed=2)
    path = write_csv(tmp_path / "all.csv", rows)
    splits = load_dataset(path, val_fraction=0.1, seed=0)
    labels = torch.tensor([sorted({y for _, y in rows}).index(y) for _, y in rows])
    keep, test = stratified_split(labels, 0.2, 0)  # the fixed test carving
    assert splits.test.texts == [rows[i][0] for i in test.tolist()]
    assert len(splits.train) + len(splits.val) == len(keep) and len(splits.val) == 4


def test_jsonl_with_integer_labels_and_a_val_file(tmp_path):
    folder = tmp_path / "j"
    folder.mkdir()
    for name, n, seed in (("train", 30, 0), ("test", 9, 1), ("val", 6, 2)):
        lines = [json.dumps({"text": t, "label": ["food", "sports", "tech"].index(y) * 5, "id": i})
                 for i, (t, y) in enumerate(items(n, seed))]
        (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n\n")
    splits = load_dataset(folder, val_fraction=0.5, seed=0)
    assert splits.info.class_names == ("0", "5", "10")  # integers sorted by value
    assert len(splits.train) == 30 and len(splits.val) == 6  # the val file, nothing carved
    assert splits.val.labels.tolist() == [["food", "sports", "tech"].index(y) for _, y in items(6, 2)]


def test_your_items_with_int_or_name_labels(tmp_path):
    rows = items(40, seed=0)
    names = sorted({y for _, y in rows})
    ints = [(t, names.index(y)) for t, y in rows]
    by_int = splits_from_objects(ints, val_fraction=0.1, seed=1)
    by_name = splits_from_objects(rows, val_fraction=0.1, seed=1)
    assert by_int.info.modality == "text" and by_int.info.class_names == ("0", "1", "2")
    assert by_name.info.class_names == tuple(names)
    for split in ("train", "val", "test"):
        assert getattr(by_int, split).texts == getattr(by_name, split).texts
        assert torch.equal(getattr(by_int, split).labels, getattr(by_name, split).labels)
    with_test = splits_from_objects(ints[:30], test_set=ints[30:], val_fraction=0.1)
    assert with_test.test.texts == [t for t, _ in ints[30:]]


def test_the_loader_gives_text_batches_with_views_and_eval_reads_in_order(tmp_path):
    splits = load_dataset(csv_folder(tmp_path / "t", 30, 9), val_fraction=0.0)
    loader = build_loader(TextViews(splits.train, n_views=2), batch_size=8, drop_last=True, seed=0, num_workers=1)
    loader.set_epoch(0)
    batches = list(loader)
    assert len(batches) == 3
    texts, labels = batches[0]
    assert isinstance(texts, TextBatch) and texts.shape == (8, 2) and labels.dtype == torch.int64
    assert texts.flat()[:4] == [texts[0], texts[0], texts[1], texts[1]]  # sample-major views
    lookup = dict(zip(splits.train.texts, splits.train.labels.tolist(), strict=True))
    assert labels.tolist() == [lookup[t] for t in texts]
    loader.set_epoch(0)
    assert [list(b[0]) for b in loader] == [list(b[0]) for b in batches]  # a function of seed and epoch
    order = [t for batch, _ in eval_loader(splits.test, splits.info, batch_size=4, seed=0) for t in batch]
    assert order == splits.test.texts


@pytest.mark.parametrize("content,match", [
    ("sentence,category\nhello,a\n", r"needs 'text' and 'label'"),
    ("text,label\nhello,a\n   ,b\n", r"line 3: empty text"),
    ("text,label\nhello,a\nbye,\n", r"line 3: the label is ''"),
    ("text,label\nhello,a\nbye,a\n", r"need at least 2 classes"),
])
def test_bad_csv_is_one_line_naming_what_to_fix(tmp_path, content, match):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=match) as err:
        load_dataset(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_other_bad_text_input(tmp_path):
    folder = csv_folder(tmp_path / "f", 30, 9)
    write_csv(folder / "test.csv", [("a new word", "music")])
    with pytest.raises(DataError, match=r"label 'music', which the training data lacks"):
        load_dataset(folder)
    (folder / "train.jsonl").write_text('{"text": "x", "label": 1}\n')
    with pytest.raises(DataError, match="keep one train file"):
        load_dataset(folder)
    (tmp_path / "b.jsonl").write_text('{"text": "x", "label": 1}\nnot json\n')
    with pytest.raises(DataError, match="line 2: not JSON"):
        load_dataset(tmp_path / "b.jsonl")
    with pytest.raises(DataError, match=r"train_set\[1\]: empty text"):
        splits_from_objects([("ok", 0), ("  ", 1)])
    with pytest.raises(DataError, match="need at least 2 classes"):
        splits_from_objects([("one", 0), ("two", 0)])
    with pytest.raises(DataError, match=r"train_set\[1\] is int"):
        splits_from_objects([("one", 0), 3])
    with pytest.raises(DataError, match="labels_csv is for image folders"):
        load_dataset(folder / "train.csv", labels_csv="x.csv")
