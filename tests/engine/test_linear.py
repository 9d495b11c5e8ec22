"""The linear stage's logistic solver (``linear.solver=logistic``) against an independent fit of
the same objective, its choice of C on validation, and a run that uses it end to end."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

import supcon
from supcon.config import ConfigError, LinearConfig, build_config
from supcon.data import eval_loader, load_dataset
from supcon.engine.linear import LOGISTIC_C, bank_accuracy, fit_linear
from supcon.eval import extract_features

LOGISTIC = LinearConfig(solver="logistic")


def digits(classes: int, n: int = 240, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_digits(n_class=classes, return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))[:n]
    return torch.tensor(x[order] / 16.0, dtype=torch.float32), torch.tensor(y[order])


def reference_probabilities(x: torch.Tensor, y: torch.Tensor, classes: int, c: float) -> torch.Tensor:
    """Minimise scikit-learn's objective written out (0.5 |W|^2 + C * summed log loss, bias
    unpenalised) with torch's L-BFGS in float64; multinomial for K > 2, one logistic row for K = 2."""
    x, rows = x.double(), 1 if classes == 2 else classes
    w = torch.zeros(rows, x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(rows, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=5000, tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")

    def objective():
        opt.zero_grad()
        z = x @ w.T + b
        if classes == 2:
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z[:, 0], y.double(), reduction="sum")
        else:
            loss = torch.nn.functional.cross_entropy(z, y, reduction="sum")
        total = 0.5 * (w ** 2).sum() + c * loss
        total.backward()
        return total

    opt.step(objective)
    with torch.no_grad():
        z = x @ w.T + b
        return torch.cat([1 - torch.sigmoid(z), torch.sigmoid(z)], 1) if classes == 2 else z.softmax(1)


@pytest.mark.parametrize("classes", [2, 4])
def test_logistic_solver_matches_the_objective_minimised_independently(classes):
    x, y = digits(classes)
    fitted = fit_linear((x, y), (x[:0], y[:0]), classes, LOGISTIC)
    # no validation split: every C scores 0 and the first (0.01) is kept
    assert fitted.C == LOGISTIC_C[0] and fitted.best_epoch == 1 and len(fitted.history) == len(LOGISTIC_C)
    with torch.no_grad():
        ours = fitted.classifier(x).double().softmax(1)
    torch.testing.assert_close(ours, reference_probabilities(x, y, classes, fitted.C), atol=2e-3, rtol=0)


def test_logistic_solver_keeps_the_first_c_best_on_validation():
    (x, y), (xv, yv) = digits(5, n=60, seed=1), digits(5, n=200, seed=2)
    seen = []
    fitted = fit_linear((x, y), (xv, yv), 5, LOGISTIC, on_epoch=lambda pos, s: seen.append((pos.epoch, s["C"])))
    scores = [100.0 * (LogisticRegression(C=c, max_iter=2000).fit(x.numpy(), y.numpy()).predict(xv.numpy())
                       == yv.numpy()).mean() for c in LOGISTIC_C]
    best = int(np.argmax(scores))
    assert fitted.C == LOGISTIC_C[best] and fitted.best_epoch == best + 1
    assert fitted.val_top1 == pytest.approx(scores[best]) == bank_accuracy(fitted.classifier, (xv, yv))
    assert [h["val_top1"] for h in fitted.history] == pytest.approx(scores)
    assert seen == [(i + 1, c) for i, c in enumerate(LOGISTIC_C)]
    assert fitted.selected() == {"linear_C": fitted.C}


def test_a_class_missing_from_training_is_never_predicted_and_leaves_the_others_alone():
    x, y = digits(4)
    keep = y != 2
    fitted = fit_linear((x[keep], y[keep]), (x[:0], y[:0]), 4, LOGISTIC)
    full = LogisticRegression(C=fitted.C, max_iter=2000).fit(x[keep].numpy(), y[keep].numpy())
    with torch.no_grad():
        probs = fitted.classifier(x).softmax(1)
    assert probs[:, 2].max() == 0 and (probs.argmax(1) != 2).all()
    torch.testing.assert_close(probs[:, [0, 1, 3]], torch.tensor(full.predict_proba(x.numpy()), dtype=torch.float32),
                               atol=1e-5, rtol=0)


def test_a_run_with_the_logistic_solver_saves_and_reports_the_classifier_chosen_on_validation(tiny_config, tmp_path):
    cfg = tiny_config("supcon", "linear.solver=logistic")
    run = tmp_path / "run"
    results = supcon.train(config=cfg, out=run, progress=False)
    assert "linear_best_epoch" not in results
    # again from the exported encoder over the run's own splits
    splits = load_dataset("digits", val_fraction=cfg.data.val_fraction, seed=cfg.train.seed)
    encoder = supcon.load_encoder(run)
    banks = {s: extract_features(encoder, eval_loader(getattr(splits, s), splits.info, batch_size=256, seed=0))
             for s in ("train", "val", "test")}
    again = fit_linear(banks["train"], banks["val"], 10, LOGISTIC)
    assert results["linear_C"] == again.C and results["val_top1"] == pytest.approx(again.val_top1, abs=1e-3)
    saved = torch.nn.Linear(*again.classifier.weight.shape[::-1])
    saved.load_state_dict(load_file(run / "classifier.safetensors"))
    assert results["test_top1"] == pytest.approx(bank_accuracy(saved, banks["test"]), abs=1e-3)
    # L-BFGS stops at scikit-learn's tolerance, so features equal up to float noise give weights a
    # few % apart: the two classifiers are compared by what they predict
    with torch.no_grad():
        agree = (saved(banks["test"][0]).argmax(1) == again.classifier(banks["test"][0]).argmax(1)).double().mean()
    assert agree >= 0.99


def test_an_unknown_solver_is_refused_by_name():
    with pytest.raises(ConfigError, match="linear.solver"):
        build_config(None, dotted=["linear.solver=adam"])
