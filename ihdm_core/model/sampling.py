"""Samplers: plain functions of (net, process, initial state), in the style of k-diffusion.

``sample`` runs Alg. 2 for any process that implements ``reverse_step`` (IHDM, DDPM, ...).
Noise can be fresh per sample, shared across the batch, passed in whole, which is
what the interpolation (Fig. 7b) and colour-disentanglement (Fig. 7a) figures need, or drawn
step by step by a callable (per-seed generators in :func:`ihdm_core.training.generate.sample_seeds`,
without holding all K steps of noise in memory).
``ddim_sample`` is DDIM for the Gaussian diffusions of :mod:`ihdm_core.model.diffusion` (the
deterministic DDPM baseline of the interpolation comparison).

Both take a ``callback`` that is called once per visited level, k-diffusion style, with a dict
``{"k": level, "x": state at that level, "denoised": process.denoised(net, x, k)}``, the state
first at level K and last at level 0 (where ``denoised`` is the final sample itself). The estimate
shares the network evaluation of the step, so a callback costs no extra network call.
:class:`Recorder` is such a callback that keeps the states at chosen levels.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from ._util import eval_mode, randn, randn_like
from .unet import Autocast

__all__ = ["sample", "ddim_sample", "ddim_levels", "draw_noise", "slerp", "Callback", "Recorder"]

Callback = Callable[[dict[str, Any]], None]


class _SharedCall:
    """The network, remembering its last call: the same inputs again return the same output.

    The callback's ``denoised`` and the reverse step each ask the network about the same state;
    this makes that one evaluation. Inputs are compared by value (a cheap check next to a U-Net,
    though on a GPU it reads one boolean back per step; only sampling with a callback pays it, and
    callbacks usually copy the state to the host anyway).
    """

    def __init__(self, net):
        self.net, self._args, self._out = net, None, None

    def __call__(self, x: Tensor, k: Tensor) -> Tensor:
        if self._args is not None and all(a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
                                          for a, b in zip(self._args, (x, k))):
            return self._out
        self._out = self.net(x, k)
        self._args = (x, k)
        return self._out


class Recorder:
    """A sampler callback (``sample`` / ``ddim_sample`` call it with ``{"k", "x", "denoised"}``) that
    keeps the states ``x`` at ``levels`` (all levels when None), detached and on the CPU.

    ``frames()`` stacks them from the highest level to the lowest: (T, B, C, H, W), u_K first.
    """

    def __init__(self, levels=None, clamp: bool = True):
        self._wanted = None if levels is None else {int(k) for k in levels}
        self.clamp = clamp
        self.states: dict[int, Tensor] = {}

    def __call__(self, info: dict) -> None:
        k, u = int(info["k"]), info["x"]
        if self._wanted is None or k in self._wanted:
            u = u.detach().float().cpu()
            self.states[k] = u.clamp(0, 1) if self.clamp else u.clone()

    def levels(self) -> list[int]:
        return sorted(self.states, reverse=True)

    def frames(self) -> Tensor:
        if not self.states:
            raise RuntimeError("the recorder saw no state: pass it to the sampler as callback=")
        missing = sorted(self._wanted - set(self.states)) if self._wanted is not None else []
        if missing:
            raise RuntimeError(f"the sampler never visited levels {missing}; it visited {self.levels()}")
        return torch.stack([self.states[k] for k in self.levels()])


def _step_net(net, autocast_dtype, callback):
    """The network as the steps call it: under autocast if asked, sharing its evaluation with the
    callback's ``denoised`` when there is a callback."""
    step_net = Autocast(net, autocast_dtype) if autocast_dtype is not None else net
    return _SharedCall(step_net) if callback is not None else step_net


def _report(callback: Callback | None, process, net, x: Tensor, k: int) -> None:
    if callback is not None:
        callback({"k": int(k), "x": x, "denoised": process.denoised(net, x, k) if k > 0 else x})


