"""ELBO terms, the App. A.3 prior bound, dequantisation and bits/dim, against independent references."""

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import norm
from torch.distributions import Normal, kl_divergence

from ihdm_core.model.heat import HeatDissipation, heat_forward
from ihdm_core.model.likelihood import (bin_centres, bits_per_dim, dequantize, elbo_terms, gaussian_kl, gaussian_nll,
                                  negative_elbo, prior_kl_bound)
from ihdm_core.model.unet import UNet
from oracles import exact_inverse_net


def test_gaussian_kl_and_nll_match_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mq, mp = torch.rand(5, 2, 3, 4, generator=g), torch.rand(5, 2, 3, 4, generator=g)
    for sq, sp in [(0.01, 0.0125), (0.3, 0.1), (1.0, 1.0)]:
        ref = kl_divergence(Normal(mq.double(), sq), Normal(mp.double(), sp)).flatten(1).sum(1)
        assert torch.allclose(gaussian_kl(mq, sq, mp, sp), ref, rtol=1e-10, atol=1e-8)
        nll = -Normal(mp.double(), sp).log_prob(mq.double()).flatten(1).sum(1)
        assert torch.allclose(gaussian_nll(mq, mp, sp), nll, rtol=1e-10)
    with pytest.raises(ValueError):
        gaussian_kl(mq, 0.0, mp, 0.1)


def _kl_q_to_component(m, centre, sigma, delta):
    """KL[N(m, sigma^2 I) || N(centre, delta^2 I)] with torch.distributions (float64)."""
    return kl_divergence(Normal(torch.as_tensor(m, dtype=torch.float64), sigma),
                         Normal(torch.as_tensor(centre, dtype=torch.float64), delta)).sum().item()


def test_prior_bound_is_exact_for_a_single_centre():
    g = torch.Generator().manual_seed(1)
    m, c = torch.rand(4, 1, 5, 5, generator=g), torch.rand(1, 1, 5, 5, generator=g)
    bound = prior_kl_bound(m, c, sigma=0.01, delta=0.0125)
    ref = [_kl_q_to_component(m[i], c[0], 0.01, 0.0125) for i in range(4)]
    assert np.allclose(bound.numpy(), ref, rtol=1e-9)


def test_prior_bound_equals_eq41_at_optimal_phi_and_upper_bounds_the_true_kl():
    """Eq. 38-42 written out with explicit weights phi_i, and a Monte Carlo KL to the KDE."""
    rng = np.random.default_rng(2)
    D, n_t, sigma, delta = 6, 9, 0.3, 0.4
    centres = rng.uniform(size=(n_t, 1, 2, 3))
    m = centres[3] + rng.normal(scale=0.3, size=(1, 2, 3))
    kls = np.array([_kl_q_to_component(m, centres[i], sigma, delta) for i in range(n_t)])

    def eq41(phi):  # sum_i phi_i [KL_i + log N_T + log phi_i]
        return float(np.sum(phi * (kls + np.log(n_t) + np.log(phi))))

    phi_opt = np.exp(-kls - logsumexp(-kls))
    ours = prior_kl_bound(torch.tensor(m[None]), torch.tensor(centres), sigma, delta).item()
    assert ours == pytest.approx(eq41(phi_opt), rel=1e-10)
    for _ in range(5):  # any other weights give a looser bound
        phi = rng.dirichlet(np.ones(n_t))
        assert eq41(phi) > ours
    # The true KL[q || KDE] by Monte Carlo with the exact KDE density: the bound lies above it.
    z = m.reshape(-1) + sigma * rng.normal(size=(200_000, D))
    log_q = norm.logpdf(z, m.reshape(-1), sigma).sum(1)
    comp = norm.logpdf(z[:, None, :], centres.reshape(n_t, D)[None], delta).sum(2)
    log_p = logsumexp(comp, axis=1) - np.log(n_t)
    ratio = log_q - log_p
    true_kl, se = ratio.mean(), ratio.std() / np.sqrt(len(ratio))
    assert ours >= true_kl - 4 * se
    assert ours - true_kl < np.log(n_t)  # never looser than dropping all but the best component


def test_prior_bound_chunking_and_offset_invariance():
    g = torch.Generator().manual_seed(3)
    centres = torch.rand(37, 1, 8, 8, generator=g, dtype=torch.float64) * 0.1 + 0.5
    m = centres[:5] + 0.003 * torch.randn(5, 1, 8, 8, generator=g, dtype=torch.float64)
    a = prior_kl_bound(m, centres, 0.01, 0.0125)
    b = prior_kl_bound(m, centres, 0.01, 0.0125, chunk=4)
    assert torch.allclose(a, b, rtol=1e-12)
    # Same distances, huge norms: a float32 run must not lose them to cancellation.
    c = prior_kl_bound(m + 100.0, centres + 100.0, 0.01, 0.0125, dtype=torch.float32)
    assert torch.allclose(a, c, rtol=1e-5)


