"""The library functions behind chapters 1-5, each against an independent computation written out here."""

import json
import math

import numpy as np
import pytest
import scipy.fft
import torch

from ihdm_core.evaluation import dynamics
from ihdm_core.evaluation.scores import nll_indices
from ihdm_core.model.heat import HeatDissipation
from ihdm_core.model.interpolation import lerp_path, slerp_path
from ihdm_core.model.likelihood import (bits_per_dim, elbo_against_delta, elbo_optimal_delta, elbo_terms, kl_floor,
                                        prior_kl_bound, prior_kl_bounds, terms_at_delta, transition_errors)
from ihdm_core.model.spectra import dct_power, inverse_step_gain, psd_z_scores, share_above


class ShrinkNet(torch.nn.Module):
    """f_theta(u, k) = -c_k u: a tiny deterministic 'network' whose every output is known in closed form."""

    def __init__(self, K):
        super().__init__()
        self.c = torch.nn.Parameter(torch.linspace(0.01, 0.05, K + 1))

    def forward(self, u, k):
        return -self.c[k].view(-1, 1, 1, 1) * u


def _process(K=5, size=8, sigma=0.01, delta=0.0125):
    return HeatDissipation(size, K=K, sigma_max=4.0, sigma_min=0.5, sigma=sigma, delta=delta)


# --- likelihood: the ELBO as a function of delta -------------------------------------------

def test_kl_floor_is_the_gaussian_kl_at_equal_means():
    # KL[N(0, s^2) || N(0, d^2)] per dimension, written out: log(d/s) + s^2/(2 d^2) - 1/2.
    s, d, D = 0.01, 0.0137, 784
    assert kl_floor(s, d, D) == pytest.approx(D * (math.log(d / s) + s ** 2 / (2 * d ** 2) - 0.5), rel=1e-12)
    assert kl_floor(s, s, D) == 0.0
    with pytest.raises(ValueError, match="positive"):
        kl_floor(0.0, d, D)


def test_prior_kl_bounds_match_a_direct_logsumexp_per_delta():
    g = torch.Generator().manual_seed(0)
    mean_K, centres = torch.rand(3, 1, 4, 4, generator=g), torch.rand(11, 1, 4, 4, generator=g)
    sigma, deltas = 0.01, [0.005, 0.0125, 0.05]
    got = prior_kl_bounds(mean_K, centres, sigma, deltas, chunk=4)  # several chunks
    D, n = 16, 11
    for i, d in enumerate(deltas):
        # App. A.3: L_K <= log N_T - logsumexp_i(-KL_i), KL_i = floor + |a - c_i|^2 / (2 d^2)
        d2 = ((mean_K.double().flatten(1)[:, None] - centres.double().flatten(1)[None]) ** 2).sum(-1)
        kl = 0.5 * D * ((sigma / d) ** 2 - 1 - math.log((sigma / d) ** 2)) + d2 / (2 * d ** 2)
        want = math.log(n) - torch.logsumexp(-kl, dim=1)
        assert torch.allclose(got[i], want, rtol=1e-10, atol=1e-8)
        assert torch.allclose(prior_kl_bound(mean_K, centres, sigma, d), want, rtol=1e-10, atol=1e-8)


def test_transition_errors_invert_the_terms_and_rebuild_any_delta():
    K, D, sigma = 6, 50, 0.01
    m = np.linspace(0.002, 0.03, K)  # squared errors of the transitions k -> k-1
    for d0, d1 in [(0.0125, 0.011), (0.02, 0.005)]:
        # Eqs. 10-11 written out
        def terms(d):
            return np.array([m[0] / (2 * d ** 2) + D * math.log(d * math.sqrt(2 * math.pi))]
                            + [0.5 * (sigma ** 2 / d ** 2 * D - D + m[k] / d ** 2 + 2 * D * math.log(d / sigma))
                               for k in range(1, K)] + [3.0])
        assert np.allclose(transition_errors(terms(d0), d0, sigma, D), m, rtol=1e-9)
        assert np.allclose(terms_at_delta(m, sigma, d1, D, 3.0), terms(d1), rtol=1e-12)


