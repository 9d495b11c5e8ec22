"""Label sets of texts: a text file's optional ``labels`` column (CSV: names separated by ``;``;
JSONL: a list of names or the same string) gives the training split multi-hot ``targets``, kept
through the carved splits and yielded by the loader; the engine uses them for method supcon only."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from supcon.config import build_config
from supcon.data import DataError, TextViews, build_loader, load_dataset
from supcon.data.text import load_text
from supcon.engine.components import label_sets_in_batches

sys.path.insert(0, str(Path(__file__).parents[1]))
from _text_data import items, write_csv  # noqa: E402

HEADER = ("text", "label", "labels")
ROWS = [("bread soup", "food", "food;warm"),
        ("goal team", "sports", " sports ; outdoor ;"),  # spaces and a trailing separator
        ("code chip", "tech", "tech;indoor;warm"),
        ("cake salt", "food", "food;food")]  # a repeated name counts once
# columns: the sorted names of the training file's label sets
NAMES = ("food", "indoor", "outdoor", "sports", "tech", "warm")
MULTI_HOT = [[1, 0, 0, 0, 0, 1],
             [0, 0, 1, 1, 0, 0],
             [0, 1, 0, 0, 1, 1],
             [1, 0, 0, 0, 0, 0]]


def test_a_csv_labels_column_gives_the_training_split_its_multi_hot_targets(tmp_path):
    folder = tmp_path / "csv"
    folder.mkdir()
    write_csv(folder / "train.csv", ROWS, header=HEADER)
    # a test file's label sets are ignored, even an empty one
    write_csv(folder / "test.csv", [("new soup", "food", ""), ("new goal", "sports", "x")], header=HEADER)
    source = load_text(folder)
    assert source.target_names == NAMES
    assert source.train.targets.dtype == torch.float32
    assert source.train.targets.tolist() == MULTI_HOT
    assert source.train.labels.tolist() == [0, 1, 2, 0]  # `label` stays the class
    assert source.test.targets is None


def test_a_jsonl_labels_key_takes_a_list_or_a_separated_string(tmp_path):
    path = tmp_path / "train.jsonl"
    values = [["food", "warm"], "sports;outdoor", ["tech", "indoor", " warm "], "food"]
    path.write_text("".join(json.dumps({"text": t, "label": y, "labels": v}) + "\n"
                            for (t, y, _), v in zip(ROWS, values, strict=True)))
    (tmp_path / "test.jsonl").write_text(json.dumps({"text": "new", "label": "food", "labels": 7}) + "\n")
    source = load_text(tmp_path)
    assert source.target_names == NAMES and source.train.targets.tolist() == MULTI_HOT


def test_files_without_labels_give_no_targets(tmp_path):
    write_csv(tmp_path / "train.csv", [(t, y) for t, y, _ in ROWS])
    source = load_text(tmp_path / "train.csv")
    assert source.train.targets is None and source.target_names == ()


def test_carved_splits_and_the_loader_keep_each_texts_label_set(tmp_path):
    tags = {"food": "food;home", "sports": "sports;outdoor", "tech": "tech;home"}
    rows = [(t, y, tags[y]) for t, y in items(30, seed=0)]
    path = write_csv(tmp_path / "all.csv", rows, header=HEADER)  # one file: test and val carved
    splits = load_dataset(path, val_fraction=0.2, seed=1)
    names = ["food", "home", "outdoor", "sports", "tech"]
    want = {t: [float(n in s.split(";")) for n in names] for t, _, s in rows}
    for split in (splits.train, splits.val, splits.test):
        assert split.targets is not None and split.targets.shape == (len(split), 5)
        assert split.targets.tolist() == [want[t] for t in split.texts]
    loader = build_loader(TextViews(splits.train, 2, targets=True), batch_size=4, drop_last=True, seed=0,
                          num_workers=0)
    loader.set_epoch(0)
    for texts, targets in loader:
        assert targets.shape == (4, 5) and targets.tolist() == [want[t] for t in texts]


@pytest.mark.parametrize("name, content, line", [
    ("train.csv", "text,label,labels\nbread,food,food\ngoal,sports,\n", 3),
    ("train.csv", "text,label,labels\nbread,food,food\ngoal,sports, ; \n", 3),
    ("train.jsonl", '{"text": "bread", "label": "food", "labels": ["food"]}\n'
                    '{"text": "goal", "label": "sports"}\n', 2),
    ("train.jsonl", '{"text": "bread", "label": "food", "labels": []}\n'
                    '{"text": "goal", "label": "sports", "labels": "sports"}\n', 1),
])
def test_a_training_row_without_a_label_set_is_a_one_line_error(tmp_path, name, content, line):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=rf"line {line}: no label in 'labels'") as err:
        load_text(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("value", ["3", '{"a": 1}', '["food", 2]', "true"])
def test_a_bad_jsonl_labels_value_is_a_one_line_error(tmp_path, value):
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "bread", "label": "food", "labels": "food"}\n\n'
                    f'{{"text": "goal", "label": "sports", "labels": {value}}}\n')
    with pytest.raises(DataError, match=r"line 3: 'labels' is .*; give a list of label names") as err:
        load_text(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_the_batches_carry_label_sets_for_supcon_only(tmp_path):
    with_sets = SimpleNamespace(train=SimpleNamespace(targets=torch.ones(4, 2)))
    without = SimpleNamespace(train=SimpleNamespace(targets=None))
    supcon = build_config(None, overrides={"method": "supcon"})
    assert label_sets_in_batches(supcon, with_sets) and not label_sets_in_batches(supcon, without)
    for method in ("ce", "simclr", "ce+supcon"):  # they train on the classes (or none)
        assert not label_sets_in_batches(build_config(None, overrides={"method": method}), with_sets)
    memory = build_config(None, overrides={"method": "supcon", "loss.memory": 8})
    with pytest.raises(ValueError, match="label sets cannot be combined with loss.memory") as err:
        label_sets_in_batches(memory, with_sets)
    assert "\n" not in str(err.value)
