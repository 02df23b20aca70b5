"""Samplers: plain functions of (net, process, initial state), in the style of k-diffusion.

``sample`` runs Alg. 2 for any process that implements ``reverse_step`` (IHDM, DDPM, ...).
Noise can be fresh per sample, shared across the batch, or passed in whole, which is
what the interpolation (Fig. 7b) and colour-disentanglement (Fig. 7a) figures need.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from .unet import Autocast

__all__ = ["sample", "draw_noise", "slerp"]


def draw_noise(K: int, shape, *, shared: bool = False, generator: torch.Generator | None = None,
               device=None) -> Tensor:
    """Standard-normal noise for every reverse step: (K, *shape); ``noise[k-1]`` is used at level k.

    ``shared=True`` draws one image per step and broadcasts it over the batch.
    """
    shape = tuple(shape)
    draw_shape = (K, 1, *shape[1:]) if shared else (K, *shape)
    gdev = generator.device if generator is not None else device
    z = torch.randn(draw_shape, generator=generator, device=gdev)
    z = z.to(device) if device is not None else z
    return z.expand(K, *shape) if shared else z


def slerp(z1: Tensor, z2: Tensor, phi: float) -> Tensor:
    """Spherical interpolation of noise, sin(phi) z1 + cos(phi) z2 with phi in [0, pi/2] (App. D).

    (The paper prints the second factor as cos(pi/2 - phi), which would not interpolate; the
    intended endpoints are z2 at phi = 0 and z1 at phi = pi/2.) For two independent Gaussian
    vectors, which are nearly orthogonal and of equal norm, the norm stays constant along
    the path; a linear interpolation would shrink it by up to sqrt(2) half-way.
    """
    return math.sin(phi) * z1 + math.cos(phi) * z2


@torch.no_grad()
def sample(net, process, u_K: Tensor, *, delta: float | None = None, noise: Tensor | str | None = None,
           generator: torch.Generator | None = None, callback: Callable[[int, Tensor], None] | None = None,
           progress: bool = False, autocast_dtype: torch.dtype | None = None) -> Tensor:
    """Run the reverse process from ``u_K`` down to level 0 (Alg. 2).

    delta:    sampling noise std (default: the process's); 0 gives the deterministic path.
    noise:    None (fresh N(0, I) each step), "shared" (one draw per step for the whole
              batch), or a tensor (K, B|1, C, H, W) from :func:`draw_noise`.
    callback: called as callback(k, u) with the state at level k, for k = K, K-1, ..., 0.
    autocast_dtype: run the network (only) in this precision, e.g. torch.bfloat16 on GPU.
    The network is put in eval mode for the call (dropout off) and restored afterwards.
    """
    K = process.K
    if isinstance(noise, str):
        if noise != "shared":
            raise ValueError(f"noise must be None, 'shared' or a tensor, got {noise!r}")
        noise = draw_noise(K, u_K.shape, shared=True, generator=generator, device=u_K.device)
    if isinstance(noise, Tensor) and (noise.shape[0] != K or noise.shape[2:] != u_K.shape[1:]):
        raise ValueError(f"noise must have shape ({K}, B, {', '.join(map(str, u_K.shape[1:]))}), "
                         f"got {tuple(noise.shape)}")
    was_training = getattr(net, "training", False)
    step_net = Autocast(net, autocast_dtype) if autocast_dtype is not None else net
    if hasattr(net, "eval"):
        net.eval()
    u = u_K
    try:
        if callback is not None:
            callback(K, u)
        steps = range(K, 0, -1)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="sampling", leave=False)
        for k in steps:
            if noise is None:
                z = None if k == 1 else _randn(u, generator)
            else:
                z = noise[k - 1].to(u.device)
            u = process.reverse_step(step_net, u, k, z, delta=delta)
            if callback is not None:
                callback(k - 1, u)
    finally:
        if hasattr(net, "train"):
            net.train(was_training)
    return u


def _randn(u: Tensor, generator) -> Tensor:
    if generator is None:
        return torch.randn_like(u)
    return torch.randn(u.shape, generator=generator, device=generator.device).to(u.device)
