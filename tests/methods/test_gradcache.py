"""Gradient caching: micro-batched steps give the gradients of one backward pass over the batch."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from supcon.engine import train_job
from supcon.engine.loop import LoopSpec, Position, train_loop
from supcon.methods import BACKWARD_DONE, ContrastiveModel, create_method, gradcache
from supcon.methods.gradcache import cached_backward
from supcon.models import ProjectionHead, create_encoder


def tiny_model(method, norm: str):
    torch.manual_seed(0)
    encoder = create_encoder("small-resnet", in_channels=1, widths=(4, 8), blocks=(1, 1), strides=(1, 2),
                             norm=norm)
    return method.build_model(encoder)


def batch(b: int = 12):
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, 2, 1, 8, 8, generator=g), torch.randint(0, 3, (b,), generator=g)


def grads(model: nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("norm", ["none", "group"])
@pytest.mark.parametrize("name, micro", [("supcon", 1), ("supcon", 5), ("simclr", 4)])
def test_micro_batched_gradients_equal_the_full_batch_step(norm, name, micro):
    method = create_method(name)
    images, labels = batch()
    full = tiny_model(method, norm)
    reference = method(full, images, labels)  # one forward and backward over the batch
    reference["loss"].backward()
    cached = tiny_model(method, norm)
    out = method(cached, images, labels, micro_batch_size=micro)
    assert out[BACKWARD_DONE] and not out["loss"].requires_grad
    torch.testing.assert_close(out["loss"], reference["loss"].detach(), rtol=1e-6, atol=0)
    torch.testing.assert_close(out["features"], reference["features"], rtol=1e-5, atol=1e-6)
    for got, want in zip(grads(cached), grads(full), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


def test_a_micro_batch_covering_the_batch_leaves_backward_to_the_loop():
    method = create_method("supcon")
    images, labels = batch(4)
    out = method(tiny_model(method, "none"), images, labels, micro_batch_size=4)
    assert not out[BACKWARD_DONE] and out["loss"].requires_grad


class DropoutEncoder(nn.Module):
    """Flatten -> Linear -> Dropout: its output depends on the random masks drawn."""

    num_features = 16

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Dropout(0.5))

    def forward(self, x):
        return self.net(x)


def dropout_setup():
    torch.manual_seed(0)
    model = ContrastiveModel(DropoutEncoder(), ProjectionHead(16, kind="linear", out_dim=8))
    flat = torch.randn(10, 1, 8, 8)
    labels = torch.tensor([0, 1, 0, 2, 1])

    def loss_fn(z):  # z [10, D] sample-major -> SupCon on [5, 2, D]
        return create_method("supcon").loss_from_embeddings(z.unflatten(0, (5, 2)), labels)
    return model, flat, loss_fn


def chunked_reference(chunk: int):
    """Each micro-batch through the model with gradients, in order, one graph: the random masks
    are drawn exactly as gradient caching's first pass draws them."""
    model, flat, loss_fn = dropout_setup()
    torch.manual_seed(7)
    z = torch.cat([model(part)[1] for part in flat.split(chunk)])
    loss_fn(z).backward()
    return grads(model), torch.rand(3)


def test_rng_is_replayed_so_dropout_masks_match():
    want, rng_after = chunked_reference(4)
    model, flat, loss_fn = dropout_setup()
    torch.manual_seed(7)
    cached_backward(model, lambda m, x: m(x)[1], loss_fn, flat, 4)
    for got, ref in zip(grads(model), want, strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-7)
    assert torch.equal(torch.rand(3), rng_after)  # the stream continues as if each ran once


def test_without_the_replay_the_gradients_would_differ(monkeypatch):
    want, _ = chunked_reference(4)
    monkeypatch.setattr(gradcache._RngState, "restore", lambda self: None)
    model, flat, loss_fn = dropout_setup()
    torch.manual_seed(7)
    cached_backward(model, lambda m, x: m(x)[1], loss_fn, flat, 4)
    assert not all(torch.allclose(g, r, rtol=1e-3) for g, r in zip(grads(model), want, strict=True))


