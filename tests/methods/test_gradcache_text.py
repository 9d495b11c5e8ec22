"""Gradient caching on text: a tiny random BERT (written here) trained on micro-batches of texts
gets the gradients of one pass over the batch without dropout, and with dropout the masks of
micro-batches run one after the other (the replay draws them again)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from supcon.data.text import TextBatch  # noqa: E402
from supcon.methods import BACKWARD_DONE, create_method  # noqa: E402
from supcon.methods.base import flat_views, split_rows  # noqa: E402
from supcon.models import create_encoder  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1]))
from _text_data import TOPICS, items, tiny_bert  # noqa: E402

B, VIEWS, MICRO = 6, 2, 2


@pytest.fixture(scope="module")
def berts(tmp_path_factory):
    """The same random BERT twice: with its dropout (0.1) and with none."""
    root = tmp_path_factory.mktemp("bert")
    return tiny_bert(root / "dropout"), tiny_bert(root / "none", dropout=0.0)


def model_and_batch(folder: Path):
    method = create_method("supcon")
    torch.manual_seed(0)
    model = method.build_model(create_encoder(f"transformers:{folder}"))
    model.train()
    names = sorted(TOPICS)
    pairs = items(B, seed=3)
    # texts of different lengths, so each micro-batch pads to its own length
    batch = TextBatch(tuple(text + " very" * i for i, (text, _) in enumerate(pairs)), VIEWS)
    return method, model, batch, torch.tensor([names.index(topic) for _, topic in pairs])


def grads(model) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_without_dropout_micro_batches_give_the_full_batch_gradients(berts):
    method, full, batch, labels = model_and_batch(berts[1])
    reference = method(full, batch, labels)
    reference["loss"].backward()
    _, cached, _, _ = model_and_batch(berts[1])
    out = method(cached, batch, labels, micro_batch_size=MICRO)
    assert out[BACKWARD_DONE] and not out["loss"].requires_grad
    torch.testing.assert_close(out["loss"], reference["loss"].detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["features"], reference["features"], rtol=1e-4, atol=1e-5)
    want = grads(full)
    assert len(want) == sum(1 for _ in full.parameters())  # every parameter took part
    for got, ref in zip(grads(cached), want, strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-3, atol=1e-5)


def test_with_dropout_the_replay_draws_each_micro_batchs_masks_again(berts):
    method, reference_model, batch, labels = model_and_batch(berts[0])
    torch.manual_seed(7)  # the reference: each micro-batch through the model with gradients, in order
    z = torch.cat([reference_model(part)[1] for part in split_rows(flat_views(batch), MICRO * VIEWS)])
    method.loss_from_embeddings(z.unflatten(0, (B, VIEWS)), labels).backward()
    after = torch.rand(3)
    _, cached, _, _ = model_and_batch(berts[0])
    torch.manual_seed(7)
    method(cached, batch, labels, micro_batch_size=MICRO)
    assert torch.equal(torch.rand(3), after)  # the stream continues as if each pass ran once
    for got, ref in zip(grads(cached), grads(reference_model), strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-3, atol=1e-5)
