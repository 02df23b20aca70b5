"""The library functions behind chapters 1-5 (model.likelihood, model.spectra, model.latents,
evaluation.dynamics and .quality, the chapters' figures in book.sampling_plots), each against an
independent computation written out here."""

import json
import math

import matplotlib
import numpy as np
import pytest
import scipy.fft
import scipy.linalg
import torch

matplotlib.use("Agg")

from ihdm_core.book import sampling_plots as plots  # noqa: E402
from ihdm_core.evaluation import dynamics, quality  # noqa: E402
from ihdm_core.evaluation.fid import stats_from_features  # noqa: E402
from ihdm_core.evaluation.scores import nll_indices  # noqa: E402
from ihdm_core.model.heat import HeatDissipation  # noqa: E402
from ihdm_core.model.latents import NoiseTable, lerp_path, slerp_path  # noqa: E402
from ihdm_core.model.likelihood import (bits_per_dim, dequantize, elbo_against_delta, elbo_optimal_delta,  # noqa: E402
                                        elbo_terms, kl_floor, prior_kl_bound, prior_kl_bounds, terms_at_delta,
                                        transition_errors)
from ihdm_core.model.spectra import dct_power, inverse_step_gain, psd_z_scores, share_above  # noqa: E402


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
    from ihdm_core.training.log import METRICS

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


class BrightnessNet(torch.nn.Module):
    """An 11-way 'classifier' whose logits are affine in the mean brightness of the image."""

    def forward(self, x):
        m = x.flatten(1).mean(1, keepdim=True)
        return m * torch.arange(11.0) * 40 - 5 * torch.arange(11.0) ** 0.5


def _pooled(images):
    """Cheap stand-in for Inception features: 4 pooled brightnesses per image."""
    x = images.float().reshape(len(images), 4, -1)
    return x.mean(-1).double().numpy() / 255


