"""train.compile and train.channels_last: the fast settings change speed, not results."""

from __future__ import annotations

import logging

import pytest
import torch

from supcon.engine import compilation
from supcon.engine.compilation import CompiledOrEager, maybe_compile, why_not_compilable
from supcon.methods import create_method
from supcon.models import create_encoder

TINY = {"widths": [8, 16], "blocks": [1, 1], "strides": [1, 2], "stem_stride": 2}


def _model_and_batch(seed: int = 0):
    torch.manual_seed(seed)
    method = create_method("supcon", temperature=0.1, head="mlp", feat_dim=8)
    model = method.build_model(create_encoder("small-resnet", in_channels=1, **TINY), 3)
    images = torch.randn(6, 2, 1, 12, 12)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    return method, model, images, labels


def _loss_and_grads(method, model, net, images, labels):
    model.zero_grad(set_to_none=True)
    loss = method(net, images, labels)["loss"]
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def _assert_same(a, b, atol: float) -> None:
    torch.testing.assert_close(a[0], b[0], atol=atol, rtol=1e-4)
    for name in a[1]:
        torch.testing.assert_close(a[1][name], b[1][name], atol=atol, rtol=1e-3, msg=name)


def test_channels_last_gives_the_same_loss_and_gradients():
    method, model, images, labels = _model_and_batch()
    eager = _loss_and_grads(method, model, model, images, labels)
    model = model.to(memory_format=torch.channels_last)
    assert next(p for p in model.parameters() if p.dim() == 4).is_contiguous(
        memory_format=torch.channels_last)
    _assert_same(eager, _loss_and_grads(method, model, model, images, labels), atol=1e-6)


@pytest.mark.skipif(why_not_compilable(torch.device("cpu")) is not None,
                    reason="torch.compile cannot run here")
def test_compiled_step_gives_the_same_loss_and_gradients():
    """One compiled step against one eager step from the same weights: loss and every gradient
    agree to 1e-5 (inductor fuses and reorders float32 sums, so not bit for bit)."""
    method, model, images, labels = _model_and_batch()
    eager = _loss_and_grads(method, model, model, images, labels)
    compiled = maybe_compile(model, True, torch.device("cpu"))
    assert isinstance(compiled, CompiledOrEager)
    result = _loss_and_grads(method, model, compiled, images, labels)
    assert compiled.compiled, "the step did not go through the compiled module"
    _assert_same(eager, result, atol=1e-5)


def test_compile_off_returns_the_module_itself():
    _, model, _, _ = _model_and_batch()
    assert maybe_compile(model, False, torch.device("cpu")) is model


def test_no_compiler_warns_once_and_trains_eagerly(monkeypatch, caplog):
    monkeypatch.setattr(compilation.shutil, "which", lambda name: None)
    _, model, _, _ = _model_and_batch()
    with caplog.at_level(logging.WARNING, logger="supcon"):
        assert maybe_compile(model, True, torch.device("cpu")) is model
    assert [r.getMessage() for r in caplog.records] == [
        "train.compile: the CPU backend needs a C++ compiler (g++ or clang++) and none is on "
        "PATH; training eagerly"]


def test_failure_at_the_first_call_falls_back_to_eager(monkeypatch, caplog):
    def broken_compile(module):
        def call(*args, **kwargs):
            raise RuntimeError("inductor: unsupported op\nlong traceback text")
        return call

    monkeypatch.setattr(compilation.torch, "compile", broken_compile)
    method, model, images, labels = _model_and_batch()
    eager = _loss_and_grads(method, model, model, images, labels)
    wrapped = CompiledOrEager(model)
    with caplog.at_level(logging.WARNING, logger="supcon"):
        result = _loss_and_grads(method, model, wrapped, images, labels)
        _loss_and_grads(method, model, wrapped, images, labels)  # no second warning
    assert not wrapped.compiled
    assert [r.getMessage() for r in caplog.records] == [
        "train.compile: compiling the model failed (RuntimeError: inductor: unsupported op); "
        "training eagerly"]
    _assert_same(eager, result, atol=0.0)
