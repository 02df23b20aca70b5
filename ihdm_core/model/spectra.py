"""Power spectral densities in the DCT basis (Sec. 3.3, App. B.6, Fig. 4, 9, 10).

The heat operator is diagonal in the orthonormal 2-D DCT, so spectra are taken there: the PSD
of an image is its squared DCT coefficients, and a 1-D PSD averages them over equal-frequency
contours (quarter circles n^2/H^2 + m^2/W^2 = const). Basis function (n, m) oscillates at
``f = sqrt((n / 2H)^2 + (m / 2W)^2)`` cycles per pixel, 0 to sqrt(2)/2.

For orthonormal transforms, white noise of variance s^2 has PSD s^2 in every coefficient, so
the expected PSD of the two forward processes follows in closed form:

* heat (IHDM):  E|DCT(F(t) u + sigma eps)|^2 = exp(-2 lambda t) |DCT u|^2 + sigma^2
* diffusion:    E|DCT(sqrt(abar) u + sqrt(1 - abar) eps)|^2 = abar |DCT u|^2 + (1 - abar)
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .heat import dct2, laplacian_eigenvalues

__all__ = ["dct_power", "radial_index", "radial_average", "radial_psd", "fit_power_law", "heat_psd",
           "diffusion_psd", "psd_z_scores", "share_above", "inverse_step_gain"]


def dct_power(x: Tensor) -> Tensor:
    """Squared orthonormal DCT coefficients, averaged over every leading dim: (H, W) float64."""
    if x.dim() < 2:
        raise ValueError(f"need (..., H, W), got shape {tuple(x.shape)}")
    p = dct2(x.double()).pow(2)
    return p.reshape(-1, *p.shape[-2:]).mean(0)


def radial_index(h: int, w: int) -> tuple[Tensor, Tensor]:
    """(bin of each coefficient (H, W), centre frequency of each bin in cycles/pixel).

    Bin b holds the coefficients whose radius sqrt(n^2 + (m H / W)^2), in units of the
    vertical index, rounds to b: the equal-frequency contours of App. B.6.
    """
    n = torch.arange(h, dtype=torch.float64)[:, None]
    m = torch.arange(w, dtype=torch.float64)[None, :] * (h / w)
    radius = torch.sqrt(n ** 2 + m ** 2)
    idx = torch.round(radius).long()
    n_bins = int(idx.max()) + 1
    counts = torch.bincount(idx.flatten(), minlength=n_bins).double()
    centres = torch.bincount(idx.flatten(), weights=radius.flatten(), minlength=n_bins)
    centres = centres / counts.clamp_min(1)
    return idx, centres / (2 * h)


def radial_average(power: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Average a (..., H, W) DCT power array over equal-frequency contours.

    Returns (frequencies in cycles/pixel, PSD (..., n_bins)); empty bins are dropped.
    """
    h, w = power.shape[-2:]
    idx, freqs = radial_index(h, w)
    flat = power.double().reshape(-1, h * w)
    n_bins = len(freqs)
    counts = torch.bincount(idx.flatten(), minlength=n_bins).double()
    sums = torch.zeros(flat.shape[0], n_bins, dtype=torch.float64).index_add_(1, idx.flatten(),
                                                                              flat)
    keep = counts > 0
    psd = (sums[:, keep] / counts[keep]).reshape(*power.shape[:-2], int(keep.sum()))
    return freqs[keep].numpy(), psd.numpy()


def radial_psd(images: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """1-D PSD of a batch of images (..., H, W), averaged over images and channels."""
    return radial_average(dct_power(images))


def fit_power_law(freqs, psd, fmin: float | None = None, fmax: float | None = None) -> dict:
    """Least-squares fit of log PSD = log A - alpha log f over fmin <= f <= fmax (DC excluded).

    Returns alpha, A and the fit's R^2. Natural images give alpha near 2 (van der Schaaf &
    van Hateren 1996).
    """
    f, p = np.asarray(freqs, dtype=float), np.asarray(psd, dtype=float)
    sel = (f > 0) & (p > 0)
    if fmin is not None:
        sel &= f >= fmin
    if fmax is not None:
        sel &= f <= fmax
    if sel.sum() < 3:
        raise ValueError("need at least 3 positive frequencies to fit a power law")
    x, y = np.log(f[sel]), np.log(p[sel])
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    r2 = 1 - resid.var() / y.var() if y.var() > 0 else 1.0
    return {"alpha": float(-slope), "A": float(math.exp(intercept)), "r2": float(r2),
            "fmin": float(f[sel].min()), "fmax": float(f[sel].max())}


def heat_psd(power: Tensor, t, sigma: float = 0.0) -> Tensor:
    """Expected DCT power of F(t) u + sigma eps given the power of u: (len(t), H, W)."""
    h, w = power.shape[-2:]
    lam = laplacian_eigenvalues(h, w, dtype=torch.float64)
    t = torch.as_tensor(t, dtype=torch.float64).reshape(-1, 1, 1)
    return torch.exp(-2 * lam * t) * power.double() + sigma ** 2


def diffusion_psd(power: Tensor, alpha_bar) -> Tensor:
    """Expected DCT power of sqrt(abar) u + sqrt(1 - abar) eps: (len(abar), H, W)."""
    a = torch.as_tensor(alpha_bar, dtype=torch.float64).reshape(-1, 1, 1)
    return a * power.double() + (1 - a)


def psd_z_scores(mc_power: Tensor, expected: Tensor, noise_var: float,
                 n_draws: int) -> tuple[np.ndarray, float]:
    """Per contour, (Monte-Carlo PSD - closed form) / its standard error, and the largest relative
    deviation.

    ``mc_power``: DCT power averaged over ``n_draws`` noisy draws (H, W); ``expected``: the
    closed-form expected power (H, W) of a coefficient a + s eps with noise variance s^2 =
    ``noise_var``. Since Var|a + s eps|^2 = 4 a^2 s^2 + 2 s^4, a contour of c coefficients has
    standard error sqrt(mean var / (c n_draws)).
    """
    h, w = expected.shape[-2:]
    idx, _ = radial_index(h, w)
    counts = torch.bincount(idx.flatten()).double()
    counts = counts[counts > 0].numpy()
    expected = expected.double()
    var = 4 * (expected - noise_var).clamp_min(0) * noise_var + 2 * noise_var ** 2
    _, mc = radial_average(mc_power)
    _, ex = radial_average(expected)
    _, v = radial_average(var)
    return (mc - ex) / np.sqrt(v / (counts * n_draws)), float(np.abs(mc / ex - 1).max())


def share_above(power: Tensor, t, floor: float) -> np.ndarray:
    """Share of the DCT coefficients whose power exp(-2 lambda t) |u~|^2 at heat time t is above
    ``floor`` (the training-noise power sigma^2 in Fig. 9): one value per t."""
    return (heat_psd(power, t) > floor).double().mean((1, 2)).numpy()


def inverse_step_gain(t_from: float, t_to: float, h: int, w: int | None = None) -> float:
    """log10 of the factor by which the exact inverse heat step F(t_to) F(t_from)^-1 (t_to < t_from)
    amplifies white noise on an H x W image: sqrt(mean_nm exp(2 lambda_nm (t_from - t_to))).

    Returned as a log because the factor overflows float64 at large steps.
    """
    lam = laplacian_eigenvalues(h, w or h, dtype=torch.float64).flatten()
    log_mean = torch.logsumexp(2 * lam * (float(t_from) - float(t_to)), 0) - math.log(lam.numel())
    return float(0.5 * log_mean / math.log(10))