def test_real_image_scores_fid_and_recognisability_against_a_written_out_computation(monkeypatch):
    g = torch.Generator().manual_seed(0)
    test = torch.randint(0, 256, (40, 1, 28, 28), generator=g, dtype=torch.uint8)
    train = torch.randint(0, 256, (30, 1, 28, 28), generator=g, dtype=torch.uint8)
    monkeypatch.setattr(quality, "load_dataset", lambda name, split: test)
    monkeypatch.setattr(quality, "reference_stats", lambda ds, split, n, **kw: stats_from_features(_pooled(train[:n])))
    monkeypatch.setattr(quality, "inception_features", lambda images, n, **kw: _pooled(images))
    clf = (BrightnessNet(), {"test_accuracy": 1.0})

    got = quality.real_image_scores("mnist5k", n_fid=12, seed=3, ref_n=25, classifier=clf)

    # FID: the same seeded subset, Frechet distance with scipy's matrix square root
    idx = torch.randperm(40, generator=torch.Generator().manual_seed(3))[:12]
    f1, f2 = _pooled(test[idx]), _pooled(train[:25])
    m1, m2, s1, s2 = f1.mean(0), f2.mean(0), np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    want = ((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert got["fid"] == pytest.approx(want, rel=1e-6)
    assert got["fid_n"] == 12 and got["n_images"] == 40 and got["fid_seconds"] >= 0
    # recognisability: softmax of the logits written out; confident = a digit class (0-9) with p >= 0.9
    logits = BrightnessNet()(test.float() / 255).double().numpy()
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    conf = (p.argmax(1) != 10) & (p[:, :10].max(1) >= 0.9)
    assert got["recognisability"]["share_confident"] == pytest.approx(conf.mean())
    assert got["recognisability"]["n"] == 40

    skipped = quality.real_image_scores("mnist5k", n_fid=0, classifier=clf)
    assert skipped["fid"] is None and skipped["fid_n"] == 0 and skipped["recognisability"] is not None
    with pytest.raises(ValueError, match="n_fid"):
        quality.real_image_scores("mnist5k", n_fid=-1, classifier=clf)


def test_scores_against_delta_asks_for_both_scores_at_every_delta(monkeypatch):
    calls = []

    def fake_score(run, metric, **kw):
        calls.append((metric, kw["delta"], kw["n"], kw["seed"]))
        return {"metric": metric, "value": kw["delta"] * (1 if metric == "fid" else -1)}

    monkeypatch.setattr(quality, "score", fake_score)
    got = quality.scores_against_delta(object(), [0.01, 0.0125], n=7, seed=2, ref_n=5)
    assert sorted(calls) == sorted((m, d, 7, 2) for d in (0.01, 0.0125) for m in ("recognisability", "fid"))
    assert list(got) == [0.01, 0.0125]
    assert got[0.0125]["fid"]["value"] == 0.0125 and got[0.01]["recognisability"]["value"] == -0.01


def test_elbo_identity_check_matches_a_direct_evaluation_written_out():
    K = 4
    proc, net = _process(K), ShrinkNet(K)
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (9, 1, 8, 8), generator=g, dtype=torch.uint8)
    centres = torch.rand(6, 1, 8, 8, generator=g)
    pred, direct = quality.elbo_identity_check(net, proc, images, centres, 0.0125, 0.011, n=3, seed=5)
    # the direct terms, drawn by hand in the same order (subset, dequantisation, forward noise)
    h = torch.Generator().manual_seed(5)
    few = dequantize(images[torch.randperm(9, generator=h)[:3]], generator=h)
    eps = torch.randn((K, *few.shape), generator=h)
    want = elbo_terms(net, proc, few, centres, delta=0.011, noise=eps).mean(0).numpy()
    assert np.allclose(direct, want, rtol=1e-12)
    # the closed form: the same L_0..L_{K-1}, since the network outputs do not depend on delta
    assert np.allclose(pred[:-1], direct[:-1], rtol=1e-6, atol=1e-6 * 64)
    assert pred[-1] == direct[-1]


def test_states_at_returns_the_chain_of_alg2_at_the_levels_asked():
    K = 5
    proc, net = _process(K), ShrinkNet(K)
    u_K = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    z = torch.randn((K, 2, 1, 8, 8), generator=torch.Generator().manual_seed(3))
    got = dynamics.states_at(net, proc, u_K, [5, 3, 0, 4], noise=NoiseTable(z))
    states, u = {K: u_K}, u_K
    for k in range(K, 0, -1):  # u_{k-1} = (1 - c_k) u_k + delta z_k, no noise on the last step
        u = (1 - net.c[k].detach()) * u + (proc.delta * z[k - 1] if k > 1 else 0)
        states[k - 1] = u
    assert got.shape == (4, 2, 1, 8, 8)
    for i, k in enumerate([5, 3, 0, 4]):
        assert torch.allclose(got[i], states[k], atol=1e-6)
    with pytest.raises(ValueError, match="0..5"):
        dynamics.states_at(net, proc, u_K, [6])


def test_chapter_figures_plot_the_numbers_they_are_given():
    # Fig. 5b's right panel: each spread relative to the first split level
    branches = {k: {"x": torch.rand(2, 3, 1, 8, 8)} for k in (6, 4, 2)}
    traj = {k: torch.rand(2, 1, 8, 8) for k in (6, 4, 2)}
    spread = {"levels": [6, 4, 2], "coarse": np.array([2.0, 1.0, 0.5]), "fine": np.array([4.0, 4.0, 2.0])}
    fig = plots.branching_figure(traj, branches, [6, 2], spread, 3, np.linspace(0.5, 8, 7), "t")
    right = fig.axes[-1]
    ys = [line.get_ydata() for line in right.get_lines()]
    assert np.allclose(ys[0], [1, 0.5, 0.25]) and np.allclose(ys[1], [1, 1, 0.5])
    # the noise-norm figure: the line for linear interpolation is sqrt((1-a)^2 + a^2)
    fig = plots.noise_norm_figure(torch.linspace(0, 1, 5), torch.ones(2, 5), torch.ones(2, 5))
    a, y = fig.axes[0].get_lines()[1].get_data()
    assert np.allclose(y, np.sqrt((1 - a) ** 2 + a ** 2)) and y.min() == pytest.approx(math.sqrt(0.5), abs=1e-4)
    # Fig. 11: the stars sit on the best recognisability (max) and the best FID (min)
    q = {0.0: (0.2, 90.0), 0.01: (0.7, 60.0), 0.0125: (0.6, 50.0)}
    fig = plots.delta_metrics_figure(q, 0.9, (np.linspace(0.005, 0.02, 9), np.linspace(3, 1, 9)), {0.01: 2.0, 0.0125: 1.5},
                                     (0.0125, 1.5), 0.01, 0.0125, {"fid": "FID", "nll": "NLL"})
    stars = [next(ln for ln in ax.get_lines() if ln.get_marker() == "*").get_xdata()[0] for ax in fig.axes[:3]]
    assert stars == [0.01, 0.0125, 0.0125]