def test_elbo_against_delta_reproduces_direct_elbo_evaluations():
    K, sigma = 4, 0.01
    proc, net = _process(K=K, sigma=sigma), ShrinkNet(K)
    g = torch.Generator().manual_seed(1)
    u0 = torch.rand(3, 1, 8, 8, generator=g)
    centres = proc.blur(torch.rand(7, 1, 8, 8, generator=g), K)
    eps = torch.randn(K, *u0.shape, generator=g)
    d0, others = 0.0125, [0.008, 0.0125, 0.02]
    terms0 = elbo_terms(net, proc, u0, centres, delta=d0, noise=eps).mean(0).numpy()
    res = elbo_against_delta(terms0, d0, others, sigma=sigma, mean_K=proc.blur(u0, K), centres=centres)
    for i, d in enumerate(others):
        direct = elbo_terms(net, proc, u0, centres, delta=d, noise=eps).mean(0).numpy()
        assert np.allclose(res["terms"][i], direct, rtol=1e-6, atol=1e-6)
        assert res["bits_per_dim"][i] == pytest.approx(bits_per_dim(direct.sum(), 64), rel=1e-6)


def test_elbo_optimal_delta_minimises_the_transition_terms():
    K, D, sigma = 10, 100, 0.01
    m = np.full(K, 0.004)
    d_star = elbo_optimal_delta(m, sigma, D)
    grid = np.linspace(0.5 * sigma, 3 * sigma, 20001)
    total = [terms_at_delta(m, sigma, d, D, 0.0)[:K].sum() for d in grid]
    assert d_star == pytest.approx(grid[int(np.argmin(total))], abs=2e-6)
    assert d_star > sigma  # the squared errors push it above sigma (App. C.1)


def test_nll_indices_are_the_seeded_sorted_subset():
    idx = nll_indices(100, 10, seed=3)
    assert torch.equal(idx, torch.randperm(100, generator=torch.Generator().manual_seed(3))[:10].sort().values)
    assert torch.equal(nll_indices(5, 10), torch.arange(5)) and torch.equal(nll_indices(5, None), torch.arange(5))


# --- spectra ---------------------------------------------------------------------------------

def test_share_above_counts_decayed_dct_coefficients():
    x = torch.rand(16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    c = scipy.fft.dctn(x.numpy(), norm="ortho") ** 2
    n = np.arange(16)
    lam = (np.pi * n[:, None] / 16) ** 2 + (np.pi * n[None] / 16) ** 2
    for t in (0.0, 1.5, 20.0):
        want = (np.exp(-2 * lam * t) * c > 1e-4).mean()
        assert share_above(dct_power(x), [t], 1e-4)[0] == pytest.approx(want)


def test_inverse_step_gain_matches_the_dct_operator_on_white_noise():
    h, t_from, t_to = 8, 1.3, 0.9
    n = np.arange(h)
    lam = ((np.pi * n[:, None] / h) ** 2 + (np.pi * n[None] / h) ** 2).ravel()
    want = 0.5 * math.log10(np.mean(np.exp(2 * lam * (t_from - t_to))))
    assert inverse_step_gain(t_from, t_to, h) == pytest.approx(want, rel=1e-12)
    # and empirically: apply the inverse step to white noise and compare the norms
    z = np.random.default_rng(0).standard_normal((4000, h, h))
    zc = scipy.fft.dctn(z, axes=(1, 2), norm="ortho") * np.exp(lam.reshape(h, h) * (t_from - t_to))
    out = scipy.fft.idctn(zc, axes=(1, 2), norm="ortho")
    emp = math.log10(math.sqrt((out ** 2).mean() / (z ** 2).mean()))
    assert emp == pytest.approx(want, abs=0.02)


def test_psd_z_scores_are_small_for_correct_closed_forms_and_large_for_wrong_ones():
    g = torch.Generator().manual_seed(4)
    a = torch.rand(16, 16, generator=g, dtype=torch.float64)
    s2, n = 0.04, 64
    mc = dct_power(a + math.sqrt(s2) * torch.randn(n, 16, 16, generator=g, dtype=torch.float64))
    z, rel = psd_z_scores(mc, dct_power(a) + s2, s2, n)
    assert np.abs(z).max() < 6 and rel < 0.5
    z_bad, _ = psd_z_scores(mc, dct_power(a) + 2 * s2, s2, n)  # the noise power counted twice
    assert np.abs(z_bad).max() > 6


# --- evaluation.dynamics -------------------------------------------------------------------------

def test_loss_curve_and_smoothed(tmp_path):
    recs = [{"step": 3, "losses": [1.0, 2.0, 3.0]}, {"step": 5, "losses": [4.0, 5.0]},
            {"kind": "eval", "step": 5, "eval_loss": 9.0}]
    from ihdm_core.training.train import METRICS

    (tmp_path / METRICS).write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    steps, losses = dynamics.loss_curve(tmp_path)
    assert steps.tolist() == [1, 2, 3, 4, 5] and losses.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    s, avg, win = dynamics.smoothed(np.arange(80), np.arange(80.0), parts=40)
    assert win == 2 and s[0] == 1 and avg[0] == pytest.approx(0.5) and len(avg) == 79


def test_loss_per_level_and_noise_gain_against_a_closed_form_net():
    K = 4
    proc, net = _process(K=K), ShrinkNet(K)
    x0 = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    mse, skip = dynamics.loss_per_level(net, proc, x0, torch.Generator().manual_seed(6))
    g = torch.Generator().manual_seed(6)
    for k in range(1, K + 1):  # Alg. 1 written out with the same draws
        eps = torch.randn(x0.shape, generator=g)
        u_hat, target = proc.blur(x0, k) + proc.sigma * eps, proc.blur(x0, k - 1)
        mu = (1 - net.c[k].detach()) * u_hat
        assert mse[k - 1] == pytest.approx(float(((mu - target) ** 2).flatten(1).sum(1).mean()), rel=1e-5)
        assert skip[k - 1] == pytest.approx(float(((u_hat - target) ** 2).flatten(1).sum(1).mean()), rel=1e-5)
    eta = 0.01 * torch.randn(x0.shape, generator=g)
    # mu is linear with slope (1 - c_k), so the gain is exactly |1 - c_k|
    assert np.allclose(dynamics.noise_gain(net, proc, x0, eta), (1 - net.c[1:].detach()).numpy(), rtol=1e-5)


def test_continue_from_is_alg2_and_branch_spread_measures_pairs():
    K = 4
    proc, net = _process(K=K), ShrinkNet(K)
    u = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(7))
    got = dynamics.continue_from(net, proc, u, 3, torch.Generator().manual_seed(8))
    g, want = torch.Generator().manual_seed(8), u.clone()
    for k in (3, 2, 1):
        z = torch.randn(u.shape, generator=g)
        want = (1 - net.c[k].detach()) * want + (proc.delta * z if k > 1 else 0)
    assert torch.allclose(got, want, atol=1e-6)
    x = torch.stack([torch.zeros(3, 1, 2, 2), torch.stack([torch.zeros(1, 2, 2), torch.ones(1, 2, 2), torch.ones(1, 2, 2)])])
    # source 0: all equal (spread 0); source 1: pairs (0,1), (0,2) differ by RMS 1, (1,2) by 0 -> mean 4/6
    assert dynamics.pair_spread(x) == pytest.approx((0 + 4 / 6) / 2)
    res = dynamics.branch_spread(net, proc, u, 3, 3, 2, torch.Generator().manual_seed(9))
    assert res["x"].shape == (2, 3, 1, 8, 8) and res["coarse"] > 0 and res["fine"] > 0


