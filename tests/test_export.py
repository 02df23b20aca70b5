"""Sample export: seed i gives the same image whatever the batch size or number of processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ihdm_core import get_preset
from ihdm_core.training.generate import generate, parse_seeds, png_name, sample_seeds
from ihdm_core.model.sampling import sample
from ihdm_core.training.runs import load_run
from ihdm_core.training.train import train
from ihdm_core.model.latents import NoiseTable

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny IHDM and continuous-time DDPM runs, trained once for the module in a tmp folder."""
    tmp = tmp_path_factory.mktemp("export")
    old = {k: os.environ.get(k) for k in ("IHDM_RUNS", "IHDM_MODELS")}
    os.environ["IHDM_RUNS"], os.environ["IHDM_MODELS"] = str(tmp / "runs"), str(tmp / "models")
    out = {}
    for name in ("mnist-smoke", "mnist-ddpm-smoke-ct"):
        cfg = get_preset(name).replace(train={"steps": 6}, model={"base_channels": 8})
        out[name] = train(cfg, progress=False).run_dir
    yield tmp, out
    for k, v in old.items():
        os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def _env(tmp):
    env = dict(os.environ, IHDM_RUNS=str(tmp / "runs"), IHDM_MODELS=str(tmp / "models"),
               PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def _cli(tmp, *args, torchrun: int = 0):
    pre = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(torchrun),
           "-m", "ihdm_core", "sample"] if torchrun else [sys.executable, "-m", "ihdm_core", "sample"]
    out = subprocess.run([*pre, *map(str, args)], env=_env(tmp), capture_output=True, text=True, timeout=600)
    return out


def test_parse_seeds():
    assert parse_seeds("0-3,10,7-8") == [0, 1, 2, 3, 10, 7, 8]
    for bad in ("5-2", "a", "1,1", "-3"):
        with pytest.raises(ValueError, match="seed"):
            parse_seeds(bad)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist-smoke", "mnist-ddpm-smoke-ct"])
def test_png_bytes_do_not_depend_on_batch_size_and_npz_equals_pngs(runs, name):
    tmp, dirs = runs
    seeds = "3-9,20,41-50"
    pngs = {}
    for b in (1, 7, 64):
        out = _cli(tmp, "--run-dir", dirs[name], "--outdir", tmp / f"{name}-b{b}", "--seeds", seeds,
                   "--batch-size", b, "--device", "cpu", *(["--npz", tmp / f"{name}.npz"] if b == 7 else []))
        assert out.returncode == 0, out.stderr[-2000:]
        files = sorted((tmp / f"{name}-b{b}").glob("*.png"))
        pngs[b] = {f.name: f.read_bytes() for f in files}
    want = [png_name(s) for s in parse_seeds(seeds)]
    assert sorted(pngs[1]) == sorted(want)
    assert pngs[1] == pngs[7] == pngs[64]
    arrays = [np.asarray(Image.open(tmp / f"{name}-b1" / w)) for w in want]
    assert len({a.tobytes() for a in arrays}) == len(arrays)  # distinct seeds, distinct images
    npz = np.load(tmp / f"{name}.npz")
    assert npz["arr_0"].dtype == np.uint8 and npz["arr_0"].shape == (len(want), 28, 28, 1)
    assert npz["seeds"].tolist() == parse_seeds(seeds)
    assert np.array_equal(npz["arr_0"][..., 0], np.stack(arrays))


