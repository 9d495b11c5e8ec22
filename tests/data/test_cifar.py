"""CIFAR read from the binary and python versions, without running code from the files."""

from __future__ import annotations

import codecs
import os
import pickle
import re

import numpy as np
import pytest
import torch

from supcon.data import DataError, load_dataset
from supcon.data.cifar import read_cifar_bin
from supcon.data.safe_pickle import load_cifar_pickle


def _load(name, root, **kw):
    return load_dataset(name, data_dir=root, download=False, val_fraction=0.0, **kw)


@pytest.mark.parametrize("hundred", [False, True])
def test_every_layout_gives_the_same_images_and_labels(tmp_path, no_env, fmt, hundred):
    name = "cifar100" if hundred else "cifar10"
    loaded = {}
    for layout in fmt.cifar_layouts:
        w = fmt.write_cifar(tmp_path / layout, hundred=hundred, seed=5, layout=layout)
        s = _load(name, tmp_path / layout)
        # the written truth: fine labels (not the coarse byte before them), test split as written
        assert torch.equal(s.test.images, torch.from_numpy(w["test"][0]))
        assert torch.equal(s.test.labels, torch.from_numpy(w["test"][1]))
        assert torch.equal(s.train.images, torch.from_numpy(w["train"][0]))
        assert s.info.class_names == tuple(w["names"])
        loaded[layout] = s
    ref = loaded["bin"]
    for s in loaded.values():
        assert torch.equal(s.train.images, ref.train.images) and torch.equal(s.train.labels, ref.train.labels)


def test_pixels_are_channel_planar_rows_of_32(tmp_path, no_env, fmt):
    """A record is R plane, G plane, B plane, each row-major: a known pixel lands at [c, y, x]."""
    w = fmt.write_cifar(tmp_path, layout="bin")
    path = w["folder"] / "test_batch.bin"
    planes = np.zeros((3, 32, 32), np.uint8)
    planes[0] += 10
    planes[1] += 20
    planes[2] += 30
    planes[1, 3, 7] = 200  # green, row 3, column 7
    record = bytes([4]) + planes[0].tobytes() + planes[1].tobytes() + planes[2].tobytes()
    path.write_bytes(record + path.read_bytes()[len(record):])
    s = _load("cifar10", tmp_path)
    first = s.test.images[0]
    assert s.test.labels[0] == 4
    assert first[1, 3, 7] == 200 and first[0, 3, 7] == 10 and first[2, 3, 7] == 30
    assert first[1, 7, 3] == 20  # not transposed
    assert int((first == 200).sum()) == 1


def test_binary_version_wins_when_both_are_present(tmp_path, no_env, fmt):
    binary = fmt.write_cifar(tmp_path, layout="bin", seed=1)
    fmt.write_cifar(tmp_path, layout="py2", seed=2)
    s = _load("cifar10", tmp_path)
    assert torch.equal(s.test.images, torch.from_numpy(binary["test"][0]))


def test_missing_set_names_both_layouts(tmp_path, no_env):
    with pytest.raises(DataError, match="cifar-100-binary, .*cifar-100-python"):
        _load("cifar100", tmp_path)


def test_truncated_binary_file_is_reported_by_name(tmp_path, no_env, fmt):
    w = fmt.write_cifar(tmp_path, layout="bin")
    path = w["folder"] / "data_batch_2.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=f"CIFAR file {re.escape(str(path))} holds .* not a whole number"):
        _load("cifar10", tmp_path)


def test_binary_label_out_of_range(tmp_path, no_env, fmt):
    w = fmt.write_cifar(tmp_path, hundred=True, layout="bin")
    path = w["folder"] / "test.bin"
    good = path.read_bytes()
    bad_fine = bytearray(good)
    bad_fine[2 * 3074 + 1] = 100  # record 2: coarse byte, then the fine label
    path.write_bytes(bytes(bad_fine))
    with pytest.raises(DataError, match="record 2 has label 100, outside 0..99"):
        _load("cifar100", tmp_path)
    bad_coarse = bytearray(good)
    bad_coarse[0] = 20
    path.write_bytes(bytes(bad_coarse))
    with pytest.raises(DataError, match="record 0 has coarse label 20, outside 0..19"):
        read_cifar_bin(path, 2, 100)