def draw_noise(K: int, shape, *, shared: bool = False, generator: torch.Generator | None = None,
               device=None) -> Tensor:
    """Standard-normal noise for every reverse step: (K, *shape); ``noise[k-1]`` is used at level k.

    ``shared=True`` draws one image per step and broadcasts it over the batch.
    """
    shape = tuple(shape)
    draw_shape = (K, 1, *shape[1:]) if shared else (K, *shape)
    z = randn(draw_shape, generator, device)
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
def sample(net, process, u_K: Tensor, *, delta: float | None = None,
           noise: Tensor | str | Callable[[int], Tensor] | None = None,
           generator: torch.Generator | None = None, callback: Callback | None = None,
           progress: bool = False, autocast_dtype: torch.dtype | None = None) -> Tensor:
    """Run the reverse process from ``u_K`` down to level 0 (Alg. 2).

    delta:    sampling noise std (default: the process's); 0 gives the deterministic path.
    noise:    None (fresh N(0, I) each step), "shared" (one draw per step for the whole
              batch), a tensor (K, B|1, C, H, W) from :func:`draw_noise`, or a callable
              noise(k) -> (B|1, C, H, W), called once per level k = K, ..., 1 in that order
              (also at k = 1, whose noise is unused, so a caller's draw streams stay simple).
    callback: called as callback({"k", "x", "denoised"}) at levels k = K, K-1, ..., 0 (module docstring).
    autocast_dtype: run the network (only) in this precision, e.g. torch.bfloat16 on GPU.
    The network is put in eval mode for the call (dropout off) and restored afterwards.
    """
    K = process.K
    noise = _resolve_noise(noise, K, u_K, generator)
    step_net = _step_net(net, autocast_dtype, callback)
    u = u_K
    with eval_mode(net):
        steps = range(K, 0, -1)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="sampling", leave=False)
        for k in steps:
            if noise is None:
                z = None if k == 1 else randn_like(u, generator)
            elif callable(noise):
                z = _check_step_noise(noise(k), u, k).to(u.device)
            else:
                z = noise[k - 1].to(u.device)
            _report(callback, process, step_net, u, k)
            u = process.reverse_step(step_net, u, k, z, delta=delta)
        _report(callback, process, step_net, u, 0)
    return u


def _check_step_noise(z, u: Tensor, k: int) -> Tensor:
    if not isinstance(z, Tensor) or z.dim() != u.dim() or z.shape[0] not in (1, u.shape[0]) or z.shape[1:] != u.shape[1:]:
        got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(f"noise({k}) must return a tensor (B|1, {', '.join(map(str, u.shape[1:]))}), got {got}")
    return z


def _resolve_noise(noise, steps: int, x: Tensor, generator) -> Tensor | None:
    """The samplers' ``noise`` argument as None or a (steps, B|1, C, H, W) tensor, checked."""
    if callable(noise):
        return noise
    if isinstance(noise, str):
        if noise != "shared":
            raise ValueError(f"noise must be None, 'shared' or a tensor, got {noise!r}")
        noise = draw_noise(steps, x.shape, shared=True, generator=generator, device=x.device)
    if isinstance(noise, Tensor) and (noise.shape[0] != steps or noise.shape[2:] != x.shape[1:]):
        raise ValueError(f"noise must have shape ({steps}, B, {', '.join(map(str, x.shape[1:]))}), "
                         f"got {tuple(noise.shape)}")
    return noise


def ddim_levels(K: int, steps: int) -> list[int]:
    """``steps + 1`` evenly spaced levels from K down to 0 (all of K..0 when steps = K)."""
    if int(steps) != steps or not 1 <= steps <= K:
        raise ValueError(f"steps must be an integer in 1..{K}, got {steps}")
    return torch.linspace(K, 0, int(steps) + 1, dtype=torch.float64).round().long().tolist()


@torch.no_grad()
def ddim_sample(net, process, x_T: Tensor, steps: int | None = None, *, eta: float = 0.0,
                noise: Tensor | str | None = None, generator: torch.Generator | None = None,
                callback: Callback | None = None, progress: bool = False,
                autocast_dtype: torch.dtype | None = None) -> Tensor:
    """DDIM (Song et al. 2021) from x_T over ``steps`` evenly spaced levels; returns [0, 1] images.

    eta = 0 (default) is deterministic: the output is a function of x_T alone, which is what
    the interpolation comparison needs. eta = 1 is ancestral sampling on the coarser level
    grid; with steps = K it is :func:`sample`, draw for draw given the same ``noise``.
    noise:    for eta > 0: None (fresh), "shared", or a tensor (steps, B|1, C, H, W);
              ``noise[i - 1]`` is used on the step that leaves the i-th level from the end.
    callback: called as callback({"k", "x", "denoised"}) at every visited level, K first, 0 last.
    autocast_dtype: run the network (only) in this precision, as in :func:`sample`.
    """
    if not hasattr(process, "ddim_step"):
        raise TypeError(f"DDIM needs a Gaussian diffusion (DDPM or Blurring Diffusion), got {type(process).__name__}")
    levels = ddim_levels(process.K, process.K if steps is None else steps)
    n = len(levels) - 1
    if callable(noise):
        raise TypeError("ddim_sample takes noise as None, 'shared' or a tensor, not a callable")
    noise = _resolve_noise(noise, n, x_T, generator)
    step_net = _step_net(net, autocast_dtype, callback)
    x = x_T
    with eval_mode(net):
        pairs = range(n)
        if progress:
            from tqdm.auto import tqdm

            pairs = tqdm(pairs, desc="DDIM", leave=False)
        for j in pairs:
            t, s = levels[j], levels[j + 1]
            z = None
            if eta > 0 and s > 0:
                z = randn_like(x, generator) if noise is None else noise[n - j - 1].to(x.device)
            _report(callback, process, step_net, x, t)
            x = process.ddim_step(step_net, x, t, s, eta=eta, noise=z)
        _report(callback, process, step_net, x, 0)
    return x
