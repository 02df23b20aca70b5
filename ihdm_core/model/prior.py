"""The prior p(u_K): a Gaussian kernel density estimate on blurred training images (Sec. 3.2).

A draw is a training image blurred to level K plus N(0, delta^2) noise. Returning the
training indices lets notebooks hold the initial state fixed (Fig. 15, 17) or vary it with
the noise fixed (Fig. 7a).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._util import randn
from .images import to_float
from .likelihood import bin_centres as _bin_centres

__all__ = ["kde_prior_sample", "kde_centres"]


def _gather(images, idx: Tensor) -> Tensor:
    if isinstance(images, Tensor):
        return images[idx.to(images.device)]
    return torch.stack([images[int(i)] for i in idx])


def kde_prior_sample(process, images, n: int | None = None, *, indices: Tensor | None = None,
                     delta: float | None = None, generator: torch.Generator | None = None,
                     device=None) -> tuple[Tensor, Tensor]:
    """Draw u_K ~ p(u_K). Returns ``(u_K, indices)``.

    ``images``: training images (uint8 or [0, 1] float tensor, or a Dataset of them).
    ``indices``: which training images to use (default: ``n`` uniform draws).
    ``delta``: KDE bandwidth; defaults to the process's sampling noise.
    """
    if indices is None:
        if n is None:
            raise ValueError("give n or indices")
        indices = torch.randint(0, len(images), (n,), generator=generator)
    indices = torch.as_tensor(indices, dtype=torch.long).cpu()
    if len(indices) and (indices.min() < 0 or indices.max() >= len(images)):
        raise IndexError(f"prior indices must lie in [0, {len(images)})")
    device = torch.device(device) if device is not None else process.device
    x0 = to_float(_gather(images, indices)).to(device)
    uK = process.blur(x0, process.K)
    d = process.delta if delta is None else float(delta)
    if d > 0:
        noise = randn(uK.shape, generator)  # on the generator's device (CPU by default), then moved
        uK = uK + d * noise.to(device)
    return uK, indices


def kde_centres(process, images, *, bin_centres: bool = False, batch_size: int = 4096,
                device=None) -> Tensor:
    """The KDE's centres F(t_K) u_0: every training image blurred to level K, as one float tensor.

    ``bin_centres=True`` takes uint8 images at the means of their dequantisation bins, (x + 1/2) /
    256, as the likelihood does (:func:`ihdm_core.model.likelihood.bin_centres`); otherwise x / 255,
    as
    :func:`kde_prior_sample` draws them.
    """
    device = torch.device(device) if device is not None else process.device
    out = []
    for start in range(0, len(images), batch_size):
        x = _gather(images, torch.arange(start, min(start + batch_size, len(images))))
        if bin_centres:
            x = _bin_centres(x)
        out.append(process.blur(to_float(x).to(device), process.K))
    return torch.cat(out)
