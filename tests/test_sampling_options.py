"""Sampling a trained run another way (steps, grid, DCT clamp) and counting exploded chains."""

import numpy as np
import pytest
import scipy.fft
import torch

from ihdm_core import get_preset
from ihdm_core.evaluation import scores as evaluate
from ihdm_core.evaluation.scores import evaluate_explosions, high_frequency_rms, read_scores, score
from ihdm_core.training.train import ensure_trained


@pytest.fixture()
def bd_run(run_root, tmp_path, monkeypatch):
    """A few-step continuous-time Blurring Diffusion run on the smoke network."""
    monkeypatch.setenv("IHDM_MODELS", str(tmp_path / "models"))
    cfg = get_preset("mnist-blurring-smoke").replace(
        process={"time": "continuous", "prediction": "v", "beta_schedule": "cosine"},
        train={"steps": 4, "ckpt_every": 4, "log_every": 2})
    return ensure_trained(cfg, device="cpu", progress=False)


def test_high_frequency_rms_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.random((3, 2, 10, 10))
    c = scipy.fft.dctn(2 * x - 1, axes=(-2, -1), norm="ortho")
    i, j = np.meshgrid(np.arange(10), np.arange(10), indexing="ij")
    want = np.sqrt((c[..., i + j >= 10] ** 2).mean(axis=(-1, -2)))  # over channels and high frequencies
    got = high_frequency_rms(torch.from_numpy(x)).numpy()
    assert got.shape == (3,)
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_sampled_with_changes_steps_and_options_not_identity(bd_run):
    run = bd_run
    for T in (3, 17):
        other = run.sampled_with(steps=T)
        assert other.process.K == T and other.cfg.identity() == run.cfg.identity()
        assert other.net is run.net
    edge = run.sampled_with(steps=20, grid="edge")
    assert not torch.allclose(edge.process.times, run.sampled_with(steps=20).process.times)
    with pytest.raises(ValueError, match="change what was trained"):
        run.sampled_with(sigma=0.5)


def test_explosion_count_on_known_samples(bd_run, monkeypatch):
    """Digits plus images with a chosen high-frequency amplitude: the count is exactly those above 10x."""
    from ihdm_core.training.data import load_dataset
    from ihdm_core.model.heat import idct2

    data = load_dataset(bd_run.cfg.data)[:2000].float() / 255
    ref = float(high_frequency_rms(data).mean())
    digits = data[:6].clone()
    h = 28
    i, j = torch.arange(h)[:, None], torch.arange(h)[None]
    high = ((i + j) >= h).double()
    blown = []
    for scale in (3.0, 9.0, 11.0, 40.0):  # a pure high-frequency pattern of known RMS
        c = torch.zeros(1, 1, h, h, dtype=torch.float64)
        c[..., high.bool()] = scale * ref
        blown.append(((idct2(c) + 1) / 2).float())  # 2 x - 1 has exactly that high-frequency content
    x = torch.cat([digits, *blown])
    monkeypatch.setattr(evaluate, "draw_samples", lambda run, n, **kw: x)
    rec = evaluate_explosions(bd_run, n=len(x))
    assert rec["value"] == 2 and rec["n_samples"] == 10
    assert rec["details"]["max_ratio"] == pytest.approx(40.0, rel=1e-3)


def test_scores_of_different_step_counts_are_kept_apart(bd_run):
    a = score(bd_run.sampled_with(steps=3), "explosions", n=4, batch_size=4)
    b = score(bd_run.sampled_with(steps=5), "explosions", n=4, batch_size=4)
    assert a["key"]["sampler"]["steps"] == 3 and b["key"]["sampler"]["steps"] == 5
    again = score(bd_run.sampled_with(steps=3), "explosions", n=4, batch_size=4)
    assert again["recorded"] == a["recorded"] and len(read_scores(bd_run)) == 2


def test_step_ratios_match_the_published_equations_in_numpy():
    """min_f alpha_f(t_k) / alpha_f(t_(k-1)) written out from Hoogeboom & Salimans' equations."""
    from ihdm_core.training.runs import sampling_process

    cfg = get_preset("mnist-blurring-ref")
    p = cfg.process
    T, H = 50, cfg.data.image_size
    t = np.arange(T + 1) / T
    b = np.arctan(np.exp(-0.5 * p.logsnr_max))
    a_ = np.arctan(np.exp(-0.5 * p.logsnr_min)) - b
    logsnr = -2 * np.log(np.tan(a_ * t + b))
    a = np.sqrt(1 / (1 + np.exp(-logsnr)))                       # alpha^2 = sigmoid(logsnr)
    a[0] = 1.0  # level 0 is the data itself, not the clipped log-SNR's a(0) = 0.99998
    tau = (p.sigma_max * np.sin(np.pi * t / 2) ** 2) ** 2 / 2     # sigma_B(t)^2 / 2
    i = np.arange(H)
    lam = np.pi ** 2 * (i[:, None] ** 2 + i[None] ** 2) / H ** 2
    d = (1 - p.d_min) * np.exp(-lam[None] * tau[:, None, None]) + p.d_min
    alpha = a[:, None, None] * d
    want = (alpha[1:] / alpha[:-1]).reshape(T, -1).min(1)
    got = sampling_process(cfg, steps=T).step_ratios().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert got.min() == pytest.approx(0.0818, abs=1e-3)  # the instability of 50 uniform steps
    # Without blur (DDPM, cosine): the ratio is the same at every frequency, a_k / a_(k-1).
    ddpm = sampling_process(get_preset("mnist-ddpm-ref"), steps=T)
    np.testing.assert_allclose(ddpm.step_ratios().numpy(), a[1:] / a[:-1], rtol=1e-9)
