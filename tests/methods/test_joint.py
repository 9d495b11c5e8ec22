"""ce+supcon: the joint loss against its formula, CE + lambda * SupCon, each written naively in
float64 from its definition (CE over every view; SupCon's L_out over the views of the batch)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from supcon.config import build_config
from supcon.engine.components import method_from_config
from supcon.methods import CrossEntropySupCon, create_method


class Flat(nn.Module):
    """The identity encoder on flattened inputs: r is the input itself."""

    num_features = 6

    def forward(self, x):
        return x.flatten(1)


def naive_ce(logits, labels):
    return sum(-math.log(math.exp(row[y]) / sum(math.exp(v) for v in row))
               for row, y in zip(logits.tolist(), labels.tolist(), strict=True)) / len(labels)


def naive_supcon(z, labels, tau):
    """L_out over the N = B*V views (sample-major), anchors without a positive left out."""
    z, labels = z.tolist(), labels.tolist()
    dot = [[sum(a * b for a, b in zip(zi, zj, strict=True)) / tau for zj in z] for zi in z]
    losses = []
    for i in range(len(z)):
        denominator = sum(math.exp(dot[i][a]) for a in range(len(z)) if a != i)
        positives = [p for p in range(len(z)) if p != i and labels[p] == labels[i]]
        if positives:
            losses.append(-sum(math.log(math.exp(dot[i][p]) / denominator) for p in positives) / len(positives))
    return sum(losses) / len(losses)


def reference(model, images, labels, weight, tau):
    """The formula on the model's own head and classifier, in float64."""
    views = images.shape[1]
    r = images.flatten(0, 1).flatten(1).double()
    head, classifier = model.head.double(), model.classifier.double()
    with torch.no_grad():
        z = nn.functional.normalize(head(r), dim=1)
        logits = classifier(r)
    repeated = labels.repeat_interleave(views)
    model.float()
    return naive_ce(logits, repeated) + weight * naive_supcon(z, repeated, tau)


@pytest.mark.parametrize("views,weight,tau", [(2, 1.0, 0.1), (2, 0.3, 0.5), (1, 2.0, 0.1)])
def test_ce_plus_supcon_is_ce_plus_lambda_times_supcon(views, weight, tau):
    torch.manual_seed(views)
    images = torch.randn(5, views, 6, 1, 1)
    labels = torch.tensor([0, 1, 0, 2, 1])
    method = CrossEntropySupCon(temperature=tau, supcon_weight=weight)
    model = method.build_model(Flat(), num_classes=3)
    out = method(model, images, labels)
    want = reference(model, images, labels, weight, tau)
    assert out["loss"].item() == pytest.approx(want, rel=1e-5)
    assert out["loss"].item() == pytest.approx(out["ce_loss"].item() + weight * out["supcon_loss"].item(), rel=1e-6)
    assert out["features"].shape == (5, 6) and torch.equal(out["features"], images[:, 0].flatten(1))


def test_one_view_images_may_come_without_the_view_axis():
    torch.manual_seed(0)
    images, labels = torch.randn(4, 6, 1, 1), torch.tensor([0, 1, 1, 0])
    method = CrossEntropySupCon()
    model = method.build_model(Flat(), num_classes=2)
    assert method(model, images, labels)["loss"].item() == pytest.approx(
        method(model, images[:, None], labels)["loss"].item(), rel=1e-6)


def test_weight_zero_is_plain_cross_entropy_and_gradients_reach_head_and_classifier():
    torch.manual_seed(1)
    images, labels = torch.randn(6, 2, 6, 1, 1), torch.tensor([0, 1, 2, 0, 1, 2])
    joint = CrossEntropySupCon(supcon_weight=0.0)
    model = joint.build_model(Flat(), num_classes=3)
    out = joint(model, images, labels)
    ce = nn.functional.cross_entropy(model.classifier(images.flatten(0, 1).flatten(1)), labels.repeat_interleave(2))
    assert out["loss"].item() == pytest.approx(ce.item(), rel=1e-6)
    CrossEntropySupCon(supcon_weight=1.0)(model, images, labels)["loss"].backward()
    for part in (model.head, model.classifier):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_config_builds_it_with_lambda_and_its_defaults():
    cfg = build_config(None, overrides={"method": "ce+supcon", "loss.supcon_weight": 0.5})
    method = method_from_config(cfg)
    assert isinstance(method, CrossEntropySupCon) and method.supcon_weight == 0.5
    assert (cfg.data.n_views, cfg.loss.temperature, method.multi_view) == (2, 0.1, False)
    with pytest.raises(ValueError, match="supcon_weight"):
        build_config(None, overrides={"method": "ce+supcon", "loss.supcon_weight": -1.0})
    with pytest.raises(ValueError, match="micro_batch_size"):
        create_method("ce+supcon")(None, torch.zeros(2, 2, 1, 1, 1), torch.zeros(2, dtype=torch.long),
                                   micro_batch_size=1)