def test_batchnorm_uses_micro_batch_statistics_and_updates_running_stats_once():
    method = create_method("supcon")
    images, labels = batch(8)
    ref_model = tiny_model(method, "batch")
    z = torch.cat([method.embed(ref_model, part) for part in images.flatten(0, 1).split(6)])
    method.loss_from_embeddings(z.unflatten(0, (8, 2)), labels).backward()
    model = tiny_model(method, "batch")
    method(model, images, labels, micro_batch_size=3)  # 3 images = 6 views
    for got, want in zip(grads(model), grads(ref_model), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    for (name, got), want in zip(model.state_dict().items(), ref_model.state_dict().values(), strict=True):
        torch.testing.assert_close(got, want, msg=name)  # running stats: once per micro-batch


def test_the_loop_steps_on_cached_gradients_and_scales_them():
    method = create_method("supcon")
    images, labels = batch(8)
    trained = {}
    for micro in (None, 2):
        model = tiny_model(method, "none")
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)

        def step(b, model=model, micro=micro):
            return method(model, *b, micro_batch_size=micro)
        spec = LoopSpec(epochs=1, steps_per_epoch=3, peak_lr=0.5)
        train_loop(model, step, lambda epoch, start: [(images, labels)] * 3, optimizer, spec, Position())
        trained[micro] = [p.detach().clone() for p in model.parameters()]
    for got, want in zip(trained[2], trained[None], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    initial = list(tiny_model(method, "none").parameters())
    assert not all(torch.equal(a, b) for a, b in zip(trained[2], initial, strict=True))  # it trained
    model = tiny_model(method, "none")
    method(model, images, labels, micro_batch_size=2, grad_scale=8.0)
    scaled = grads(model)
    model.zero_grad()
    method(model, images, labels, micro_batch_size=2)
    for big, small in zip(scaled, grads(model), strict=True):
        torch.testing.assert_close(big, 8 * small, rtol=1e-5, atol=1e-7)


def fp16_steps(micro: int | None, init_scale: float, steps: int = 2):
    """``steps`` SGD steps of the loop under fp16 autocast with a GradScaler; the step reads the
    scale as the train job's does (only gradient caching, which back-propagates itself, needs it)."""
    method = create_method("supcon")
    images, labels = batch(8)
    model = tiny_model(method, "none")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale)

    def step(b):
        scale = scaler.get_scale() if micro is not None else 1.0
        return method(model, *b, micro_batch_size=micro, grad_scale=scale)
    spec = LoopSpec(epochs=1, steps_per_epoch=steps, peak_lr=0.5, precision="fp16")
    train_loop(model, step, lambda epoch, start: [(images, labels)] * steps, optimizer, spec, Position(),
               scaler=scaler)
    return [p.detach().clone() for p in model.parameters()], scaler


def test_fp16_loss_scaling_with_micro_batches_steps_like_the_full_batch():
    initial = list(tiny_model(create_method("supcon"), "none").parameters())
    full, full_scaler = fp16_steps(None, 2.0**10)
    cached, scaler = fp16_steps(2, 2.0**10)
    assert scaler.get_scale() == full_scaler.get_scale() == 2.0**10  # no overflow, no step skipped
    for got, want, start in zip(cached, full, initial, strict=True):
        assert not torch.equal(want, start)
        # fp16 rounds each micro-batch differently; a scale left in (or divided twice) is 1024x off
        torch.testing.assert_close(got - start, want - start, rtol=0.05, atol=1e-4)


def test_fp16_overflow_with_micro_batches_skips_the_step_as_the_scaler_does():
    initial = list(tiny_model(create_method("supcon"), "none").parameters())
    for micro in (None, 2):  # the scaled gradients overflow fp16: inf, step skipped, scale halved
        params, scaler = fp16_steps(micro, 2.0**40, steps=1)
        assert scaler.get_scale() == 2.0**39, micro
        assert all(torch.equal(p, start) for p, start in zip(params, initial, strict=True)), micro


def test_pipeline_with_micro_batches_trains_the_same_encoder(tmp_path, tiny_config, norm_free):
    # Norm-free and 5 steps: training amplifies float rounding (even a permuted batch drifts
    # ~1e-4 by step 20, and GroupNorm on near-constant digit borders amplifies it further)
    tiny = ["train.batch_size=256", "train.epochs=1", norm_free, "linear.epochs=1", "data.augmentation=none",
            "train.online_probe=false"]
    for name, extra in (("full", []), ("micro", ["train.micro_batch_size=64"])):
        train_job.run_training(tiny_config("supcon", *tiny, *extra), tmp_path / name)
    full = load_file(str(tmp_path / "full" / "encoder.safetensors"))
    micro = load_file(str(tmp_path / "micro" / "encoder.safetensors"))
    for key in full:
        torch.testing.assert_close(micro[key], full[key], rtol=1e-5, atol=1e-6, msg=key)


def test_bad_inputs():
    method = create_method("supcon")
    with pytest.raises(ValueError, match=r"images must be \[B, V, C, H, W\]"):
        method(tiny_model(method, "none"), torch.randn(4, 1, 8, 8), None)
    with pytest.raises(ValueError, match="chunk_size must be >= 1, got 0"):
        cached_backward(nn.Linear(2, 2), lambda m, x: m(x), torch.sum, torch.randn(3, 2), 0)