class _Payload:
    """Unpickling this runs ``touch marker`` (what a trojan batch would do)."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path, no_env, fmt):
    w = fmt.write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    blob = pickle.dumps({b"data": _Payload(marker), b"labels": [0]}, protocol=2)
    path = w["folder"] / "data_batch_1"
    path.write_bytes(blob)
    expected = f"refusing to load {re.escape(str(path))}: it asks to import {os.system.__module__}.system"
    with pytest.raises(DataError, match=expected):
        _load("cifar10", tmp_path)
    assert not marker.exists()
    # the payload is live: a plain pickle.loads would have run it
    pickle.loads(blob)
    assert marker.exists()


@pytest.mark.parametrize(
    "obj, message",
    [
        (np.array([1, 2], dtype=object), "not a plain numeric type"),  # allowed names, object dtype
        (type("Enc", (), {"__reduce__": lambda self: (codecs.encode, ("x", "rot13"))})(),
         "not a bytes literal"),
        (print, "asks to import __builtin__.print"),  # protocol 2 writes the Python 2 name
    ],
)
def test_allowed_names_cannot_be_misused(tmp_path, obj, message):
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({b"data": obj}, protocol=2))
    with pytest.raises(DataError, match=message):
        load_cifar_pickle(path)


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_numpy_reduce_pickles_round_trip(tmp_path, protocol):
    """What numpy's own ``__reduce__`` writes (any protocol up to 4) is read back exactly."""
    data = np.random.default_rng(0).integers(0, 256, (7, 3072), dtype=np.uint8)
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({b"data": data, "labels": [1] * 7, b"batch_label": b"x"}, protocol=protocol))
    got = load_cifar_pickle(path)
    assert set(got) == {"data", "labels", "batch_label"}  # bytes keys decoded
    assert np.array_equal(got["data"], data) and got["data"].dtype == np.uint8
    assert got["labels"] == [1] * 7


@pytest.mark.parametrize("layout, missing", [("py2", "test_batch"), ("bin", "test_batch.bin"),
                                             ("py2", "batches.meta"), ("bin", "batches.meta.txt")])
def test_a_missing_file_is_named(tmp_path, no_env, fmt, layout, missing):
    w = fmt.write_cifar(tmp_path, layout=layout)
    (w["folder"] / missing).unlink()
    with pytest.raises(DataError, match=f"cannot read CIFAR .*{re.escape(missing)}: No such file"):
        _load("cifar10", tmp_path)


def test_damaged_python_batch_is_reported_by_name(tmp_path, no_env, fmt):
    w = fmt.write_cifar(tmp_path)
    path = w["folder"] / "data_batch_3"
    path.write_bytes(pickle.dumps({"nothing": 1}))
    with pytest.raises(DataError, match=f"CIFAR file {re.escape(str(path))} has no 'data' entry"):
        _load("cifar10", tmp_path)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match=f"could not read {re.escape(str(path))}"):
        _load("cifar10", tmp_path)


def test_download_fetches_the_python_version_and_reads_it_safely(tmp_path, no_env, fmt, monkeypatch):
    """No network: the archive download is replaced by writing the files it would unpack."""
    import torchvision.datasets.cifar as tv_cifar

    calls = []

    def fake_download(url, download_root, filename=None, md5=None, **kw):
        calls.append((url, download_root, filename, md5))
        calls.append(fmt.write_cifar(tmp_path / "cache", layout="py2", seed=3))

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", fake_download)
    s = load_dataset("cifar10", data_dir=tmp_path / "cache", download=True, val_fraction=0.0)
    (url, root, filename, md5), written = calls
    assert url.endswith("/cifar-10-python.tar.gz") and filename == "cifar-10-python.tar.gz" and md5
    assert root == str(tmp_path / "cache")
    assert torch.equal(s.test.images, torch.from_numpy(written["test"][0]))


def test_failed_download_is_one_data_error(tmp_path, no_env, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    def offline(*args, **kw):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    with pytest.raises(DataError, match="cifar100 is not on disk and downloading it into .* failed "
                                        r"\(OSError: network is unreachable\)"):
        load_dataset("cifar100", data_dir=tmp_path, download=True)
