"""The heat operator against independent references: scipy's DCT (the paper's Alg. 3), an
explicit finite-difference solver of the Neumann heat equation, and scipy's Gaussian filter."""

import math

import numpy as np
import pytest
import scipy.fft
import scipy.ndimage
import torch

from ihdm_core.model.heat import (HeatDissipation, blur_sigmas, dct2, dct_matrix, heat_forward, heat_times,
                            idct2, laplacian_eigenvalues)


def alg3(u: np.ndarray, t: float) -> np.ndarray:
    """The paper's Alg. 3 in float64 with scipy, generalised to H != W."""
    h, w = u.shape
    fh = np.pi * np.arange(h) / h
    fw = np.pi * np.arange(w) / w
    proj = scipy.fft.dct(scipy.fft.dct(u, axis=0, norm="ortho", type=2), axis=1, norm="ortho", type=2)
    proj = np.exp(-(fh[:, None] ** 2 + fw[None, :] ** 2) * t) * proj
    return scipy.fft.idct(scipy.fft.idct(proj, axis=0, norm="ortho", type=2), axis=1, norm="ortho", type=2)


def fd_neumann(u: np.ndarray, t: float, dt: float = 0.01) -> np.ndarray:
    """Explicit Euler on the 5-point Laplacian with reflecting (Neumann) ghost cells."""
    u = u.copy()
    for _ in range(int(round(t / dt))):
        p = np.pad(u, 1, mode="edge")  # ghost cell = boundary value: zero normal derivative
        lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * u
        u = u + dt * lap
    return u


@pytest.mark.parametrize("shape", [(8, 8), (28, 28), (17, 32), (5, 3)])
def test_dct2_matches_scipy_and_round_trips(shape):
    x = torch.rand(2, 3, *shape)
    ref = scipy.fft.dctn(x.double().numpy(), type=2, norm="ortho", axes=(-2, -1))
    assert np.abs(dct2(x).double().numpy() - ref).max() < 1e-5
    assert torch.allclose(idct2(dct2(x)), x, atol=1e-5)
    c = dct_matrix(shape[0])
    assert torch.allclose(c @ c.T, torch.eye(shape[0]), atol=1e-6)


@pytest.mark.parametrize("shape,t", [((32, 32), 0.3), ((32, 32), 12.5), ((24, 40), 4.0), ((28, 28), 200.0)])
def test_heat_forward_equals_paper_alg3(shape, t):
    rng = np.random.default_rng(0)
    u = rng.random((3, *shape))
    out = heat_forward(torch.tensor(u, dtype=torch.float32), t)
    assert out.dtype == torch.float32
    for c in range(3):
        assert np.abs(out[c].double().numpy() - alg3(u[c], t)).max() < 1e-5


def test_heat_forward_per_sample_times():
    u = torch.rand(4, 1, 16, 16)
    t = torch.tensor([0.0, 0.5, 3.0, 40.0])
    out = heat_forward(u, t)
    for i in range(4):
        assert torch.allclose(out[i], heat_forward(u[i : i + 1], float(t[i]))[0], atol=1e-6)
    assert torch.allclose(out[0], u[0], atol=1e-5)  # t = 0 is the identity


def test_heat_forward_matches_finite_differences_for_small_t():
    # A smooth image (only low frequencies), where the 5-point stencil's eigenvalues
    # 2 - 2 cos(pi n / N) agree with the continuum's (pi n / N)^2.
    rng = np.random.default_rng(1)
    coeffs = np.zeros((32, 32))
    coeffs[:4, :4] = rng.normal(size=(4, 4))
    u = scipy.fft.idctn(coeffs, norm="ortho")
    t = 0.5
    ours = heat_forward(torch.tensor(u, dtype=torch.float32), t).double().numpy()
    ref = fd_neumann(u, t)
    change = np.abs(ref - u).max()
    assert change > 1e-3  # the test is not vacuous: the image did change
    # What remains is the stencil's O(h^2) eigenvalue error (< 1% at these frequencies).
    assert np.abs(ours - ref).max() < 0.01 * change