class _LinearNet(torch.nn.Module):
    """f(u, k) = a_k u + b_k: a deterministic mean with a known form, differing per level."""

    def __init__(self, K):
        super().__init__()
        self.a = torch.linspace(-0.2, 0.1, K + 1)
        self.b = torch.linspace(0.01, -0.02, K + 1)

    def forward(self, u, k):
        return self.a[k].view(-1, 1, 1, 1) * u + self.b[k].view(-1, 1, 1, 1)


def test_elbo_terms_match_closed_form_kls_with_independent_blur():
    p = HeatDissipation(6, K=4, sigma_max=3.0, sigma=0.05, delta=0.07)
    net = _LinearNet(p.K)
    g = torch.Generator().manual_seed(4)
    u0 = torch.rand(3, 1, 6, 6, generator=g)
    noise = torch.randn(p.K, 3, 1, 6, 6, generator=g)
    centres = torch.rand(11, 1, 6, 6, generator=g)
    terms = elbo_terms(net, p, u0, centres, noise=noise)
    assert terms.shape == (3, p.K + 1)
    F = [heat_forward(u0.double(), float(t)) for t in p.t.double()]  # independent of process.blur
    for k in range(1, p.K + 1):
        u_k = F[k] + p.sigma * noise[k - 1].double()
        mu = u_k + net(u_k, torch.full((3,), k))
        if k == 1:
            ref = -Normal(mu, p.delta).log_prob(u0.double()).flatten(1).sum(1)
            assert torch.allclose(terms[:, 0], ref, rtol=1e-5), k
        else:
            ref = kl_divergence(Normal(F[k - 1], p.sigma), Normal(mu, p.delta)).flatten(1).sum(1)
            assert torch.allclose(terms[:, k - 1], ref, rtol=1e-5), k
    assert torch.allclose(terms[:, p.K], prior_kl_bound(F[p.K], centres, p.sigma, p.delta), rtol=1e-5)


def test_elbo_equals_monte_carlo_of_the_log_ratio_eq5():
    """E_q[log q(u_1:K|u_0) - log p(u_0:K)] by brute force: every transition counted once.

    With one KDE centre the prior bound is exact, so the analytic sum must match the direct
    Monte Carlo estimate; double-counting a transition or dropping K -> K-1 would not.
    """
    p = HeatDissipation(4, K=3, sigma_max=2.0, sigma=0.05, delta=0.08)
    net = _LinearNet(p.K)
    g = torch.Generator().manual_seed(5)
    u0 = torch.rand(1, 1, 4, 4, generator=g)
    centre = p.blur(torch.rand(1, 1, 4, 4, generator=g), p.K)
    M = 20_000
    ours = elbo_terms(net, p, u0.expand(M, -1, -1, -1), centre, generator=g).sum(1)

    F = [heat_forward(u0.double(), float(t)) for t in p.t.double()]
    u = [u0.double().expand(M, -1, -1, -1)] + [F[k] + p.sigma * torch.randn(M, 1, 4, 4, generator=g).double()
                                              for k in range(1, p.K + 1)]
    log_q = sum(Normal(F[k], p.sigma).log_prob(u[k]).flatten(1).sum(1) for k in range(1, p.K + 1))
    log_p = Normal(centre.double(), p.delta).log_prob(u[p.K]).flatten(1).sum(1)
    for k in range(1, p.K + 1):
        mu = u[k] + net(u[k].float(), torch.full((M,), k)).double()
        log_p = log_p + Normal(mu, p.delta).log_prob(u[k - 1]).flatten(1).sum(1)
    direct = log_q - log_p
    se = math.hypot(direct.std() / math.sqrt(M), ours.std() / math.sqrt(M))
    assert abs(ours.mean() - direct.mean()) < 4 * se, (ours.mean(), direct.mean(), se)
    # A single L_k is worth many standard errors here, so an index slip could not hide.
    assert ours.mean() / p.K > 10 * se