def test_interpolation_paths_and_smoothness():
    g = torch.Generator().manual_seed(10)
    a, b = torch.randn(2, 1, 4, 4, generator=g), torch.randn(2, 1, 4, 4, generator=g)
    lin, sph = lerp_path(a, b, 5), slerp_path(a, b, 5)
    assert lin.shape == sph.shape == (2, 5, 1, 4, 4)
    assert torch.allclose(lin[:, 2], (a + b) / 2) and torch.allclose(sph[:, 0], a) and torch.allclose(sph[:, -1], b, atol=1e-6)
    assert torch.allclose(sph[:, 2], math.cos(math.pi / 4) * a + math.sin(math.pi / 4) * b)
    # a straight, evenly spaced path: jump ratio 1, detour 1; a path with one jump: ratio n_frames - 1
    even = lin.flatten(0, 1)
    st = dynamics.smoothness(even, 5)
    assert torch.allclose(st["jump"], torch.ones(2), atol=1e-5) and torch.allclose(st["detour"], torch.ones(2), atol=1e-5)
    jumpy = torch.cat([a[:, None].expand(2, 4, 1, 4, 4), b[:, None]], 1).flatten(0, 1)
    assert torch.allclose(dynamics.smoothness(jumpy, 5)["jump"], torch.full((2,), 4.0))
    noise = torch.stack([a, b], 1).unsqueeze(0).repeat(3, 1, 1, 1, 1, 1)  # (K=3, pairs=2, frames=2, ...)
    norms = dynamics.path_norms(noise.flatten(1, 2), 2)
    want = torch.stack([torch.cat([a[i].flatten()] * 3).norm() for i in range(2)])
    assert torch.allclose(norms[:, 1], torch.stack([torch.cat([b[i].flatten()] * 3).norm() for i in range(2)]) / want)
