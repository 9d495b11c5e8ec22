"""Text end to end with a tiny random BERT the test writes (nothing downloaded): `supcon train` on
a CSV folder, `supcon.train` on (str, int) items, every method at every precision with
micro-batches and the momentum queue where it takes them, resume equal to an uninterrupted run,
`supcon.load_encoder` in a fresh process that imports none of the training code, `supcon eval`
skipping the image-only corruptions, and the modality mismatches as one-line errors."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("transformers")

import supcon  # noqa: E402
from supcon import cli  # noqa: E402
from supcon.config import METHODS, PRECISIONS, build_config  # noqa: E402
from supcon.engine.train_job import run_training  # noqa: E402
from supcon.models import create_encoder  # noqa: E402
from supcon.workflows.grid import StudySpec  # noqa: E402
from supcon.workflows.sweep import run_sweep  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _text_data import TOPICS, csv_folder, items, tiny_bert, write_csv  # noqa: E402

ROOT = Path(__file__).parents[1]
# a few steps of a tiny model: batch 8, AdamW at a fine-tuning learning rate
SMALL = {"train.batch_size": 8, "train.epochs": 4, "optim.name": "adamw", "optim.lr": 5e-3,
         "optim.warmup_epochs": 0.0, "data.num_workers": 0, "linear.epochs": 5}


@pytest.fixture(scope="module")
def text_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    return tiny_bert(root / "bert"), csv_folder(root / "topics", n_train=48, n_test=24)


def int_items(n: int, seed: int) -> list[tuple[str, int]]:
    names = sorted(TOPICS)
    return [(text, names.index(topic)) for text, topic in items(n, seed)]


def test_cli_trains_a_csv_folder_and_eval_skips_corruptions(text_files, tmp_path, capsys):
    bert, data = text_files
    run = tmp_path / "run"
    argv = ["train", "--data", str(data), "--out", str(run), "--method", "supcon", "--no-progress",
            f"model.encoder=transformers:{bert}", *(f"{k}={v}" for k, v in SMALL.items())]
    assert cli.main(argv) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["method"] == "supcon" and results["steps"] == 4 * (43 // 8)  # 48 - 5 val texts
    assert 0.0 <= results["test_top1"] <= 100.0
    meta = json.loads((run / "encoder.json").read_text())
    assert meta["modality"] == "text" and meta["class_names"] == sorted(TOPICS) and meta["num_features"] == 32
    assert (run / "encoder_files" / "tokenizer.json").is_file()
    log = (run / "train.log").read_text()
    assert "43 train / 5 val / 24 test texts" in log and "texts/s" in log and "img/s" not in log
    capsys.readouterr()
    assert cli.main(["eval", "--run", str(run), "--embedding", "none"]) == 0
    printed = capsys.readouterr().out
    assert "corruption robustness is image-only: skipped for this text run" in printed
    report = json.loads((run / "eval.json").read_text())
    assert report["corruptions"] is None and report["linear"]["top1"] == pytest.approx(results["test_top1"], abs=1e-3)


def test_train_on_str_int_items_then_load_encoder_in_a_fresh_process(text_files, tmp_path):
    bert, _ = text_files
    out = tmp_path / "run"
    results = supcon.train(encoder=f"transformers:{bert}", train_set=int_items(48, 0), test_set=int_items(24, 1),
                           method="ce+supcon", out=out, progress=False, **SMALL)
    assert results["method"] == "ce+supcon" and results["data"] == "object:list"
    # learned: the topic words separate the classes (chance: 33%; 100% for tiny BERTs of seeds 0-2)
    assert results["test_top1"] > 80.0, results
    texts = [text for text, _ in int_items(5, 7)]
    script = ("import sys, torch, supcon\n"
              f"enc = supcon.load_encoder({str(out)!r})\n"
              f"with torch.no_grad():\n    torch.save(enc({texts!r}), 'features.pt')\n"
              "print(sorted(m for m in sys.modules if m.startswith('supcon.') and m.split('.')[1] in "
              "('engine', 'methods', 'data', 'api')))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "[]"  # nothing of the training code was imported
    encoder = supcon.load_encoder(out)
    with torch.no_grad():
        want = encoder(texts)
    assert want.shape == (5, 32)
    torch.testing.assert_close(torch.load(tmp_path / "features.pt", weights_only=True), want)
    saved = load_file(out / "encoder.safetensors")
    assert all(torch.equal(saved[k], v) for k, v in encoder.state_dict().items())


def test_resume_of_a_text_run_equals_an_uninterrupted_run(text_files, tmp_path, interrupt):
    bert, data = text_files
    cfg = build_config(None, overrides={"method": "supcon", "data.name": str(data), **SMALL,
                                        "model.encoder": f"transformers:{bert}", "train.checkpoint_every_steps": 3})
    straight = run_training(cfg, tmp_path / "straight")
    stop = interrupt(2)
    with pytest.raises(KeyboardInterrupt):
        run_training(cfg, tmp_path / "resumed", on_checkpoint=stop)
    assert stop.positions[-1]["step"] == 5  # step 3, then the end of epoch 1
    resumed = run_training(cfg, tmp_path / "resumed", resume=True)
    for key in ("test_top1", "val_top1", "steps"):
        assert resumed[key] == straight[key], key
    a, b = (load_file(tmp_path / name / "encoder.safetensors") for name in ("straight", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)


# The options each method takes besides precision (the config refuses the others for it, as for images).
TAKES = {"supcon": {"train.micro_batch_size": 3, "loss.memory": 16}, "simclr": {"train.micro_batch_size": 3},
         "ce": {}, "ce+supcon": {}}


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_text_at_every_precision_with_the_options_it_takes(text_files, tmp_path, method,
                                                                                 precision):
    bert, data = text_files
    cfg = build_config(None, overrides={"method": method, "data.name": str(data), **SMALL, "train.epochs": 1,
                                        "linear.epochs": 1, "model.encoder": f"transformers:{bert}",
                                        "train.precision": precision, **TAKES[method]})
    torch.manual_seed(0)
    encoder = create_encoder(f"transformers:{bert}")
    initial = {name: p.detach().clone() for name, p in encoder.named_parameters()}
    results = run_training(cfg, tmp_path, encoder=encoder)
    assert results["steps"] == 43 // 8
    epochs = [r for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())
              if r["stage"] == "pretrain_epoch"]
    assert len(epochs) == 1 and math.isfinite(epochs[0]["loss"])
    changed = [n for n, p in encoder.named_parameters() if not torch.equal(p.detach().cpu(), initial[n])]
    assert len(changed) > len(initial) // 2, "most of the encoder's parameters should have moved"
    assert all(bool(torch.isfinite(p).all()) for p in encoder.parameters())


def test_supcon_on_a_csv_folder_with_label_sets_gives_the_loss_their_rows(text_files, tmp_path, monkeypatch):
    bert, _ = text_files
    tags = {"food": "food;home", "sports": "sports;outdoor", "tech": "tech;home"}
    data = tmp_path / "tagged"
    data.mkdir()
    train = [(t, y, tags[y]) for t, y in items(24, seed=0)]
    write_csv(data / "train.csv", train, header=("text", "label", "labels"))
    write_csv(data / "test.csv", items(12, seed=1))
    columns = ["food", "home", "outdoor", "sports", "tech"]  # the sorted names of the label sets
    rows = {tuple(float(c in s.split(";")) for c in columns) for s in tags.values()}
    import supcon.losses.supcon as loss_module  # what the method's SupConLoss calls

    seen, real = [], loss_module.supcon_loss

    def spy(z, labels, *args, **kwargs):
        seen.append((tuple(labels.shape), {tuple(r) for r in labels.reshape(len(labels), -1).tolist()},
                     kwargs["label_overlap"]))
        return real(z, labels, *args, **kwargs)

    monkeypatch.setattr(loss_module, "supcon_loss", spy)
    results = supcon.train(encoder=f"transformers:{bert}", train_set=str(data), method="supcon", out=tmp_path / "run",
                           progress=False, **{**SMALL, "train.epochs": 1, "linear.epochs": 1,
                                              "loss.label_overlap": "jaccard"})
    assert results["steps"] == (24 - 2) // 8  # 2 validation texts carved
    assert seen and all(shape == (8, 5) and got <= rows and how == "jaccard" for shape, got, how in seen)


def test_controlled_compare_on_text_shares_no_augmentation_and_reports(text_files, tmp_path, capsys):
    bert, data = text_files
    out = tmp_path / "compare"
    argv = ["compare", "--methods", "ce,supcon", "--seeds", "2", "--data", str(data), "--epochs", "1", "--out",
            str(out), "--no-progress", "--embedding", "none", "--lr-grid", "0.005", "--temperature-grid", "0.1",
            f"model.encoder=transformers:{bert}", "train.batch_size=8", "optim.name=adamw",
            "optim.warmup_epochs=0", "data.num_workers=0", "linear.epochs=2"]
    assert cli.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    # dropout views only: no augmentation policy and no row of ce with its own augmentation
    assert [r["key"] for r in summary["rows"]] == ["ce", "supcon"]
    assert summary["design"]["augmentation"] == "none" and summary["design"]["corruptions"] == []
    assert all(len(summary["values"][k]["clean_top1"]) == 2 for k in ("ce", "supcon"))
    assert "Not evaluated" in (out / "report.md").read_text()
    capsys.readouterr()
    assert cli.main([*argv[:-5], "--augmentation", "simaugment", "--out", str(tmp_path / "again"),
                     *argv[-5:]]) == 0  # the default, named: still none
    assert cli.main([*argv, "--augmentation", "randaugment"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: --augmentation and --baseline-augmentation name image policies; a text encoder's views are "
        "dropout views: leave them unset")


def test_study_on_text_tests_the_claims_text_can_test(text_files, tmp_path, caplog):
    bert, data = text_files
    out = tmp_path / "study"
    argv = ["study", "--methods", "ce,supcon", "--seeds", "2", "--claim-seeds", "2", "--data", str(data),
            "--epochs", "1", "--out", str(out), "--no-progress", "--embedding", "none", "--lr-grid", "0.005",
            "--temperature-grid", "0.1", f"model.encoder=transformers:{bert}", "train.batch_size=8",
            "optim.name=adamw", "optim.warmup_epochs=0", "data.num_workers=0", "linear.epochs=1"]
    with caplog.at_level("INFO", logger="supcon"):
        assert cli.main(argv) == 0
    assert "text encoder: the study leaves out the image claims (robustness, stability)" in caplog.text
    plan = json.loads((out / "plan.json").read_text())
    assert "--claims accuracy,calibration,lout-lin,equal-compute" in plan["command"]
    rows = json.loads((out / "summary.json").read_text())["claims"]
    assert rows[0]["claim"].startswith("SupCon reaches higher top-1") and rows[0]["family"] == "primary"
    verdicts = {r["endpoint"]: r["verdict"] for r in rows}
    # what needs corruptions is stated as not measured; the rest is tested
    assert {e for e, v in verdicts.items() if v == "not measured"} == {"corrupted_ece", "equal-compute mce"}
    assert {"clean_top1", "ece", "probe_ece", "lout-lin", "equal-compute clean_top1"} <= set(verdicts)


def test_modality_mismatches_are_one_line_errors(text_files, tmp_path):
    bert, data = text_files
    with pytest.raises(ValueError, match=r"holds texts but model.encoder=small-resnet reads images") as err:
        supcon.train(train_set=str(data), out=tmp_path / "a", progress=False, **SMALL)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"reads texts but data digits holds images"):
        supcon.train(encoder=f"transformers:{bert}", train_set="digits", out=tmp_path / "b", progress=False, **SMALL)
    with pytest.raises(ValueError, match=r"data.augmentation=simaugment is an image policy"):
        build_config(None, overrides={"model.encoder": f"transformers:{bert}", "data.augmentation": "simaugment"})
    with pytest.raises(ValueError, match=r"failed on a list of 2 strings"):
        supcon.train(encoder=torch.nn.Conv2d(1, 4, 3), train_set=int_items(12, 0), out=tmp_path / "c",
                     progress=False, **SMALL)
    spec = StudySpec(out=tmp_path / "d", methods=("ce",), data=str(data),
                     overrides=(f"model.encoder=transformers:{bert}",))
    with pytest.raises(ValueError, match=r"--vary augmentation varies image policies; a text encoder's views"):
        run_sweep(spec, "augmentation")