def test_per_seed_draws_match_a_hand_written_sampler(runs):
    """Seed i's image is Alg. 2 run alone with draws from Generator(i): prior, then K step noises."""
    _, dirs = runs
    run = load_run(dirs["mnist-smoke"])
    from ihdm_core.training.data import load_dataset

    data = load_dataset(run.cfg.data)
    got = sample_seeds(run, [5, 2], batch_size=2)
    for i, s in enumerate([5, 2]):
        g = torch.Generator().manual_seed(s)
        u = run.process.prior_sample(1, data, generator=g)
        steps = [torch.randn(u.shape[1:], generator=g) for _ in range(run.process.K)]  # k = K..1
        noise = torch.stack(steps[::-1])[:, None]  # noise[k - 1] is used at level k
        ref = sample(run.net, run.process, u, noise=NoiseTable(noise)).clamp(0, 1)
        assert torch.allclose(got[i], ref[0], atol=1e-5)
    assert torch.equal(generate(run, 3, seed=4, batch_size=2), sample_seeds(run, [4 * 10**9 + i for i in range(3)], batch_size=2))


def test_modes(runs):
    _, dirs = runs
    for name in ("mnist-smoke", "mnist-ddpm-smoke-ct"):
        run = load_run(dirs[name])
        ind = sample_seeds(run, range(8), batch_size=8)
        # shared noise: the shared seed's own image is its independent one, the others differ from theirs
        sh = sample_seeds(run, range(8), mode="shared_noise", shared_seed=3, batch_size=5)
        assert torch.allclose(sh[3], ind[3], atol=1e-6) and not torch.allclose(sh[0], ind[0], atol=1e-3)
        same = sample_seeds(run, range(8), mode="same_init", shared_seed=6, batch_size=3)
        assert torch.allclose(same[6], ind[6], atol=1e-6) and not torch.allclose(same[1], ind[1], atol=1e-3)
        # interpolation paths of 4 frames: the end frames are the independent samples of those seeds
        it = sample_seeds(run, range(8), mode="interpolate", frames=4, batch_size=3)
        for s in (0, 3, 4, 7):
            assert torch.allclose(it[s], ind[s], atol=1e-5), (name, s)
        assert not torch.allclose(it[1], ind[1], atol=1e-3)
    with pytest.raises(ValueError, match="mode must be one of"):
        sample_seeds(run, [0], mode="nope")


@pytest.mark.slow
def test_steps_only_for_continuous_diffusions(runs):
    tmp, dirs = runs
    run = load_run(dirs["mnist-ddpm-smoke-ct"])
    assert sample_seeds(run, [0, 1], steps=4).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="only continuous-time diffusions"):
        sample_seeds(load_run(dirs["mnist-smoke"]), [0], steps=4)
    with pytest.raises(ValueError, match="delta is IHDM's sampling noise"):
        sample_seeds(run, [0], delta=0.01)
    bad = _cli(tmp, "--run-dir", dirs["mnist-smoke"], "--npz", tmp / "x.npz", "--seeds", "0-1", "--steps", "4")
    assert bad.returncode != 0 and "only continuous-time diffusions take --steps" in bad.stderr


@pytest.mark.slow
def test_torchrun_two_processes_write_each_seed_once(runs):
    tmp, dirs = runs
    out = _cli(tmp, "--run-dir", dirs["mnist-smoke"], "--outdir", tmp / "ddp", "--npz", tmp / "ddp.npz",
               "--seeds", "0-10", "--batch-size", 4, torchrun=2)
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["world"] == 2 and info["n"] == 11
    assert sorted(p.name for p in (tmp / "ddp").iterdir()) == [png_name(s) for s in range(11)]
    assert not list(tmp.glob("ddp.npz.rank*"))
    single = _cli(tmp, "--run-dir", dirs["mnist-smoke"], "--outdir", tmp / "one", "--seeds", "0-10")
    assert single.returncode == 0, single.stderr[-2000:]
    for s in range(11):
        assert (tmp / "ddp" / png_name(s)).read_bytes() == (tmp / "one" / png_name(s)).read_bytes()
    npz = np.load(tmp / "ddp.npz")
    assert npz["seeds"].tolist() == list(range(11))
    assert np.array_equal(npz["arr_0"][..., 0], np.stack([np.asarray(Image.open(tmp / "one" / png_name(s)))
                                                         for s in range(11)]))
