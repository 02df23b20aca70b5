"""The package functions behind chapters 3-5 added in the second thinning (evaluation.quality,
dynamics.states_at, the chapters' figures in book.plots), each against a computation written out here."""

import math

import matplotlib
import numpy as np
import pytest
import scipy.linalg
import torch

matplotlib.use("Agg")

from ihdm_core.book import plots  # noqa: E402
from ihdm_core.evaluation import dynamics, quality  # noqa: E402
from ihdm_core.evaluation.fid import stats_from_features  # noqa: E402
from ihdm_core.model.heat import HeatDissipation  # noqa: E402
from ihdm_core.model.likelihood import dequantize, elbo_terms  # noqa: E402


class ShrinkNet(torch.nn.Module):
    """f_theta(u, k) = -c_k u: every output known in closed form, none depending on delta."""

    def __init__(self, K):
        super().__init__()
        self.c = torch.nn.Parameter(torch.linspace(0.01, 0.05, K + 1))

    def forward(self, u, k):
        return -self.c[k].view(-1, 1, 1, 1) * u


def _process(K=4, size=8):
    return HeatDissipation(size, K=K, sigma_max=4.0, sigma_min=0.5, sigma=0.01, delta=0.0125)


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
    got = dynamics.states_at(net, proc, u_K, [5, 3, 0, 4], noise=z)
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
