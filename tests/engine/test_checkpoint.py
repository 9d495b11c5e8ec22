import os
import pickle

import pytest
import torch

from supcon.engine import checkpoint as ck


def test_round_trip_keeps_tensors_rng_and_plain_values(tmp_path):
    torch.manual_seed(3)
    state = {"model": {"w": torch.randn(3, 2)}, "position": {"epoch": 2, "batch": 5, "step": 17},
             "rng": ck.rng_state(), "config": {"method": "supcon", "optim": {"lr": 0.1}}}
    expected_next = torch.rand(4)
    ck.save_checkpoint(state, tmp_path / "c.pt")
    loaded = ck.load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])
    assert loaded["position"] == state["position"] and loaded["config"] == state["config"]
    ck.set_rng_state(loaded["rng"])
    assert torch.equal(torch.rand(4), expected_next)


def test_a_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    ck.save_checkpoint({"v": torch.tensor(1)}, path)

    def exploding_save(obj, f):
        f.write(b"partial garbage")
        raise KeyboardInterrupt  # a kill in the middle of the write

    monkeypatch.setattr(ck.torch, "save", exploding_save)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint({"v": torch.tensor(2)}, path)
    monkeypatch.undo()
    assert ck.load_checkpoint(path)["v"].item() == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left behind


def test_torn_and_malicious_files_are_refused(tmp_path):
    torn = tmp_path / "torn.pt"
    ck.save_checkpoint({"v": torch.arange(1000)}, torn)
    data = torn.read_bytes()
    torn.write_bytes(data[: len(data) // 2])
    with pytest.raises(ck.CheckpointError, match="unreadable"):
        ck.load_checkpoint(torn)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(ck.CheckpointError, match="unreadable"):
        ck.load_checkpoint(evil)
    with pytest.raises(ck.CheckpointError, match="no checkpoint"):
        ck.load_checkpoint(tmp_path / "missing.pt")


def _cfg(*dotted):
    from supcon.config import build_config

    return build_config(None, dotted=["data.name=digits", *dotted]).to_dict()


def test_resume_check_ignores_worker_count_but_not_results_keys(tmp_path):
    state = {"config": _cfg("data.num_workers=0"), "world_size": 1}
    ck.check_resumable(state, _cfg("data.num_workers=4"), 1, tmp_path)  # no error
    with pytest.raises(ck.CheckpointError, match=r"differs .*\(optim.lr: 0.05 -> 0.2\)"):
        ck.check_resumable(state, _cfg("optim.lr=0.2"), 1, tmp_path)
    with pytest.raises(ck.CheckpointError, match=r"\(data.n_views: 2 -> 3\)"):
        ck.check_resumable(state, _cfg("data.n_views=3", "data.num_workers=2"), 1, tmp_path)


def test_resume_check_refuses_another_world_size_and_accepts_old_checkpoints(tmp_path):
    state = {"config": _cfg(), "world_size": 2}
    ck.check_resumable(state, _cfg(), 2, tmp_path)
    with pytest.raises(ck.CheckpointError, match="written by 2 process\\(es\\), this run has 1"):
        ck.check_resumable(state, _cfg(), 1, tmp_path)
    old = _cfg()
    del old["data"]["image_size"]  # a key added after the checkpoint was written: its default
    ck.check_resumable({"config": old}, _cfg(), 4, tmp_path)  # no world_size stored: accepted


def test_resume_check_sees_a_relative_folder_as_its_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "imgs").mkdir()
    monkeypatch.chdir(tmp_path)
    old = _cfg()
    old["data"]["name"] = "./imgs"  # as runs stored it before paths were made absolute
    ck.check_resumable({"config": old}, _cfg(f"data.name={tmp_path / 'imgs'}"), 1, tmp_path)
    with pytest.raises(ck.CheckpointError, match="data.name"):
        ck.check_resumable({"config": old}, _cfg(), 1, tmp_path)
