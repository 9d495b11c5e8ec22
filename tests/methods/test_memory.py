"""The momentum-queue variant: FIFO queue, EMA encoder, its loss and its checkpoints."""

from __future__ import annotations

import collections

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from supcon.cli import build_parser
from supcon.config import build_config
from supcon.engine import train_job
from supcon.engine.checkpoint import load_checkpoint, save_checkpoint
from supcon.engine.loop import LoopSpec, Position, train_loop
from supcon.losses import queue_supcon_loss, supcon_loss
from supcon.methods import KeyQueue, MemorySupCon, create_method
from supcon.models import create_encoder


def tagged(ids: range, dim: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys whose values name them ([id, -id, 0, ...]) and labels id % 3."""
    keys = torch.zeros(len(ids), dim)
    keys[:, 0] = torch.tensor(list(ids), dtype=torch.float32)
    keys[:, 1] = -keys[:, 0]
    return keys, torch.tensor([i % 3 for i in ids], dtype=torch.long)


def test_queue_is_fifo_keeps_labels_with_keys_and_wraps_around():
    queue, reference = KeyQueue(5, 2), collections.deque(maxlen=5)
    start = 0
    for n in (3, 4, 1, 7, 0, 2):  # fills, wraps, overflows in one push, no-op push
        keys, labels = tagged(range(start, start + n))
        queue.push(keys, labels)
        reference.extend(range(start, start + n))
        start += n
        held, held_labels = queue.contents()
        assert held[:, 0].long().tolist() == list(reference)  # oldest first
        assert torch.equal(held[:, 1], -held[:, 0])
        assert held_labels.tolist() == [i % 3 for i in reference]
        assert len(queue) == len(reference)


def test_queue_rejects_bad_input():
    queue = KeyQueue(4, 2)
    with pytest.raises(ValueError, match=r"keys must be \[n, 2\], got \(3, 5\)"):
        queue.push(torch.zeros(3, 5), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must be \[3\] integers"):
        queue.push(torch.zeros(3, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="size must be >= 1, got 0"):
        KeyQueue(0, 2)


def naive_loss(z, labels, keys, key_labels, tau, variant, mode):
    """Written from the paper's formula, one anchor at a time, in float64: anchors are current
    views (view-major; view 0 only for mode "one"), contrasted with the other views and all keys."""
    batch, views, _ = z.shape
    current = [(F.normalize(z[b, v], dim=0), int(labels[b])) for v in range(views) for b in range(batch)]
    contrast = current + [(F.normalize(k, dim=0), int(c)) for k, c in zip(keys, key_labels, strict=True)]
    anchors = current[:batch] if mode == "one" else current
    losses = []
    for i, (anchor, label) in enumerate(anchors):
        others = [(c, lab) for j, (c, lab) in enumerate(contrast) if j != i]
        positives = [c for c, lab in others if lab == label]
        if not positives:
            continue
        denominator = sum(torch.exp(anchor @ c / tau) for c, _ in others)
        ratios = torch.stack([torch.exp(anchor @ p / tau) / denominator for p in positives])
        losses.append(-ratios.log().mean() if variant == "out" else -ratios.mean().log())
    return torch.stack(losses).mean()


@pytest.mark.parametrize("variant", ["out", "in"])
@pytest.mark.parametrize("mode", ["all", "one"])
def test_queue_loss_equals_the_formula_and_supcon_loss_on_the_concatenation(variant, mode):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5, 2, 6, dtype=torch.float64, generator=g, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 2, 3])  # class 3 has one sample: only its other view / keys
    keys = F.normalize(torch.randn(7, 6, dtype=torch.float64, generator=g), dim=1)
    key_labels = torch.tensor([1, 1, 4, 0, 2, 4, 3])  # class 4: only in the queue, never an anchor
    opts = {"temperature": 0.2, "variant": variant, "contrast_mode": mode}
    got = queue_supcon_loss(z, labels, keys, key_labels, **opts)
    (grad,) = torch.autograd.grad(got, z)
    want = naive_loss(z, labels, keys, key_labels, 0.2, variant, mode)
    (want_grad,) = torch.autograd.grad(want, z)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=0)
    torch.testing.assert_close(grad, want_grad, rtol=1e-9, atol=1e-12)
    # supcon_loss on [current views (view-major); keys] with keys (and non-anchors) never anchors
    features = torch.cat([z.transpose(0, 1).reshape(10, 6), keys])
    every = torch.cat([labels, labels, key_labels])
    is_anchor = torch.arange(17) < (5 if mode == "one" else 10)
    mask = is_anchor[:, None] & (every[:, None] == every[None, :])
    direct = supcon_loss(features, mask=mask, temperature=0.2, variant=variant)
    torch.testing.assert_close(got, direct, rtol=1e-12, atol=0)


def test_an_empty_queue_gives_the_plain_supcon_loss():
    z = torch.randn(6, 2, 8)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    empty_keys, empty_labels = KeyQueue(4, 8).contents()
    got = queue_supcon_loss(z, labels, empty_keys, empty_labels, temperature=0.1)
    torch.testing.assert_close(got, supcon_loss(z, labels, temperature=0.1), rtol=1e-6, atol=0)


def tiny_memory(memory: int = 64, momentum: float = 0.9, seed: int = 0):
    torch.manual_seed(seed)
    encoder = create_encoder("small-resnet", in_channels=1, widths=(4, 8), blocks=(1, 1), strides=(1, 2),
                             norm="none")
    method = create_method("supcon", memory=memory, momentum=momentum)
    return method, method.build_model(encoder)


def test_factory_options_and_errors():
    method, model = tiny_memory()
    assert isinstance(method, MemorySupCon) and model.queue.size == 64 and len(model.queue) == 0
    assert not any(p.requires_grad for p in [*model.key_encoder.parameters(), *model.key_head.parameters()])
    for bad, message in [({"memory": 0}, "memory must be >= 1"),
                         ({"memory": 8, "momentum": 1.0}, r"momentum must be in \[0, 1\)"),
                         ({"memory": 8, "variant": "mid"}, "variant")]:
        with pytest.raises(ValueError, match=message):
            create_method("supcon", **bad)
    with pytest.raises(ValueError, match="call build_model first"):
        MemorySupCon().loss_from_embeddings(torch.randn(2, 2, 128), torch.tensor([0, 1]))
    other = tiny_memory()[1]
    with pytest.raises(ValueError, match="not the one build_model returned"):
        method(other, torch.randn(2, 2, 1, 8, 8), torch.tensor([0, 1]))


def test_a_step_contrasts_with_the_queue_then_queues_the_batch_keys():
    method, model = tiny_memory()
    images, labels = torch.randn(4, 2, 1, 8, 8), torch.tensor([0, 1, 0, 2])
    first = method(model, images, labels)
    plain = create_method("supcon", temperature=0.1)(model, images, labels)  # same online weights
    torch.testing.assert_close(first["loss"], plain["loss"])  # empty queue: plain SupCon
    keys, key_labels = model.queue.contents()
    torch.testing.assert_close(keys, model.key_head(model.key_encoder(images.flatten(0, 1))))
    assert key_labels.tolist() == [0, 0, 1, 1, 0, 0, 2, 2]  # each view's key, sample-major
    second = method(model, images, labels)["loss"]
    z = model(images.flatten(0, 1))[1].unflatten(0, (4, 2))
    torch.testing.assert_close(second, queue_supcon_loss(z, labels, keys, key_labels, temperature=0.1))
    assert len(model.queue) == 16


def test_the_loop_updates_the_momentum_encoder_after_each_optimizer_step():
    method, model = tiny_memory(momentum=0.75)
    images, labels = torch.randn(4, 2, 1, 8, 8), torch.tensor([0, 1, 0, 2])
    def snapshot(*modules):
        return [p.detach().clone() for m in modules for p in m.parameters()]

    expected, seen = snapshot(model.encoder, model.head), []  # the copies start equal to these

    def on_step(pos, metrics):
        seen.append((snapshot(model.encoder, model.head), snapshot(model.key_encoder, model.key_head)))

    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    train_loop(model, lambda b: method(model, *b), lambda e, s: [(images, labels)] * 3, optimizer,
               LoopSpec(epochs=1, steps_per_epoch=3, peak_lr=0.5), Position(), on_step=on_step,
               after_step=method.after_step)
    for params, keys in seen:
        expected = [0.75 * k + 0.25 * p for k, p in zip(expected, params, strict=True)]
        for got, want in zip(keys, expected, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    assert not torch.equal(seen[-1][0][0], seen[-1][1][0])  # online and momentum weights differ


def test_queue_and_momentum_state_survive_a_checkpoint_round_trip(tmp_path):
    method, model = tiny_memory(memory=6)
    for start in (0, 4):  # wraps: 8 keys into 6 slots
        model.queue.push(*tagged(range(start, start + 4), 128))
    with torch.no_grad():
        model.encoder.stem[0].weight.add_(1.0)
    method.after_step()
    state = model.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    save_checkpoint({"model": state, "step": 3}, tmp_path / "c.pt")
    _, restored = tiny_memory(memory=6, seed=1)
    restored.load_state_dict(load_checkpoint(tmp_path / "c.pt")["model"])
    for a, b in zip(restored.queue.contents(), model.queue.contents(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(restored.key_encoder.stem[0].weight, model.key_encoder.stem[0].weight)
    for queue in (model.queue, restored.queue):  # and both continue the same way
        queue.push(*tagged(range(8, 11), 128))
    for a, b in zip(restored.queue.contents(), model.queue.contents(), strict=True):
        assert torch.equal(a, b)
    assert restored.queue.contents()[0][:, 0].tolist() == [5, 6, 7, 8, 9, 10]


def test_cli_flag_and_config_checks():
    args = build_parser().parse_args(["train", "--out", "x", "--method", "supcon", "--memory", "8192"])
    assert args.memory == 8192
    cfg = build_config(None, overrides={"loss.memory": 8192})
    assert (cfg.loss.memory, cfg.loss.momentum) == (8192, 0.999)
    for dotted, message in [(["method=simclr", "loss.memory=8"], "loss.memory .* is for method supcon"),
                            (["loss.memory=-1"], "loss.memory must be >= 0"),
                            (["loss.momentum=1.0"], r"loss.momentum must be in \[0, 1\)")]:
        with pytest.raises(ValueError, match=message):
            build_config(None, dotted=dotted)


def test_pipeline_run_with_memory_resumes_exactly(tmp_path, tiny_config, interrupt):
    cfg = tiny_config("supcon", "train.batch_size=256", "train.epochs=1", "linear.epochs=1",
                      "model.encoder_options={widths: [8, 16], blocks: [1, 1], strides: [2, 2]}",
                      "loss.memory=1024", "loss.momentum=0.9", "train.checkpoint_every_steps=2")
    full = train_job.run_training(cfg, tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        train_job.run_training(cfg, tmp_path / "cut", on_checkpoint=interrupt(1))
    saved = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert saved["position"]["step"] == 2 and int(saved["model"]["queue.count"]) == 2 * 512
    resumed = train_job.run_training(cfg, tmp_path / "cut", resume=True)
    assert {k: v for k, v in resumed.items() if k != "train_time_s"} == \
        {k: v for k, v in full.items() if k != "train_time_s"}
    a, b = (load_checkpoint(tmp_path / name / "checkpoint.pt")["model"] for name in ("full", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # queue, momentum encoder and all
    assert int(a["queue.count"]) == 1024 and load_file(str(tmp_path / "full" / "encoder.safetensors"))
