"""Training losses as small pure functions of (net, process, data)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["denoising_loss", "training_batch", "squared_error"]


def training_batch(process, x0: Tensor, generator: torch.Generator | None = None,
                   k: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The draws of Alg. 1 for a batch: (network inputs u_k + eps, targets u_{k-1}, levels k).

    The forward process stays float32 even inside an autocast region: the difference
    u_k - u_{k-1} at small k is below bf16/fp16 resolution.
    """
    if k is None:
        k = process.sample_levels(x0.shape[0], generator=generator)
    with torch.autocast(x0.device.type, enabled=False):
        inputs, target = process.training_pair(x0.float(), k, generator=generator)
    return inputs, target, k


def squared_error(net, process, inputs: Tensor, target: Tensor, k: Tensor) -> Tensor:
    """Per-sample ||prediction - target||^2, summed over pixels (as Eq. 10 and the original code
    do; this sets the gradient scale that the paper's clipping at norm 1.0 acts on)."""
    pred = process.predict(net, inputs, k)
    return (pred.float() - target.float()).pow(2).flatten(1).sum(1)


def denoising_loss(net, process, x0: Tensor, generator: torch.Generator | None = None,
                   k: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Alg. 1 for a batch: per-sample ||mu_theta(u_k + eps, k) - u_{k-1}||^2 and the levels k.

    Returned per sample, so callers average over the batch or bin it by level. Any process with
    ``sample_levels``, ``training_pair`` and ``predict`` works here (IHDM, DDPM, ...).
    """
    inputs, target, k = training_batch(process, x0, generator, k)
    return squared_error(net, process, inputs, target, k), k
