"""`supcon eval` on tiny finished runs: eval.json agrees with the pure functions it wraps."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import supcon
from supcon.config import load_config
from supcon.data import eval_loader, load_dataset
from supcon.eval import corruption_errors, expected_calibration_error, extract_features, knn_top1
from supcon.workflows import eval_corruptions
from supcon.workflows.eval_data import preprocess_fn, to_channels

PNG = b"\x89PNG\r\n\x1a\n"


def copy_run(runs, method, tmp_path):
    return shutil.copytree(runs[method], tmp_path / method)


def banks_of(run):
    """Independent re-computation: the exported encoder over the run's own splits."""
    cfg = load_config(run / "config.yaml")
    splits = load_dataset("digits", val_fraction=cfg.data.val_fraction, seed=cfg.train.seed)
    encoder = supcon.load_encoder(run)
    banks = {s: extract_features(encoder, eval_loader(getattr(splits, s), splits.info, batch_size=256, seed=0))
             for s in ("train", "val", "test")}
    weights = load_file(str(run / "classifier.safetensors"))
    classifier = nn.Linear(*weights["weight"].shape[::-1])
    classifier.load_state_dict(weights)
    return splits, encoder, classifier, banks


def hand_mce(run_eval, ref_eval):
    """mCE and relative mCE from the two error tables, formulas written out (docs/evaluation.md)."""
    e, r = run_eval["corruptions"], ref_eval["corruptions"]
    kept = [c for c in e["error"] if abs(sum(x - r["clean"]["error"] for x in r["error"][c])) > 1e-12]
    ce = [sum(e["error"][c]) / sum(r["error"][c]) for c in kept]
    rel = [sum(x - e["clean"]["error"] for x in e["error"][c])
           / sum(x - r["clean"]["error"] for x in r["error"][c]) for c in kept]
    return np.mean(ce), np.mean(rel), kept


def test_eval_matches_the_pure_functions(runs, tmp_path, cli, fast_eval):
    run, ref = copy_run(runs, "supcon", tmp_path), copy_run(runs, "ce", tmp_path)
    code, out, err = cli("eval", "--run", run, "--reference", ref, *fast_eval,
                         "--embedding", "tsne", "--embedding-samples", "40")
    assert code == 0, err
    result = json.loads((run / "eval.json").read_text())
    results = json.loads((run / "results.json").read_text())
    assert "linear top-1" in out and str(run / "eval.json") in out
    assert f"probe top-1      {round(result['probe']['top1'], 4)}" in out  # the same-head probe's numbers
    assert f"probe ECE        {round(result['probe']['ece'], 4)}" in out
    assert "linear top-5" in out and result["linear"]["top5"] >= result["linear"]["top1"]  # 10 classes
    assert abs(result["linear"]["top1"] - results["test_top1"]) < 1e-3
    assert abs(result["linear"]["val_top1"] - results["val_top1"]) < 1e-3
    splits, encoder, classifier, banks = banks_of(run)
    (tr, tr_y), (te, te_y) = banks["train"], banks["test"]
    assert result["knn"]["top1"] == pytest.approx(100 * knn_top1(tr, tr_y, te, te_y, k=200), abs=1e-4)
    with torch.no_grad():
        ece = expected_calibration_error(classifier(te), te_y, 15).ece
    assert result["calibration"]["ece"] == pytest.approx(ece, abs=1e-6)
    # the corruption table: the same subsample through encoder + classifier, computed directly
    idx = torch.randperm(len(te_y), generator=torch.Generator().manual_seed(0))[:60].sort().values
    direct = corruption_errors(nn.Sequential(encoder, classifier), splits.test.images[idx],
                               splits.test.labels[idx], preprocess=preprocess_fn(splits.info),
                               corruptions=["contrast", "fog"], seed=0, batch_size=500)
    corr = result["corruptions"]
    assert corr["samples"] == 60 and corr["of"] == len(te_y) and "subsample" in corr["note"]
    for c in ("contrast", "fog"):
        assert corr["error"][c] == pytest.approx(direct["error"][c], abs=1e-6)
        assert corr["top1"][c] == pytest.approx([100 * (1 - e) for e in direct["error"][c]], abs=1e-4)
    assert corr["ece_per_severity"][0] == pytest.approx(direct["clean"]["ece"], abs=1e-6)
    # plots
    for name in ("reliability.png", "corruptions.png", "embedding.png", "gradients.png"):
        assert (run / name).read_bytes()[:8] == PNG, name
    grads = result["gradients"]
    n = 2 * grads["images"]
    assert sum(grads["positives"]["count"]) + sum(grads["negatives"]["count"]) == grads["anchors"] * (n - 1)
    for bins in (grads["positives"], grads["negatives"]):  # bins of equal counts: none is empty
        assert min(bins["count"]) >= max(bins["count"]) - 1 >= 1
        assert all(lo <= m <= hi for lo, m, hi in zip(bins["cosine_lo"], bins["mean_cosine"], bins["cosine_hi"],
                                                      strict=True))