def test_heat_preserves_channel_mean_and_semigroup():
    u = torch.rand(2, 3, 20, 26)
    for t in (0.7, 5.0, 1e4):
        assert torch.allclose(heat_forward(u, t).mean((-2, -1)), u.mean((-2, -1)), atol=1e-5)
    a = heat_forward(heat_forward(u, 1.3), 2.4)
    assert torch.allclose(a, heat_forward(u, 3.7), atol=1e-5)
    flat = heat_forward(u, 1e5)  # t -> infinity: the image averages out (Neumann boundaries)
    assert torch.allclose(flat, u.mean((-2, -1), keepdim=True).expand_as(u), atol=1e-5)


@pytest.mark.parametrize("t", [1.0, 2.0, 4.5])
def test_heat_equals_gaussian_blur_with_sigma_sqrt_2t(t):
    rng = np.random.default_rng(2)
    u = scipy.ndimage.gaussian_filter(rng.random((64, 64)), 1.0)  # natural-ish, not white noise
    ours = heat_forward(torch.tensor(u, dtype=torch.float32), t).double().numpy()
    ref = scipy.ndimage.gaussian_filter(u, math.sqrt(2 * t), mode="reflect", truncate=6.0)
    inner = slice(12, -12)
    err = np.abs(ours[inner, inner] - ref[inner, inner]).max()
    assert err < 2e-3 * np.abs(u - u.mean()).max()


def test_blur_schedule_app_b5():
    K, smin, smax = 100, 0.5, 20.0
    s = blur_sigmas(K, smin, smax)
    assert s.shape == (K + 1,) and s[0] == 0
    assert math.isclose(float(s[1]), smin, rel_tol=1e-6) and math.isclose(float(s[-1]), smax, rel_tol=1e-6)
    for k in (1, 37, 100):
        ref = math.exp(math.log(smin) * (K - k) / (K - 1) + math.log(smax) * (k - 1) / (K - 1))
        assert math.isclose(float(s[k]), ref, rel_tol=1e-5)
    ratios = s[2:] / s[1:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-4)  # constant rate
    assert torch.allclose(heat_times(K, smin, smax), s**2 / 2, rtol=1e-5)
    with pytest.raises(ValueError):
        blur_sigmas(0)


def test_process_levels_and_cached_decays():
    p = HeatDissipation(28, K=10, sigma_max=20.0)
    u0 = torch.rand(5, 1, 28, 28)
    k = torch.tensor([0, 1, 4, 9, 10])
    out = p.blur(u0, k)
    for i in range(5):
        assert torch.allclose(out[i], heat_forward(u0[i : i + 1], float(p.t[k[i]]))[0], atol=1e-5)
    traj = p.trajectory(u0)
    assert traj.shape == (11, 5, 1, 28, 28)
    assert torch.allclose(traj[0], u0, atol=1e-5)
    inp, target = p.training_pair(u0, torch.tensor([3] * 5), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(target, traj[2], atol=1e-5)
    noise = inp - traj[3]
    assert 0.007 < float(noise.std()) < 0.013  # sigma = 0.01
    lam = laplacian_eigenvalues(28, 28)
    assert torch.allclose(p.decays[5], torch.exp(-lam * p.t[5]), atol=1e-6)
    ks = p.sample_levels(4000, generator=torch.Generator().manual_seed(0))
    assert int(ks.min()) == 1 and int(ks.max()) == 10  # level K is trained too


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="non-negative"):
        heat_forward(torch.rand(1, 8, 8), -1.0)
    with pytest.raises(ValueError, match="at least 2 dims"):
        heat_forward(torch.rand(8), 1.0)
    with pytest.raises(TypeError, match="floating-point"):
        heat_forward(torch.zeros(1, 8, 8, dtype=torch.long), 1.0)
    p = HeatDissipation(28, K=5, sigma_max=10.0)
    with pytest.raises(ValueError, match="built for"):
        p.blur(torch.rand(1, 1, 32, 32), 1)
    with pytest.raises(ValueError, match="levels"):
        p.blur(torch.rand(1, 1, 28, 28), 6)
