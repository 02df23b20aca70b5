"""Training loop: learning, exact resume, run caching, input validation, CLIs and DDP."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ihdm_core import get_preset
from ihdm_core.training.config import from_dict
from ihdm_core.training.data import DatasetUnavailable, load_dataset
from ihdm_core.training.batches import IndexStream
from ihdm_core.training.runs import load_run
from ihdm_core.training.log import read_metrics
from ihdm_core.training.train import train

ROOT = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("run_root")  # every test gets its own empty IHDM_RUNS


def _steps(records):
    return [x for r in records for x in r["losses"]]


@pytest.mark.slow
def test_smoke_training_lowers_the_loss(tmp_path):
    cfg = get_preset("mnist-smoke").replace(train={"steps": 60, "log_every": 10})
    res = train(cfg, progress=False)
    losses = _steps(read_metrics(res.run_dir))
    assert len(losses) == 60
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.7 * first, (first, last)


def test_resume_gives_exactly_the_same_losses(tmp_path):
    cfg = get_preset("mnist-smoke").replace(train={"steps": 24, "ckpt_every": 10, "log_every": 1})
    full = train(cfg, run_dir=tmp_path / "full", progress=False)
    ref = _steps(read_metrics(full.run_dir))
    # "Kill" the run after 15 steps: the last checkpoint is at step 10, steps 11-15 are lost.
    part = train(cfg, run_dir=tmp_path / "part", stop_at=15, progress=False)
    assert torch.load(part.checkpoint, weights_only=False)["step"] == 10
    resumed = train(cfg, run_dir=tmp_path / "part", progress=False)
    assert resumed.step == 24 and not resumed.reused
    got = read_metrics(resumed.run_dir)
    assert [r["step"] for r in got] == list(range(1, 25))  # stale records past the checkpoint dropped
    assert _steps(got) == ref  # bit-for-bit
    a = torch.load(full.checkpoint, weights_only=False)
    b = torch.load(resumed.checkpoint, weights_only=False)
    for key in a["ema"]:
        assert torch.equal(a["ema"][key], b["ema"][key])


def test_finished_run_is_reused_and_keyed_by_identity(tmp_path):
    cfg = get_preset("mnist-smoke").replace(train={"steps": 5})
    first = train(cfg, progress=False)
    again = train(cfg.replace(train={"log_every": 1, "ckpt_every": 2}), progress=False)  # same identity
    assert again.reused and again.run_dir == first.run_dir
    other = cfg.replace(process={"K": 7})
    assert other.identity() != cfg.identity()
    assert cfg.replace(process={"delta": 0.02}).identity() == cfg.identity()  # sampling-only knob
    run = load_run(cfg)
    assert run.step == 5 and not run.net.training
    assert from_dict(json.loads((first.run_dir / "config.json").read_text())) == cfg
    with pytest.raises(FileNotFoundError, match="train it first"):
        load_run(other)


def test_index_stream_is_a_per_epoch_permutation_split_over_ranks():
    s = IndexStream(10, seed=3)
    epoch = torch.cat([s.batch(i, 5) for i in range(2)])
    assert sorted(epoch.tolist()) == list(range(10))
    assert torch.equal(torch.cat([s.batch(7, 6, r, 2) for r in range(2)]), s.batch(7, 6))
    assert torch.equal(IndexStream(10, 3).batch(9, 4), s.batch(9, 4))  # no replay needed


def test_bad_inputs(tmp_path):
    with pytest.raises(KeyError, match="unknown preset"):
        get_preset("mnist-huge")
    cfg = get_preset("mnist-smoke").replace(train={"steps": 2})
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        train(cfg, data=torch.rand(32, 1, 28, 28) * 2, progress=False)
    with pytest.raises(ValueError, match="channel"):
        train(cfg, data=torch.rand(32, 3, 28, 28), progress=False)
    with pytest.raises(ValueError, match="asks for"):
        load_dataset(cfg.data.__class__(dataset="mnist5k", image_size=32, channels=1))
    with pytest.raises(DatasetUnavailable, match="unknown dataset"):
        load_dataset("imagenet")


def test_missing_dataset_offline_names_it(tmp_path):
    with pytest.raises(DatasetUnavailable, match="cifar10.*could not be downloaded"):
        load_dataset("cifar10", root=tmp_path, download=False)
    with pytest.raises(DatasetUnavailable, match="afhq64.*cannot be downloaded automatically"):
        load_dataset("afhq64", root=tmp_path)


def test_offline_mnist5k():
    train_x, test_x = load_dataset("mnist5k"), load_dataset("mnist5k", "test")
    assert train_x.shape == (4500, 1, 28, 28) and test_x.shape == (500, 1, 28, 28)
    assert train_x.dtype == torch.uint8 and int(train_x.max()) == 255


def test_folder_dataset(tmp_path):
    from PIL import Image

    (tmp_path / "afhq64").mkdir()
    for i in range(3):
        Image.new("RGB", (80, 60), (40 * i, 100, 200)).save(tmp_path / "afhq64" / f"{i}.png")
    ds = load_dataset(get_preset("afhq64").data, root=tmp_path)
    assert len(ds) == 3 and ds[1].shape == (3, 64, 64) and int(ds[1][0, 5, 5]) == 40


def _env(tmp_path):
    env = dict(os.environ, IHDM_RUNS=str(tmp_path / "runs"), PYTHONPATH=str(ROOT))
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


@pytest.mark.slow
def test_cli_train_then_sample(tmp_path):
    env = _env(tmp_path)
    out = subprocess.run([sys.executable, "-m", "ihdm_core", "train", "--preset", "mnist-smoke",
                          "--set", "train.steps=4", "model.base_channels=8"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["step"] == 4
    png = tmp_path / "grid.png"
    out = subprocess.run([sys.executable, "-m", "ihdm_core", "sample", "--run-dir", info["run_dir"], "--n", "9",
                          "--out", str(png)], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    from PIL import Image

    assert Image.open(png).size == (3 * 28 + 4 * 2, 3 * 28 + 4 * 2)
    bad = subprocess.run([sys.executable, "-m", "ihdm_core", "train", "--preset", "nope"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "unknown preset" in bad.stderr


@pytest.mark.slow
def test_ddp_two_processes_gloo(tmp_path):
    """torchrun with 2 CPU processes (gloo): both ranks train in lockstep, rank 0 writes the
    checkpoint and log (the data split over ranks is tested in test_index_stream...)."""
    env = _env(tmp_path)
    run_dir = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "ihdm_core", "train", "--preset", "mnist-smoke", "--set", "train.steps=6",
           "train.ckpt_every=3", "--run-dir", str(run_dir), "--device", "cpu"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 6 and ckpt["world_size"] == 2
    assert len(read_metrics(run_dir)) >= 1 and all(torch.isfinite(torch.tensor(_steps(read_metrics(run_dir)))))


def test_learning_rate_schedules():
    from ihdm_core.training.step import learning_rate

    tc = get_preset("cifar10").train  # the paper: 5000 warm-up steps from 0, then constant
    assert learning_rate(tc, 0) == pytest.approx(tc.lr / 5000)
    assert learning_rate(tc, 2499) == pytest.approx(tc.lr / 2)
    assert learning_rate(tc, 4999) == learning_rate(tc, 300_000) == pytest.approx(tc.lr)
    cos = tc.__class__(steps=1100, warmup=100, lr=1.0, lr_schedule="cosine")
    assert learning_rate(cos, 100) == pytest.approx(1.0)
    assert learning_rate(cos, 600) == pytest.approx(0.5)
    assert learning_rate(cos, 1099) < 1e-4
    with pytest.raises(ValueError, match="lr_schedule"):
        train(get_preset("mnist-smoke").replace(train={"lr_schedule": "step"}), progress=False)
