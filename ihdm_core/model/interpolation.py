"""Interpolation paths between two sets of latents (Sec. 4, Fig. 7b, App. D.2).

A sample is a deterministic function of its latents (the prior state and the sampling noises),
so a path of latents is a path of samples. Prior states are interpolated linearly; Gaussian
noises spherically (:func:`ihdm_core.model.sampling.slerp`), which keeps their norm.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .sampling import slerp

__all__ = ["lerp_path", "slerp_path"]


def _check(a: Tensor, b: Tensor, n_frames: int) -> None:
    if a.shape != b.shape:
        raise ValueError(f"endpoints must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if n_frames < 2:
        raise ValueError(f"a path needs at least 2 frames, got {n_frames}")


def lerp_path(a: Tensor, b: Tensor, n_frames: int) -> Tensor:
    """(..., C, H, W) endpoints -> (..., n_frames, C, H, W): (1 - alpha) a + alpha b, alpha = i / (n_frames - 1)."""
    _check(a, b, n_frames)
    w = torch.linspace(0, 1, n_frames, dtype=a.dtype, device=a.device).view(n_frames, 1, 1, 1)
    return (1 - w) * a.unsqueeze(-4) + w * b.unsqueeze(-4)


def slerp_path(a: Tensor, b: Tensor, n_frames: int) -> Tensor:
    """(..., C, H, W) endpoints -> (..., n_frames, C, H, W): cos(phi) a + sin(phi) b, phi = pi/2 i / (n_frames - 1)."""
    _check(a, b, n_frames)
    phi = torch.linspace(0, 1, n_frames) * math.pi / 2
    return torch.stack([slerp(b, a, float(p)) for p in phi], dim=-4)
