"""Images as the model takes them: float (B, C, H, W) batches in [0, 1], from uint8 storage.

IHDM's sigma = 0.01 and delta are relative to that range, so every layer checks it the same way.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["to_float", "check_images"]


def to_float(x: Tensor) -> Tensor:
    """uint8 [0, 255] -> float32 [0, 1]; float input is checked to lie in [0, 1]."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    check_images(x)
    return x


def check_images(x: Tensor, channels: int | None = None) -> Tensor:
    """Raise a clear error unless ``x`` is a float (B, C, H, W) batch in [0, 1]."""
    if not isinstance(x, Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"images must be float in [0, 1] (or uint8 through to_float), got "
                        f"{x.dtype}")
    if x.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"expected {channels} channel(s), got {x.shape[1]} (shape "
                         f"{tuple(x.shape)})")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"images must lie in [0, 1] (IHDM's sigma = 0.01 is relative to that "
                         f"range), "
                         f"got values in [{lo:.3g}, {hi:.3g}]")
    return x
