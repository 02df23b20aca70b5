"""Power spectra in the DCT basis: checked against scipy's DCT, closed forms and Monte Carlo."""

import math

import numpy as np
import pytest
import scipy.fft
import torch

from ihdm_core.model.heat import heat_forward
from ihdm_core.model.spectra import (dct_power, diffusion_psd, fit_power_law, heat_psd, radial_average, radial_index,
                               radial_psd)


def test_dct_power_matches_scipy():
    x = torch.rand(3, 20, 16, generator=torch.Generator().manual_seed(0))
    ref = np.mean([scipy.fft.dctn(a, type=2, norm="ortho") ** 2 for a in x.double().numpy()], axis=0)
    np.testing.assert_allclose(dct_power(x).numpy(), ref, rtol=1e-9, atol=1e-12)


def test_white_noise_has_flat_psd_equal_to_its_variance():
    g = torch.Generator().manual_seed(1)
    x = 0.3 * torch.randn(2000, 32, 32, generator=g)
    f, psd = radial_psd(x)
    assert f[0] == 0 and np.all(np.diff(f) > 0)
    # Orthonormal DCT: every coefficient of N(0, s^2 I) noise has variance s^2. (A bin of one
    # coefficient averages 2000 squares: 3% relative error.)
    np.testing.assert_allclose(psd, 0.09, rtol=0.15)
    assert abs(psd.mean() / 0.09 - 1) < 0.02


def test_radial_bins_partition_by_frequency():
    idx, freqs = radial_index(16, 16)
    assert idx[0, 0] == 0 and idx[3, 4] == 5 and idx[4, 3] == 5  # |(3, 4)| = 5
    # Basis n of 16 oscillates at n / 32 cycles / pixel; a bin's centre is its mean radius.
    assert freqs[0] == 0 and np.all(np.abs(freqs.numpy() * 32 - np.arange(len(freqs))) <= 0.5)
    # A single cosine basis function lands in exactly one bin.
    c = torch.zeros(16, 16, dtype=torch.float64)
    c[3, 4] = 1.0
    img = torch.from_numpy(scipy.fft.idctn(c.numpy(), type=2, norm="ortho"))
    _, psd = radial_average(dct_power(img)[None])
    assert np.count_nonzero(psd[0] > 1e-20) == 1 and psd[0].argmax() == 5


def test_power_law_fit_recovers_alpha():
    f = np.geomspace(0.01, 0.5, 40)
    psd = 3.0 * f ** -2.2 * np.exp(np.random.default_rng(0).normal(0, 0.05, f.size))
    fit = fit_power_law(f, psd)
    assert fit["alpha"] == pytest.approx(2.2, abs=0.05) and fit["r2"] > 0.98
    with pytest.raises(ValueError):
        fit_power_law(f[:2], psd[:2])


def test_heat_and_diffusion_psd_match_monte_carlo():
    g = torch.Generator().manual_seed(2)
    u = torch.rand(24, 24, generator=g, dtype=torch.float64)
    power = dct_power(u)
    t, sigma, n = 3.0, 0.05, 3000
    noisy = heat_forward(u, t)[None] + sigma * torch.randn(n, 24, 24, generator=g, dtype=torch.float64)
    expected = heat_psd(power, [t], sigma)[0]
    np.testing.assert_allclose(dct_power(noisy).numpy(), expected.numpy(), rtol=0.1, atol=3 * sigma ** 2 * 2 / math.sqrt(n))
    abar = 0.6
    z = math.sqrt(abar) * u[None] + math.sqrt(1 - abar) * torch.randn(n, 24, 24, generator=g, dtype=torch.float64)
    np.testing.assert_allclose(dct_power(z).numpy(), diffusion_psd(power, [abar])[0].numpy(), rtol=0.12, atol=0.06)