def test_oracle_elbo_terms_are_at_their_minimum_and_below_an_untrained_model():
    from ihdm_core.training.data import load_dataset

    p = HeatDissipation(28, K=10, sigma_max=20.0)
    x = load_dataset("mnist5k", "test")[::50][:8]
    u0 = dequantize(x, generator=torch.Generator().manual_seed(6))
    centres = p.blur(bin_centres(load_dataset("mnist5k", "train")[::10]), p.K)
    oracle = elbo_terms(exact_inverse_net(p, u0), p, u0, centres, generator=torch.Generator().manual_seed(7))
    untrained = UNet(28, 1, base_channels=16, channel_mult=(1, 2), num_res_blocks=1, attn_resolutions=(),
                     dropout=0.0, num_levels=p.K)
    plain = elbo_terms(untrained, p, u0, centres, generator=torch.Generator().manual_seed(7))
    D, r = 784, (p.sigma / p.delta) ** 2
    # The oracle's mean is exactly F(t_{k-1}) u_0: only the covariance mismatch is left.
    assert torch.allclose(oracle[:, 1:p.K], torch.full_like(oracle[:, 1:p.K], 0.5 * D * (r - 1 - math.log(r))),
                          rtol=1e-4)
    assert torch.allclose(oracle[:, 0], torch.full((8,), D * math.log(p.delta * math.sqrt(2 * math.pi)),
                                                   dtype=torch.float64), rtol=1e-4)
    assert torch.equal(oracle[:, p.K], plain[:, p.K])  # the prior term does not involve the network
    assert (oracle.sum(1) < plain.sum(1)).all()
    assert (oracle[:, :p.K] <= plain[:, :p.K] + 1e-6).all()


def test_bits_per_dim_known_answers():
    # A density uniform on [0, 1]^D (-log p = 0) codes 8-bit data at exactly 8 bits/dim.
    assert bits_per_dim(0.0, 784) == pytest.approx(8.0)
    # Data that always take one value, modelled by a density uniform on its bin (height 256^D).
    assert bits_per_dim(-784 * math.log(256), 784) == pytest.approx(0.0, abs=1e-12)
    assert bits_per_dim(torch.tensor([0.0, 784 * math.log(2)]), 784).tolist() == pytest.approx([8.0, 9.0])
    assert bits_per_dim(784 * math.log(2), 784, n_bins=None) == pytest.approx(1.0)


def test_dequantised_bound_matches_the_exact_discrete_likelihood():
    """-log2 P(x) / D computed exactly (Gaussian CDF over each bin) vs the dequantised estimate."""
    g = torch.Generator().manual_seed(8)
    x = torch.randint(0, 256, (4000, 1, 2, 2), generator=g, dtype=torch.uint8)
    m, s = 0.45, 0.2  # a per-pixel Gaussian density on u-space, smooth on the scale of a bin
    xv = x.double().numpy()
    exact = -np.log2(norm.cdf((xv + 1) / 256, m, s) - norm.cdf(xv / 256, m, s)).mean() / 1.0
    u = dequantize(x, generator=g)
    assert 0 <= float(u.min()) and float(u.max()) < 1
    assert torch.all((u * 256).floor() == x.float())  # every u lies in the bin of its x
    nll = -Normal(m, s).log_prob(u.double()).flatten(1).sum(1)
    estimate = bits_per_dim(nll, 4).mean().item()
    assert estimate == pytest.approx(exact, abs=0.01)  # Jensen gap is tiny for a smooth density
    assert bin_centres(x).mul(256).sub(0.5).round().equal(x.float())
    with pytest.raises(TypeError):
        dequantize(x.float())


def test_negative_elbo_on_uint8_data_is_reproducible():
    from ihdm_core.training.data import load_dataset

    p = HeatDissipation(28, K=5, sigma_max=20.0)
    net = UNet(28, 1, base_channels=8, channel_mult=(1,), num_res_blocks=1, attn_resolutions=(), dropout=0.0,
               num_levels=p.K)
    test, train = load_dataset("mnist5k", "test")[:6], load_dataset("mnist5k", "train")[::45]
    a = negative_elbo(net, p, test, train, batch_size=4, seed=3)
    b = negative_elbo(net, p, test, train, batch_size=4, seed=3)
    assert a["bits_per_dim"] == b["bits_per_dim"] and a["n_images"] == 6 and a["n_train_centres"] == 100
    assert len(a["terms_nats"]) == p.K + 1
    assert a["nelbo_nats"] == pytest.approx(sum(a["terms_nats"]), rel=1e-9)
    assert a["bits_per_dim"] == pytest.approx(a["nelbo_nats"] / (784 * math.log(2)) + 8, rel=1e-9)
    assert negative_elbo(net, p, test, train, batch_size=4, seed=4)["bits_per_dim"] != a["bits_per_dim"]
    with pytest.raises(TypeError, match="8-bit"):
        negative_elbo(net, p, test.float() / 255, train)