def test_mce_uses_the_reference_errors_fresh_or_cached(runs, tmp_path, cli, fast_eval):
    run, ref = copy_run(runs, "supcon", tmp_path), copy_run(runs, "ce", tmp_path)
    (run / "embedding.png").write_bytes(PNG)  # as if left by an earlier evaluation
    assert cli("eval", "--run", run, "--reference", ref, *fast_eval)[0] == 0  # computed now
    fresh = json.loads((run / "eval.json").read_text())["reference"]
    assert not (run / "embedding.png").exists()  # --embedding none: no stale plot is left
    assert cli("eval", "--run", ref, "--reference", ref, *fast_eval)[0] == 0  # ce vs itself
    own = json.loads((ref / "eval.json").read_text())
    assert cli("eval", "--run", run, "--reference", ref, *fast_eval)[0] == 0  # from ref's eval.json
    result = json.loads((run / "eval.json").read_text())
    assert result["reference"] == fresh
    mce, rel, kept = hand_mce(result, own)
    assert kept, "contrast and fog should change the reference's error"
    assert result["reference"]["mce"] == pytest.approx(mce, rel=1e-5)
    assert result["reference"]["relative_mce"] == pytest.approx(rel, rel=1e-5)
    assert own["reference"]["mce"] == pytest.approx(1.0) and own["reference"]["relative_mce"] == pytest.approx(1.0)
    assert "gradients" not in own and not (ref / "gradients.png").exists()  # ce has no head


def test_a_corruption_the_reference_ignores_is_dropped_with_a_note():
    table = {"severities": [1, 2], "clean": {"error": 0.1},
             "error": {"a": [0.3, 0.5], "b": [0.2, 0.2], "c": [0.4, 0.4]}}
    reference = {"severities": [1, 2], "clean": {"error": 0.2},
                 "error": {"a": [0.4, 0.6], "b": [0.2, 0.2], "c": [0.3, 0.5]}}
    out = eval_corruptions.against_reference(table, reference)
    assert out["dropped"] == ["b"] and "b: dropped" in out["notes"][0]
    # CE_a = 0.8 / 1.0, CE_c = 0.8 / 0.8; rCE_a = 0.6 / 0.6, rCE_c = 0.6 / 0.4
    assert out["mce"] == pytest.approx((0.8 + 1.0) / 2)
    assert out["relative_mce"] == pytest.approx((1.0 + 1.5) / 2)
    nothing = eval_corruptions.against_reference({**table, "error": {"b": [0.2, 0.2]}}, reference)
    assert nothing["mce"] is None and nothing["dropped"] == ["b"]


def test_channel_rule_repeats_grey_and_takes_luma_of_rgb():
    rgb = torch.tensor([[[[200]], [[100]], [[50]]]], dtype=torch.uint8)  # [1, 3, 1, 1]
    grey = to_channels(rgb, 1)
    assert grey.shape == (1, 1, 1, 1) and int(grey) == round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    back = to_channels(grey, 3)
    assert back.shape == (1, 3, 1, 1) and back.flatten().tolist() == [int(grey)] * 3


