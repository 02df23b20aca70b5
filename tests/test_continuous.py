"""Continuous-time Gaussian diffusions (issue: Blurring Diffusion as published): oracle sampling at
any number of steps, agreement with the discrete form at grid points, the cosine-DDPM limit, and
every sampler option (v/x prediction, the DCT clamp, the edge-dense grid) against a numpy/scipy
version written out here."""

import math

import numpy as np
import pytest
import scipy.fft
import torch

from ihdm_core import get_preset
from ihdm_core.training.presets import PRESETS
from ihdm_core.model.diffusion import BlurringDiffusion, DDPM, dct_range
from ihdm_core.model.gaussian import TIME_SCALE
from ihdm_core.model.schedules import time_grid
from ihdm_core.model.heat import dct2, idct2
from ihdm_core.model.losses import denoising_loss
from ihdm_core.training.build import build_process
from ihdm_core.model.latents import NoiseTable, draw_noise
from ihdm_core.model.sampling import ddim_sample, sample


def _digits(n=6, size=16, seed=0):
    """Smooth-ish images in [0, 1] with real high-frequency content (a blurred random field + edges)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size, size, generator=g)
    x = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    x[..., size // 4: size // 2, 2:-2] = 1.0
    return x.clamp(0, 1)


def _np_dct(x):
    return scipy.fft.dctn(np.asarray(x, dtype=np.float64), type=2, norm="ortho", axes=(-2, -1))


def _np_idct(c):
    return scipy.fft.idctn(np.asarray(c, dtype=np.float64), type=2, norm="ortho", axes=(-2, -1))


def _np_schedule(t, sigma_B_max, size, d_min=0.001, lmin=-10.0, lmax=10.0):
    """a_t, sigma_t and per-frequency alpha_t of Blurring Diffusion, written out in numpy."""
    b = math.atan(math.exp(-lmax / 2))
    a_ = math.atan(math.exp(-lmin / 2)) - b
    logsnr = -2 * np.log(np.tan(a_ * t + b))
    a, s = np.sqrt(1 / (1 + np.exp(-logsnr))), np.sqrt(1 / (1 + np.exp(logsnr)))
    freqs = np.pi * np.arange(size) / size
    lam = freqs[:, None] ** 2 + freqs[None, :] ** 2
    tau = (sigma_B_max * np.sin(np.pi * t / 2) ** 2) ** 2 / 2
    d = (1 - d_min) * np.exp(-lam * tau) + d_min
    return a, s, a * d


class Oracle(torch.nn.Module):
    """Knows the data batch: returns the exact eps, v or x for the state it is given, reading t back
    from the network's time input (continuous processes: TIME_SCALE * t). ``hf_scale`` multiplies the
    error-free output's highest DCT frequencies (a deliberately wrong network)."""

    def __init__(self, process, x0, hf_scale=1.0):
        super().__init__()
        self.p, self.x = process, 2 * x0 - 1
        self.hf_scale = hf_scale

    def forward(self, u, time):
        p, z = self.p, 2 * u - 1
        t = time.double() / TIME_SCALE
        a, sigma, tau = p.schedule(t)
        alpha = a[:, None, None] * p._blur(tau) if p.frequency_space else a[:, None, None]
        X, Z = dct2(self.x).double(), dct2(z).double()
        E = (Z - alpha[:, None] * X) / sigma[:, None, None, None]
        if p.prediction == "eps":
            out = E
        elif p.prediction == "v":
            out = a[:, None, None, None] * E - sigma[:, None, None, None] * X
        else:
            out = X
        if self.hf_scale != 1.0:
            h = out.shape[-1]
            mask = torch.ones(h, h, dtype=out.dtype)
            mask[h // 2:, h // 2:] = self.hf_scale
            out = out * mask
        return idct2(out.float())


def _bd(T, prediction="eps", size=16, **kw):
    return BlurringDiffusion(size, 1, K=T, sigma_B_max=kw.pop("sigma_B_max", 8.0), continuous=True,
                             prediction=prediction, **kw)


@pytest.mark.parametrize("prediction", ["eps", "v", "x"])
def test_oracle_returns_the_data_at_any_number_of_steps(prediction):
    x0 = _digits()
    errs = {}
    for T in (50, 1000):
        p = _bd(T, prediction)
        z = p.prior_sample(len(x0), generator=torch.Generator().manual_seed(1))
        out = sample(Oracle(p, x0), p, z, generator=torch.Generator().manual_seed(2))
        errs[T] = float((out - x0).pow(2).mean().sqrt())
    assert errs[1000] < 1e-3, errs
    # At 50 steps the float32 DCTs of an exact x_hat still return the data to 1e-2 RMS (measured
    # ~1e-5 for v and x; eps divides by alpha ~ a d_min and keeps more rounding).
    assert errs[50] < 1e-2, errs


def test_wrong_high_frequencies_explode_with_eps_at_few_steps_but_not_with_v():
    """The instability the time grid causes: halve the network's highest frequencies. With eps the
    error is amplified by 1 / alpha_{t|s} at every coarse step; v never divides by alpha."""
    x0 = _digits(size=16)
    rms = {}
    for pred in ("eps", "v"):
        for T in (20, 1000):
            p = _bd(T, pred, sigma_B_max=8.0)
            z = p.prior_sample(len(x0), generator=torch.Generator().manual_seed(1))
            out = sample(Oracle(p, x0, hf_scale=0.5), p, z, generator=torch.Generator().manual_seed(2))
            rms[pred, T] = float((out - x0).pow(2).mean().sqrt())
    assert rms["eps", 20] > 5 * rms["eps", 1000], rms
    assert rms["v", 20] < 0.25 and rms["v", 1000] < 0.25, rms


def test_zero_blur_is_continuous_cosine_ddpm_draw_for_draw():
    x0 = _digits()
    net = RandomNet()
    for pred in ("eps", "v"):
        bd = BlurringDiffusion(16, 1, K=37, sigma_B_max=0.0, d_min=0.0, continuous=True, prediction=pred)
        dd = DDPM(16, 1, K=37, schedule="cosine", continuous=True, prediction=pred, clip_denoised=False)
        t = torch.tensor([0.013, 0.5, 0.77, 1.0], dtype=torch.float64)
        e = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(bd.marginal(x0[:4], t, eps=e), dd.marginal(x0[:4], t, eps=e), atol=2e-6, rtol=0)
        z = bd.prior_sample(4, generator=torch.Generator().manual_seed(3))
        noise = NoiseTable(draw_noise(37, z.shape, generator=torch.Generator().manual_seed(4)))
        # BD goes through the DCT and DDPM does not: a wrong network lets float32 rounding grow up to
        # 1 / alpha_K ~ 150-fold along the chain, as in the discrete test (test_diffusion.py).
        torch.testing.assert_close(sample(net, bd, z, noise=noise), sample(net, dd, z, noise=noise),
                                   atol=1e-3, rtol=1e-5)
        torch.testing.assert_close(ddim_sample(net, bd, z, 10), ddim_sample(net, dd, z, 10), atol=1e-3, rtol=1e-5)


class RandomNet(torch.nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        self.w = torch.randn(1, 1, 3, 3, generator=torch.Generator().manual_seed(seed)) * 0.2

    def forward(self, u, time):
        return torch.tanh(torch.nn.functional.conv2d(u, self.w, padding=1)) + 1e-4 * time.float()[:, None, None, None]


@pytest.mark.parametrize("prediction", ["eps", "v", "x"])
def test_continuous_loss_at_grid_points_equals_the_discrete_loss(prediction):
    x0 = _digits(8)
    net = RandomNet()
    K = 1000  # the continuous network input TIME_SCALE * t equals the discrete level k at K = 1000
    disc = BlurringDiffusion(16, 1, K=K, sigma_B_max=8.0, prediction=prediction)
    cont = BlurringDiffusion(16, 1, K=K, sigma_B_max=8.0, prediction=prediction, continuous=True)
    k = torch.tensor([1, 7, 250, 500, 999, 1000, 3, 640])
    ld, _ = denoising_loss(net, disc, x0, generator=torch.Generator().manual_seed(5), k=k)
    lc, _ = denoising_loss(net, cont, x0, generator=torch.Generator().manual_seed(5), k=k.double() / K)
    torch.testing.assert_close(lc, ld, rtol=1e-5, atol=1e-5)
    # Any K: the forward marginal at t = k / K is the discrete level k.
    d50 = BlurringDiffusion(16, 1, K=50, sigma_B_max=8.0)
    e = torch.randn_like(x0)
    k50 = torch.tensor([1, 5, 9, 20, 33, 41, 49, 50])
    torch.testing.assert_close(cont.marginal(x0, k50.double() / 50, eps=e), d50.marginal(x0, k50, eps=e),
                               atol=1e-5, rtol=0)


def test_training_draws_continuous_times_and_targets_match_numpy():
    size = 16
    p = _bd(100, "v", size=size)
    t = p.sample_levels(4000, generator=torch.Generator().manual_seed(0))
    assert t.is_floating_point() and float(t.min()) > 0 and float(t.max()) <= 1
    assert abs(float(t.mean()) - 0.5) < 0.02 and len(torch.unique(t)) == 4000
    x0 = _digits(3, size)
    tt = torch.tensor([0.05, 0.4, 0.9], dtype=torch.float64)
    g = torch.Generator().manual_seed(9)
    z, v = p.training_pair(x0, tt, generator=g)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(9))
    for i, ti in enumerate(tt.tolist()):
        a, s, alpha = _np_schedule(ti, 8.0, size)
        xm = 2 * x0[i, 0].double().numpy() - 1
        e = eps[i, 0].double().numpy()
        np.testing.assert_allclose(z[i, 0].numpy(), _np_idct(alpha * _np_dct(xm)) + s * e, atol=2e-5)
        np.testing.assert_allclose(v[i, 0].numpy(), a * e - s * xm, atol=2e-5)


def test_x_hat_from_v_matches_numpy():
    """x_hat = (a z - sigma v) / (a alpha + sigma^2) per DCT frequency (from z = alpha x + sigma eps)."""
    size, T = 16, 40
    p = _bd(T, "v", size=size)
    z = torch.randn(2, 1, size, size, generator=torch.Generator().manual_seed(0))
    v = torch.randn(2, 1, size, size, generator=torch.Generator().manual_seed(1))
    for k in (3, 20, 40):
        got = idct2(p._x_hat(z, v, k)).numpy()
        a, s, alpha = _np_schedule(k / T, 8.0, size)
        want = _np_idct((a * _np_dct(z.numpy()) - s * _np_dct(v.numpy())) / (a * alpha + s ** 2))
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_dct_clamp_is_identity_inside_the_range_and_clips_outside():
    size = 16
    data = _digits(20, size)
    lo, hi = dct_range(data)
    C = _np_dct(2 * data.double().numpy() - 1)
    np.testing.assert_allclose(lo.numpy(), C.min(0), atol=1e-5)
    np.testing.assert_allclose(hi.numpy(), C.max(0), atol=1e-5)
    p = _bd(30, "x", size=size, dct_range=(lo, hi))
    q = _bd(30, "x", size=size)
    z = torch.randn(5, 1, size, size)
    inside = 2 * data[:5] - 1                                  # x_hat = the data: untouched
    torch.testing.assert_close(p._x_hat(z, inside, 10), q._x_hat(z, inside, 10))
    outside = 3 * torch.randn(5, 1, size, size, generator=torch.Generator().manual_seed(2))
    got = p._x_hat(z, outside, 10).numpy()
    np.testing.assert_allclose(got, np.clip(_np_dct(outside.numpy()), C.min(0), C.max(0)), atol=1e-4)
    # DDPM (pixel space) clamps in DCT space too and returns pixels.
    dd = DDPM(size, 1, K=30, schedule="cosine", continuous=True, prediction="x", clip_denoised=False,
              dct_range=(lo, hi))
    want = _np_idct(np.clip(_np_dct(outside.numpy()), C.min(0), C.max(0)))
    np.testing.assert_allclose(dd._x_hat(z, outside, 10).numpy(), want, atol=1e-4)


def _np_min_step_ratio(times, sigma_B_max, size):
    """min over steps and frequencies of alpha_t / alpha_s, numpy."""
    alphas = [_np_schedule(t, sigma_B_max, size)[2] if t > 0 else np.ones((size, size)) for t in times]
    return min(float((alphas[i] / alphas[i - 1]).min()) for i in range(1, len(times)))


def test_edge_grid_matches_a_numpy_inverse_cdf_and_evens_out_the_step_ratio():
    size, T, smax, d_min = 28, 60, 20.0, 0.001
    got = time_grid(T, "edge", sigma_B_max=smax, image_size=size, d_min=d_min).numpy()
    fine = np.linspace(0, 1, 4001)
    freqs = np.pi * np.arange(size) / size
    lam = np.unique(freqs[:, None] ** 2 + freqs[None, :] ** 2)
    b = math.atan(math.exp(-5.0))
    a_ = math.atan(math.exp(5.0)) - b
    a = np.cos(a_ * fine + b)  # sqrt(sigmoid(logsnr)) of the clipped cosine schedule
    tau = (smax * np.sin(np.pi * fine / 2) ** 2) ** 2 / 2
    log_alpha = np.log(a)[:, None] + np.log((1 - d_min) * np.exp(-lam[None] * tau[:, None]) + d_min)
    rate = np.abs(np.diff(log_alpha, axis=0)).max(1)
    cdf = np.concatenate([[0], np.cumsum(rate)])
    cdf = 0.5 * fine + 0.5 * cdf / cdf[-1]
    want = np.interp(np.arange(T + 1) / T, cdf, fine)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert got[0] == 0 and got[-1] == 1 and np.all(np.diff(got) > 0)
    np.testing.assert_array_equal(time_grid(T).numpy(), np.arange(T + 1) / T)
    # What it is for: the smallest per-step, per-frequency ratio alpha_t / alpha_s (the factor that
    # divides eps's error) rises well above the uniform grid's at the same number of steps.
    for T in (50, 100):
        uni = _np_min_step_ratio(np.arange(T + 1) / T, smax, size)
        edge = _np_min_step_ratio(time_grid(T, "edge", sigma_B_max=smax, image_size=size).numpy(), smax, size)
        assert edge > 1.8 * uni, (T, uni, edge)


def test_build_process_steps_and_grid_from_the_config():
    cfg = get_preset("mnist-blurring-ref")
    assert cfg.process.time == "continuous"
    for T in (50, 100, 250, 1000):
        p = build_process(cfg, steps=T)
        assert p.K == T and p.continuous
    p = build_process(cfg.replace(process={"grid": "edge"}), steps=100)
    assert not torch.allclose(p.times, torch.arange(101, dtype=torch.float64) / 100)
    with pytest.raises(ValueError, match="DCT range"):
        build_process(cfg.replace(process={"clamp_dct": True}))
    with pytest.raises(ValueError, match="discrete levels"):
        build_process(get_preset("mnist-blurring-quick"), steps=100)
    with pytest.raises(ValueError, match="linear beta schedule"):
        DDPM(28, 1, K=50, schedule="linear", continuous=True)
    # The network sees TIME_SCALE * t on the grid.
    p = build_process(cfg, steps=4)
    torch.testing.assert_close(p.network_time(torch.tensor([1, 4])), torch.tensor([250.0, 1000.0]))


def test_sampling_options_stay_out_of_the_identity():
    cfg = PRESETS["mnist-blurring-ref"]
    assert cfg.replace(process={"grid": "edge", "clamp_dct": True}).identity() == cfg.identity()
    assert cfg.replace(process={"prediction": "eps"}).identity() != cfg.identity()
