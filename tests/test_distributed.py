"""Distributed training on CPU with gloo: 2 processes must reproduce one process on the whole batch
(images, and texts on a tiny BERT).

The single-process references are computed in each worker *before* it joins the process group
(so nothing in them gathers), then the same step runs under DDP on the worker's half of the batch.
Workers are forked (the test module is not importable by name in a spawned child) and run on one
thread each.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from supcon import distributed as dist
from supcon.engine import train_job
from supcon.methods import BACKWARD_DONE, create_method
from supcon.models import create_encoder

WORLD = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(fn, *args) -> None:
    """Run ``fn(rank, *args)`` in WORLD forked processes joined by a gloo group; re-raise failures."""
    mp.start_processes(_entry, args=(fn, free_port(), args), nprocs=WORLD, start_method="fork")


def _entry(rank: int, fn, port: int, args) -> None:
    torch.set_num_threads(1)
    fn(rank, lambda: tdist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD), *args)
    if tdist.is_initialized():
        tdist.destroy_process_group()


# ----------------------------------------------------------------------------- single process


def test_helpers_are_no_ops_on_one_process(monkeypatch):
    for name in dist.TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    assert not dist.init_from_env("cpu") and dist.world_size() == 1 and dist.is_main()
    x = torch.randn(3, 2, requires_grad=True)
    assert dist.gather_with_grad(x) is x and dist.gather(x) is x and dist.all_reduce_mean(x) is x
    model = torch.nn.Linear(2, 2)
    assert dist.wrap_model(model, torch.device("cpu"), sync_bn=True) is model
    assert dist.unwrap(model) is model
    dist.teardown()


def test_init_from_env_rejects_a_bad_environment(monkeypatch):
    env = {"RANK": "0", "WORLD_SIZE": "two", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match="WORLD_SIZE must be an integer, got 'two'"):
        dist.init_from_env("cpu")
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun with one process: nothing to join
    assert not dist.init_from_env("cpu")


# ----------------------------------------------------------------------------- two processes


def _gather_semantics(rank: int, init) -> None:
    init()
    x = (torch.arange(6.0).reshape(3, 2) + 10 * rank).requires_grad_()
    y = dist.gather_with_grad(x)
    assert torch.equal(y.detach(), torch.cat([torch.arange(6.0).reshape(3, 2) + 10 * r for r in range(WORLD)]))
    weights = [torch.arange(12.0).reshape(6, 2) * (r + 1) ** 2 for r in range(WORLD)]
    (weights[rank] * y).sum().backward()  # a different objective on each rank
    assert torch.equal(x.grad, sum(weights)[3 * rank : 3 * rank + 3])  # my slice of the sum
    assert torch.equal(dist.gather(torch.tensor([rank, 7])), torch.tensor([0, 7, 1, 7]))
    assert dist.all_reduce_mean(torch.tensor(float(rank))).item() == 0.5


def test_gather_with_grad_returns_each_rank_its_slice_of_the_summed_gradient():
    run_ranks(_gather_semantics)


def _make(kind: str):
    """A norm-free tiny model (same weights on every call) and its method."""
    torch.manual_seed(0)
    encoder = create_encoder("small-resnet", in_channels=1, widths=(4, 8), blocks=(1, 1), strides=(1, 2),
                             norm="none")
    method = create_method("simclr" if kind == "simclr" else "supcon",
                           **({"memory": 40, "momentum": 0.9} if kind == "memory" else {}))
    model = method.build_model(encoder)
    if kind == "memory":  # a known queue, the same for the reference and the DDP run
        g = torch.Generator().manual_seed(1)
        model.queue.push(torch.nn.functional.normalize(torch.randn(12, 128, generator=g), dim=1),
                         torch.randint(0, 3, (12,), generator=g))
    return method, model


CASES = [("supcon", None), ("simclr", None), ("supcon", 1), ("memory", None), ("memory", 3)]


def _steps_match_one_process(rank: int, init) -> None:
    g = torch.Generator().manual_seed(2)
    images, labels = torch.randn(8, 2, 1, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)
    refs = []
    for kind, _ in CASES:  # one process, whole batch, before joining the group
        method, model = _make(kind)
        loss = method(model, images, labels)["loss"]
        loss.backward()
        refs.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad],
                     model.queue.contents() if kind == "memory" else None))
    init()
    half = slice(4 * rank, 4 * rank + 4)
    for (kind, micro), (ref_loss, ref_grads, ref_queue) in zip(CASES, refs, strict=True):
        method, model = _make(kind)
        ddp = dist.wrap_model(model, torch.device("cpu"))
        out = method(ddp, images[half], labels[half], micro_batch_size=micro)
        if not out[BACKWARD_DONE]:
            out["loss"].backward()
        where = f"{kind}, micro-batch {micro}, rank {rank}"
        torch.testing.assert_close(out["loss"].detach(), ref_loss, rtol=1e-5, atol=1e-6, msg=where)
        grads = [p.grad for p in model.parameters() if p.requires_grad]  # DDP-averaged
        for got, want in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6, msg=where)
        if ref_queue is not None:  # every rank queued the global batch's keys, in the same order
            for got, want in zip(model.queue.contents(), ref_queue, strict=True):
                torch.testing.assert_close(got, want, msg=where)


def test_two_process_step_equals_one_process_on_the_whole_batch():
    run_ranks(_steps_match_one_process)


def test_two_process_text_step_equals_one_process_on_the_whole_batch(tmp_path):
    pytest.importorskip("transformers")
    sys.path.insert(0, str(Path(__file__).parent))
    from _text_data import tiny_bert

    bert = tiny_bert(tmp_path / "bert", dropout=0.0)  # so both passes draw nothing random
    run_ranks(_text_steps_match_one_process, bert)


def _text_steps_match_one_process(rank: int, init, bert: Path) -> None:
    from supcon.data.text import TextBatch

    texts = ("the goal and the match", "bread", "code with data today and a new chip robot", "soup",
             "a new team score", "very good cake with salt today", "cloud phone", "the coach")
    labels = torch.tensor([1, 0, 2, 0, 1, 0, 2, 1])

    def make():
        torch.manual_seed(0)
        method = create_method("supcon")
        return method, method.build_model(create_encoder(f"transformers:{bert}"))

    method, model = make()  # one process, whole batch, before joining the group
    loss = method(model, TextBatch(texts, 2), labels)["loss"]
    loss.backward()
    want = [p.grad.clone() for p in model.parameters()]
    init()
    method, model = make()
    ddp = dist.wrap_model(model, torch.device("cpu"))
    half = slice(4 * rank, 4 * rank + 4)  # rank 1 also caches its gradients in micro-batches
    out = method(ddp, TextBatch(texts[half], 2), labels[half], micro_batch_size=2 if rank else None)
    if not out[BACKWARD_DONE]:
        out["loss"].backward()
    torch.testing.assert_close(out["loss"].detach(), loss.detach(), rtol=1e-5, atol=1e-6)
    for got, ref in zip([p.grad for p in model.parameters()], want, strict=True):  # DDP-averaged
        torch.testing.assert_close(got, ref, rtol=1e-3, atol=1e-5)


def _pipeline_and_resume(rank: int, init, tmp: Path, cfg, interrupt) -> None:
    init()
    full = train_job.run_training(cfg, tmp / "full")
    try:  # every rank stops at the same checkpoint, so none waits in a collective
        train_job.run_training(cfg, tmp / "cut", on_checkpoint=interrupt(1))
    except KeyboardInterrupt:
        dist.barrier()  # rank 0 has written the checkpoint before any rank looks for it
    else:
        raise AssertionError("the run was not interrupted")
    assert not (tmp / "cut" / "results.json").exists()
    resumed = train_job.run_training(cfg, tmp / "cut", resume=True)
    assert {k: v for k, v in resumed.items() if k != "train_time_s"} == \
        {k: v for k, v in full.items() if k != "train_time_s"}


def test_ddp_pipeline_resumes_and_matches_one_process_with_the_global_batch(tmp_path, tiny_config, norm_free,
                                                                            interrupt):
    tiny = ("train.epochs=1", norm_free, "linear.epochs=1")
    cfg = tiny_config("supcon", *tiny, "train.batch_size=128", "train.checkpoint_every_steps=2")
    run_ranks(_pipeline_and_resume, tmp_path, cfg, interrupt)
    torch.set_num_threads(1)
    train_job.run_training(tiny_config("supcon", *tiny, "train.batch_size=256"), tmp_path / "single")
    records = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["stage"] == "pretrain_epoch"] == [1]  # rank 0 only
    ddp, one = load_file(str(tmp_path / "full" / "encoder.safetensors")), \
        load_file(str(tmp_path / "single" / "encoder.safetensors"))
    for key in one:  # same images per step, same gradients: the same encoder after 5 steps
        torch.testing.assert_close(ddp[key], one[key], rtol=1e-5, atol=1e-6, msg=key)


def test_torchrun_smoke_run_of_supcon_train(tmp_path, tiny_overrides, norm_free):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
           "-m", "supcon.cli", "train", "--method", "supcon", "--out", str(out), "--no-progress",
           *tiny_overrides, "train.epochs=1", norm_free, "linear.epochs=1", "train.batch_size=32",
           "train.micro_batch_size=8"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["method"] == "supcon" and results["test_top1"] > 10.0
    log = (out / "train.log").read_text()
    assert "2 processes x 32 images = global batch 64" in log and "not scaled" in log
    assert done.stdout.count("results:") == 1  # only rank 0 reports