def make_rgb_folder(root, size=20, per_class=15):
    """Three classes of RGB images told apart by where a bright stripe is."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(("left", "middle", "right")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (size, size, 3))
            img[:, k * 7 : k * 7 + 6] = (250, 200, 100)
            Image.fromarray(img.astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def test_transfer_fits_a_new_head_on_another_data_set(runs, tmp_path, cli, fast_eval):
    run = copy_run(runs, "supcon", tmp_path)
    folder = make_rgb_folder(tmp_path / "stripes")
    code, out, err = cli("eval", "--run", run, "--data", folder, *fast_eval)
    assert code == 0, err
    result = json.loads((run / "transfer-stripes" / "eval.json").read_text())
    assert not (run / "eval.json").exists()  # the run's own evaluation is not overwritten
    t = result["transfer"]
    assert (t["source_channels"], t["encoder_channels"], t["num_classes"]) == (3, 1, 3)
    assert (t["source_image_size"], t["encoder_image_size"]) == (20, 32)
    assert "fitted" in result["linear"]["classifier"]
    assert "top5" not in result["linear"] and "top-5" not in out  # 3 classes: top-5 is always 100%
    assert result["linear"]["top1"] > 50.0  # 3 classes: chance is 33%; the stripes are easy
    assert result["corruptions"]["of"] == result["linear"]["test_images"]
    assert (run / "transfer-stripes" / "reliability.png").read_bytes()[:8] == PNG


def _break(run, what):
    if what == "checkpoint-missing":
        (run / "checkpoint.pt").unlink()
    elif what == "checkpoint-corrupt":
        (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    elif what == "encoder-corrupt":
        (run / "encoder.safetensors").write_bytes(b"\x00" * 64)
    elif what == "classifier-missing":
        (run / "classifier.safetensors").unlink()
    elif what == "unfinished":
        (run / "results.json").unlink()


@pytest.mark.parametrize("what, expect", [
    ("not-a-run", "not a run folder"), ("checkpoint-missing", "checkpoint.pt is missing"),
    ("checkpoint-corrupt", "checkpoint.pt is corrupt"), ("encoder-corrupt", "encoder.safetensors"),
    ("classifier-missing", "classifier.safetensors is missing"), ("unfinished", "not finished"),
    ("reference-missing", "--reference"), ("reference-other-data", "trained on 'mnist'"),
    ("unknown-corruption", "unknown ['snow']"),
])
def test_bad_input_is_one_line_and_exit_code_2(what, expect, runs, tmp_path, cli):
    run = copy_run(runs, "ce", tmp_path)
    args = ["eval", "--run", run, "--embedding", "none"]
    if what == "not-a-run":
        args[2] = tmp_path / "empty"
        args[2].mkdir()
    elif what == "reference-missing":
        args += ["--reference", tmp_path / "nowhere"]
    elif what == "reference-other-data":
        other = shutil.copytree(run, tmp_path / "other")
        config = other / "config.yaml"
        config.write_text(config.read_text().replace("name: digits", "name: mnist"))
        args += ["--reference", other]
    elif what == "unknown-corruption":
        args += ["--corruptions", "contrast,snow"]
    else:
        _break(run, what)
    code, out, err = cli(*args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and expect in err, err
    assert not (run / "eval.json").exists()


def test_eval_says_each_phase_with_an_eta_and_lists_the_files_it_wrote(runs, tmp_path, cli):
    """Not a terminal (a log, CI): one line per phase (an ETA, or its time when it ends before
    the line is due), no bar redraws; at the end every file written, one per line."""
    run = copy_run(runs, "supcon", tmp_path)
    code, out, err = cli("eval", "--run", run, "--corruptions", "contrast", "--severities", "1,2",
                         "--corruption-samples", "60", "--embedding-samples", "40")
    assert code == 0, err
    assert "\r" not in err
    for phase in ("features", "corruptions", "embedding (t-SNE)", "gradients"):
        said = [line for line in err.splitlines() if line.startswith(f"{phase}: ")]
        assert len(said) == 1 and ("ETA" in said[0] or "done in" in said[0]), (phase, err)
    written = [line for line in out.splitlines() if line.startswith(("eval:", "plot:"))]
    assert written == [f"eval: {run / 'eval.json'}"] + [
        f"plot: {run / name}" for name in ("reliability.png", "corruptions.png", "embedding.png", "gradients.png")]


def test_eval_draws_bars_on_a_terminal(runs, tmp_path, monkeypatch):
    import io
    import sys

    from supcon.workflows import EvalOptions, evaluate_run

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    evaluate_run(copy_run(runs, "supcon", tmp_path), EvalOptions(corruptions=("contrast",), severities=(1,),
                                                              corruption_samples=30, embedding="none",
                                                              gradients=False))
    drawn = terminal.getvalue()
    assert "\r" in drawn and "features" in drawn and "corruptions" in drawn


PROBE_EVAL = dict(corruptions=("contrast", "fog"), severities=(1, 2), corruption_samples=60, embedding="none",
                  gradients=False)


def test_probe_is_a_linear_probe_fitted_on_the_frozen_encoder_for_ce(runs, tmp_path):
    """ce's saved classifier was trained with the encoder: eval.json's ``probe`` is a new linear
    probe with the linear stage's settings, the same one `fit_linear` gives on the same features."""
    from supcon.engine.linear import fit_linear
    from supcon.workflows import EvalOptions, evaluate_run

    run = copy_run(runs, "ce", tmp_path)
    result = evaluate_run(run, EvalOptions(**PROBE_EVAL), progress=False)
    cfg = load_config(run / "config.yaml")
    splits, encoder, _, banks = banks_of(run)
    fitted = fit_linear(banks["train"], banks["val"], 10, cfg.linear, cfg.train.seed)
    te, te_y = banks["test"]
    with torch.no_grad():
        logits = fitted.classifier(te)
    probe = result["probe"]
    assert probe["ece"] == pytest.approx(expected_calibration_error(logits, te_y, 15, from_logits=True).ece, abs=1e-5)
    assert probe["top1"] == pytest.approx(100 * (logits.argmax(1) == te_y).double().mean().item(), abs=1e-3)
    assert probe["val_top1"] == pytest.approx(fitted.val_top1, abs=1e-3)
    assert "fitted" in probe["classifier"] and probe["ece"] != result["calibration"]["ece"]
    # under corruption: the same subsample through encoder + probe, mean ECE over corruptions per severity
    idx = torch.randperm(len(te_y), generator=torch.Generator().manual_seed(0))[:60].sort().values
    direct = corruption_errors(nn.Sequential(encoder, fitted.classifier), splits.test.images[idx],
                               splits.test.labels[idx], preprocess=preprocess_fn(splits.info),
                               corruptions=["contrast", "fog"], severities=[1, 2], seed=0, batch_size=500)
    by_severity = [direct["clean"]["ece"]] + [(direct["ece"]["contrast"][i] + direct["ece"]["fog"][i]) / 2
                                              for i in range(2)]
    assert probe["ece_per_severity"] == pytest.approx(by_severity, abs=1e-5)
    # the run's own classifier is still what `linear`, `calibration` and `corruptions` report
    assert result["linear"]["top1"] == pytest.approx(json.loads((run / "results.json").read_text())["test_top1"],
                                                     abs=1e-3)


