"""The one interface every forward process implements: IHDM, DDPM and Blurring Diffusion.

The training loop (:func:`ihdm_core.model.losses.denoising_loss`) and the samplers
(:mod:`ihdm_core.model.sampling`) only call these members, so a new process that implements
them trains and samples with no other change. Levels are integers k = 0..K on the sampling grid
(level 0 is the data); continuous-time diffusions also accept float times t in (0, 1] where they
train.

=========================================  =========================================================
member                                     IHDM (Alg. 1-2)         / Gaussian diffusions
=========================================  =========================================================
``K``                                      number of reverse steps
``sample_levels(n, generator)``            training levels k ~ U{1..K} / also t ~ U(0, 1]
``training_pair(x0, k, generator)``        (u_k + sigma eps, u_{k-1}) / (z_t, eps | v | x)
``predict(net, x, k)``                     mu_theta = u + f_theta(u, k) (Eq. 8) / the network output
``denoised(net, x, k)``                    the estimate the step moves towards: mu_theta(u_k, k),
                                           the network's u_{k-1} / x_hat, the data estimate
``reverse_step(net, x, k, noise, delta)``  one ancestral step from level k to k - 1: a
                                           :class:`Step` (the new state, the estimate)
``prior_sample(n, images, generator=, delta=)``  x_K: the KDE on blurred ``images`` / N(0, I)
``to(device)``                             the same process on another device
``data_prior``                             True: ``prior_sample`` needs training images / False
=========================================  =========================================================
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = ["Process", "Step"]


class Step(NamedTuple):
    """What a reverse step returns: the state at the next level, and the estimate the step moved
    towards (``denoised`` at the step's input), computed once for the step and any callback."""

    x: Tensor
    denoised: Tensor


@runtime_checkable
class Process(Protocol):
    K: int
    device: torch.device
    # whether x_K is drawn around training images (IHDM's KDE), so sampling needs them
    data_prior: bool

    def sample_levels(self, n: int, generator: torch.Generator | None = None) -> Tensor: ...

    def training_pair(self, x0: Tensor, k: Tensor,
                      generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]: ...

    def predict(self, net, x: Tensor, k: Tensor) -> Tensor: ...

    def denoised(self, net, x: Tensor, k: int) -> Tensor: ...

    def reverse_step(self, net, x: Tensor, k: int, noise: Tensor | None,
                     delta: float | None = None) -> Step: ...

    def prior_sample(self, n: int, images, *, generator: torch.Generator | None = None,
                     delta: float | None = None) -> Tensor: ...

    def to(self, device) -> "Process": ...
