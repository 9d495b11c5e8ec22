import math

import pytest
import torch
from torch import nn

from supcon.config import OptimConfig
from supcon.engine.optim import LARS, build_optimizer, lr_at, param_groups, peak_lr


def test_the_linear_scaling_rule_applies_only_when_asked():
    assert peak_lr(OptimConfig(lr=0.05, scale_lr=True), 1024) == pytest.approx(0.05 * 4)
    assert peak_lr(OptimConfig(lr=0.05, scale_lr=True), 128) == pytest.approx(0.025)
    assert peak_lr(OptimConfig(lr=0.05, scale_lr=False), 1024) == 0.05


def test_warmup_then_cosine_matches_formula():
    total, warm, peak = 100, 10, 0.5
    lrs = [lr_at(s, total, warm, peak) for s in range(total)]
    assert lrs[0] == pytest.approx(peak / warm)
    assert lrs[warm - 1] == pytest.approx(peak)
    for s in range(warm, total):
        expected = peak * 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm)))
        assert lrs[s] == pytest.approx(expected)
    assert max(lrs) == pytest.approx(peak) and lrs[-1] < 0.01 * peak


def test_biases_and_norms_get_no_weight_decay():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 3, 5, 5))
    decay, no_decay = param_groups(model, 1e-4)
    assert {p.ndim for p in decay["params"]} == {4, 2}
    assert all(p.ndim == 1 for p in no_decay["params"]) and no_decay["weight_decay"] == 0


@pytest.mark.parametrize("name", ["sgd", "lars", "rmsprop", "adamw"])
def test_every_optimizer_reduces_a_quadratic(name):
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    opt = build_optimizer(model, OptimConfig(name=name, weight_decay=0.0), lr={"lars": 1.0}.get(name, 0.02))
    first = None
    for _ in range(50):
        loss = ((model(x) - y) ** 2).mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first


def test_lars_step_matches_hand_computation():
    w = nn.Parameter(torch.tensor([3.0, 4.0]))  # |w| = 5
    b = nn.Parameter(torch.tensor([1.0]))
    opt = LARS([{"params": [w], "weight_decay": 0.1, "adapt": True},
                {"params": [b], "weight_decay": 0.0, "adapt": False}], lr=0.5, momentum=0.9, eta=0.01)
    w.grad = torch.tensor([0.0, 1.0])  # |g| = 1
    b.grad = torch.tensor([2.0])
    opt.step()
    trust = 0.01 * 5 / (1 + 0.1 * 5)
    expected = torch.tensor([3.0, 4.0]) - 0.5 * trust * (torch.tensor([0.0, 1.0]) + 0.1 * torch.tensor([3.0, 4.0]))
    assert torch.allclose(w.detach(), expected)
    assert torch.allclose(b.detach(), torch.tensor([0.0]))  # plain SGD: 1 - 0.5 * 2


def test_head_lr_scale_multiplies_the_step_of_the_parameters_outside_the_encoder():
    """One plain SGD step: the encoder moves lr * g, the head head_lr_scale * lr * g."""
    from supcon.engine.optim import set_lr

    torch.manual_seed(0)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.head = nn.Linear(3, 4), nn.Linear(4, 2)

    model = Model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = build_optimizer(model, OptimConfig(name="sgd", momentum=0.0, weight_decay=0.0, head_lr_scale=100.0), lr=1.0)
    set_lr(opt, 1e-3)
    model.head(model.encoder(torch.randn(5, 3))).square().sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    opt.step()
    for name, param in model.named_parameters():
        scale = 100.0 if name.startswith("head.") else 1.0
        torch.testing.assert_close(param.detach(), before[name] - 1e-3 * scale * grads[name])
    # scale 1 keeps the two groups of before (checkpoints' optimizer state keeps its layout)
    assert len(param_groups(model, 1e-4)) == 2 and len(param_groups(model, 1e-4, 100.0)) == 4