def test_probe_of_a_contrastive_run_is_its_linear_stage(runs, tmp_path):
    from supcon.workflows import EvalOptions, evaluate_run

    result = evaluate_run(copy_run(runs, "supcon", tmp_path), EvalOptions(**PROBE_EVAL), progress=False)
    probe = result["probe"]
    assert "linear stage" in probe["classifier"]
    assert (probe["top1"], probe["val_top1"]) == (result["linear"]["top1"], result["linear"]["val_top1"])
    assert probe["ece"] == result["calibration"]["ece"]
    assert probe["ece_per_severity"] == result["corruptions"]["ece_per_severity"]


def test_a_cached_evaluation_without_probe_is_redone(runs, tmp_path, monkeypatch):
    from supcon.workflows import EvalOptions, evaluate
    from supcon.workflows.evaluate import evaluate_if_needed

    run = copy_run(runs, "supcon", tmp_path)
    options = EvalOptions(**{**PROBE_EVAL, "corruptions": ()})
    first = evaluate_if_needed(run, options)
    calls = []
    monkeypatch.setattr(evaluate, "evaluate_run", lambda *a, **k: calls.append(a) or {"probe": "new"})
    assert evaluate_if_needed(run, options) == first and not calls  # same settings: reused
    old = {k: v for k, v in first.items() if k != "probe"}  # written before eval.json had a probe
    (run / "eval.json").write_text(json.dumps(old))
    assert evaluate_if_needed(run, options) == {"probe": "new"} and len(calls) == 1
