"""build_loader: batch shapes, worker-count independence, resume, persistent workers, RNG."""

from __future__ import annotations

from collections import Counter

import torch

from supcon.data import AugmentedDataset, MultiView, build_loader, build_transform, load_dataset


def _augmented(views=2, seed=0):
    splits = load_dataset("digits")
    t = build_transform("simaugment", splits.info)
    return AugmentedDataset(splits.train, MultiView(t, views) if views else t, seed=seed), splits


def _run(loader, epoch, start=0, limit=4):
    loader.set_epoch(epoch, start)
    out = []
    for k, (x, y) in enumerate(loader):
        out.append((x, y))
        if k + 1 == limit:
            break
    return out


def test_batches_have_the_contract_shapes():
    ds, splits = _augmented(views=2)
    x, y = next(iter(build_loader(ds, batch_size=16, shuffle=True, seed=0)))
    assert x.shape == (16, 2, 1, 32, 32) and x.dtype == torch.float32
    assert y.shape == (16,) and y.dtype == torch.int64
    single, _ = _augmented(views=0)
    x1, _ = next(iter(build_loader(single, batch_size=8)))
    assert x1.shape == (8, 1, 32, 32)


def test_workers_and_resume_give_the_same_batches():
    ds, _ = _augmented()
    main = build_loader(ds, batch_size=32, shuffle=True, seed=1, drop_last=True)
    ref0, ref1 = _run(main, 0), _run(main, 1)
    workers = build_loader(ds, batch_size=32, shuffle=True, seed=1, drop_last=True, num_workers=2)
    got0, got1 = _run(workers, 0), _run(workers, 1)  # persistent workers see epoch 1 too
    for (xa, ya), (xb, yb) in zip(ref0 + ref1, got0 + got1, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(ref0[0][0], ref1[0][0])
    resumed = _run(
        build_loader(ds, batch_size=32, shuffle=True, seed=1, drop_last=True), 1, start=2, limit=2
    )
    assert all(torch.equal(a[0], b[0]) for a, b in zip(ref1[2:], resumed, strict=True))


def test_class_balanced_loader():
    ds, _ = _augmented()
    loader = build_loader(ds, batch_size=20, per_class=4, seed=0)
    for _, y in _run(loader, 0, limit=5):
        assert set(Counter(y.tolist()).values()) == {4} and len(set(y.tolist())) == 5


def test_loading_leaves_the_global_rng_alone():
    ds, _ = _augmented()
    loader = build_loader(ds, batch_size=16, seed=0)
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    _run(loader, 0, limit=2)
    assert torch.equal(torch.rand(4), expected)
