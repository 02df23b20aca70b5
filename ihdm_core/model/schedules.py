"""The schedules of the Gaussian diffusions (:mod:`ihdm_core.model.diffusion`), in float64:
Ho et al.'s linear betas, the clipped log-SNR cosine schedule, Blurring Diffusion's blur
sigma_B(t), and the grids of sampling times for the continuous-time processes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .heat import laplacian_eigenvalues

__all__ = ["linear_alpha_bars", "cosine_logsnr", "blur_heat_times", "cosine_a_sigma", "time_grid",
           "grid_schedule", "check_K", "GRIDS"]


def linear_alpha_bars(K: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """alpha_bar_k = prod_{j<=k} (1 - beta_j), k = 0..K, for Ho et al.'s linear betas.

    ``beta_start``/``beta_end`` are the values for 1000 steps and are scaled by 1000 / K (as in
    Nichol & Dhariwal's code), so any K discretises about the same process; K = 1000 is exactly
    Ho et al.'s schedule.
    """
    K = check_K(K)
    scale = 1000.0 / K
    lo, hi = beta_start * scale, beta_end * scale
    if not (0 < lo <= hi < 1):
        raise ValueError(f"linear betas {lo:g}..{hi:g} (beta_start/end x 1000/K, K={K}) must lie "
                         f"in (0, 1); use more steps or beta_schedule='cosine'")
    betas = torch.linspace(lo, hi, K, dtype=torch.float64)
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])


def cosine_logsnr(t, logsnr_min: float = -10.0, logsnr_max: float = 10.0) -> Tensor:
    """The cosine schedule in log-SNR, clipped to [logsnr_min, logsnr_max] (Blurring Diffusion):

    logsnr(t) = -2 log tan(a t + b),  b = atan(exp(-logsnr_max / 2)),
    a = atan(exp(-logsnr_min / 2)) - b,

    so alpha^2 = sigmoid(logsnr) = cos(a t + b)^2: the cosine schedule of Nichol & Dhariwal
    with the end points set by the log-SNR clip instead of their offset s.
    """
    if not logsnr_min < logsnr_max:
        raise ValueError(f"need logsnr_min < logsnr_max, got {logsnr_min}, {logsnr_max}")
    t = torch.as_tensor(t, dtype=torch.float64)
    b = math.atan(math.exp(-0.5 * logsnr_max))
    a = math.atan(math.exp(-0.5 * logsnr_min)) - b
    return -2.0 * torch.log(torch.tan(a * t + b))


def blur_heat_times(t, sigma_B_max: float) -> Tensor:
    """tau(t) = sigma_B(t)^2 / 2, sigma_B(t) = sigma_B_max sin(pi t / 2)^2 (Blurring Diffusion)."""
    if sigma_B_max < 0:
        raise ValueError(f"sigma_B_max must be >= 0, got {sigma_B_max}")
    t = torch.as_tensor(t, dtype=torch.float64)
    return (sigma_B_max * torch.sin(0.5 * math.pi * t) ** 2) ** 2 / 2


def check_K(K) -> int:
    if int(K) != K or K < 1:
        raise ValueError(f"K must be a positive integer, got {K}")
    return int(K)


GRIDS = ("uniform", "edge")


def cosine_a_sigma(t: Tensor, logsnr_min: float, logsnr_max: float) -> tuple[Tensor, Tensor]:
    """(a_t, sigma_t) of the clipped cosine schedule at times t (float64); t = 0 is the data."""
    logsnr = cosine_logsnr(t, logsnr_min, logsnr_max)
    a, s = torch.sigmoid(logsnr).sqrt(), torch.sigmoid(-logsnr).sqrt()
    data = t == 0
    return torch.where(data, torch.ones_like(a), a), torch.where(data, torch.zeros_like(s), s)


def time_grid(T: int, kind: str = "uniform", *, sigma_B_max: float = 0.0, image_size=28,
              d_min: float = 0.001,
              logsnr_min: float = -10.0, logsnr_max: float = 10.0, mix: float = 0.5) -> Tensor:
    """Sampling times 0 = t_0 < ... < t_T = 1 (float64, length T + 1).

    ``uniform``: t_k = k / T. ``edge``: denser where some frequency's alpha_f(t) = a_t d_f(t) falls
    fastest, i.e. where a band of frequencies crosses its blur edge (alpha_f drops from ~a_t to
    a_t d_min within a short stretch of t). The density is ``mix`` uniform plus ``1 - mix``
    proportional to max_f |d log alpha_f(t) / dt|, which evens out the smallest per-step ratio
    alpha_{t|s} = alpha_t / alpha_s over the steps: that ratio divides eps-prediction's error
    at every step. Without blur (DDPM) it is denser where a_t falls fastest, near t = 1.
    """
    T = check_K(T)
    if kind not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}, got {kind!r}")
    if kind == "uniform":
        return torch.arange(T + 1, dtype=torch.float64) / T
    if not 0 <= mix <= 1:
        raise ValueError(f"mix must lie in [0, 1], got {mix}")
    fine = torch.linspace(0, 1, 4001, dtype=torch.float64)
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    lam = torch.unique(laplacian_eigenvalues(h, w, "cpu", torch.float64))
    a, _ = cosine_a_sigma(fine, logsnr_min, logsnr_max)
    tau = blur_heat_times(fine, sigma_B_max)
    log_alpha = a.log()[:, None] + torch.log((1 - d_min) * torch.exp(-lam[None] * tau[:, None])
                                             + d_min)
    rate = log_alpha.diff(dim=0).abs().amax(1)
    cdf = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(rate, 0)])
    cdf = mix * fine + (1 - mix) * cdf / cdf[-1]
    # Invert the cumulative density at uniform quantiles (linear interpolation on the fine grid).
    q = torch.arange(T + 1, dtype=torch.float64) / T
    idx = torch.searchsorted(cdf, q).clamp(1, len(fine) - 1)
    lo, hi = cdf[idx - 1], cdf[idx]
    frac = ((q - lo) / (hi - lo).clamp_min(1e-300)).clamp(0, 1)
    t = fine[idx - 1] + frac * (fine[idx] - fine[idx - 1])
    t[0], t[-1] = 0.0, 1.0
    if torch.any(t.diff() <= 0):
        raise ValueError(f"grid {kind!r} with T={T} is not strictly increasing; use fewer steps")
    return t


def grid_schedule(K: int, times, continuous: bool, schedule) -> Tensor:
    """The sampling grid: t_k = k / K unless ``times`` is given (continuous-time processes only)."""
    if times is None:
        return torch.arange(K + 1, dtype=torch.float64) / K
    if not continuous:
        raise ValueError("a discrete-time process samples on its training levels t = k / K; "
                         "only continuous-time processes take another grid of times")
    times = torch.as_tensor(times, dtype=torch.float64)
    if len(times) != K + 1:
        raise ValueError(f"times must have K + 1 = {K + 1} entries, got {len(times)}")
    return times
