"""Samplers: plain functions of (net, process, initial state), in the style of k-diffusion.

``sample`` runs Alg. 2 for any process that implements ``reverse_step`` (IHDM, DDPM, ...).
The step noise is None (fresh draws) or a callable ``noise(k)``, built by
:mod:`ihdm_core.model.latents` (a table drawn up front, per-seed streams, shared, interpolated).
``ddim_sample`` is DDIM for the Gaussian diffusions of :mod:`ihdm_core.model.diffusion` (the
deterministic DDPM baseline of the interpolation comparison).

Both take a ``callback`` that is called once per visited level, k-diffusion style, with a dict
``{"k": level, "x": state at that level, "denoised": process.denoised(net, x, k)}``, the state
first at level K and last at level 0 (where ``denoised`` is the final sample itself). Each step
returns the estimate it moved towards, so the callback costs no extra network call.
:class:`Recorder` is such a callback that keeps the states at chosen levels.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from ._util import eval_mode, randn_like
from .unet import Autocast

__all__ = ["sample", "ddim_sample", "ddim_levels", "Callback", "Recorder"]

Callback = Callable[[dict[str, Any]], None]
StepNoise = Callable[[int], Tensor]


class Recorder:
    """A sampler callback (``sample`` / ``ddim_sample`` call it with ``{"k", "x", "denoised"}``)
    that keeps the states ``x`` at ``levels`` (all levels when None), detached and on the CPU.

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
            raise RuntimeError(f"the sampler never visited levels {missing}; it visited "
                               f"{self.levels()}")
        return torch.stack([self.states[k] for k in self.levels()])


def _step_net(net, autocast_dtype):
    """The network as the steps call it: under autocast if asked."""
    return Autocast(net, autocast_dtype) if autocast_dtype is not None else net


def _report(callback: Callback | None, k: int, x: Tensor, denoised: Tensor) -> None:
    if callback is not None:
        callback({"k": int(k), "x": x, "denoised": denoised})


def _check_noise(noise) -> None:
    if noise is not None and not callable(noise):
        raise TypeError(f"noise must be None or a callable noise(k) -> (B|1, C, H, W) from "
                        f"ihdm_core.model.latents (a tensor: latents.NoiseTable(z)), "
                        f"got {type(noise).__name__}")


@torch.no_grad()
def sample(net, process, u_K: Tensor, *, delta: float | None = None, noise: StepNoise | None = None,
           generator: torch.Generator | None = None, callback: Callback | None = None,
           progress: bool = False, autocast_dtype: torch.dtype | None = None) -> Tensor:
    """Run the reverse process from ``u_K`` down to level 0 (Alg. 2).

    delta:    sampling noise std (default: the process's); 0 gives the deterministic path.
    noise:    None (fresh N(0, I) from ``generator`` each step) or a callable
              noise(k) -> (B|1, C, H, W), called once per level k = K, ..., 1 in that order
              (:mod:`ihdm_core.model.latents` builds them).
    callback: called as callback({"k", "x", "denoised"}) at levels k = K, K-1, ..., 0
              (module docstring).
    autocast_dtype: run the network (only) in this precision, e.g. torch.bfloat16 on GPU.
    The network is put in eval mode for the call (dropout off) and restored afterwards.
    """
    _check_noise(noise)
    step_net = _step_net(net, autocast_dtype)
    u = u_K
    with eval_mode(net):
        steps = range(process.K, 0, -1)
        if progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="sampling", leave=False)
        for k in steps:
            if noise is None:
                z = None if k == 1 else randn_like(u, generator)
            else:
                z = _check_step_noise(noise(k), u, k).to(u.device)
            step = process.reverse_step(step_net, u, k, z, delta=delta)
            _report(callback, k, u, step.denoised)
            u = step.x
        _report(callback, 0, u, u)
    return u


def _check_step_noise(z, u: Tensor, k: int) -> Tensor:
    if (not isinstance(z, Tensor) or z.dim() != u.dim() or z.shape[0] not in (1, u.shape[0])
            or z.shape[1:] != u.shape[1:]):
        got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(f"noise({k}) must return a tensor "
                         f"(B|1, {', '.join(map(str, u.shape[1:]))}), got {got}")
    return z


def ddim_levels(K: int, steps: int) -> list[int]:
    """``steps + 1`` evenly spaced levels from K down to 0 (all of K..0 when steps = K)."""
    if int(steps) != steps or not 1 <= steps <= K:
        raise ValueError(f"steps must be an integer in 1..{K}, got {steps}")
    return torch.linspace(K, 0, int(steps) + 1, dtype=torch.float64).round().long().tolist()


@torch.no_grad()
def ddim_sample(net, process, x_T: Tensor, steps: int | None = None, *, eta: float = 0.0,
                noise: StepNoise | None = None, generator: torch.Generator | None = None,
                callback: Callback | None = None, progress: bool = False,
                autocast_dtype: torch.dtype | None = None) -> Tensor:
    """DDIM (Song et al. 2021) from x_T over ``steps`` evenly spaced levels; returns [0, 1] images.

    eta = 0 (default) is deterministic: the output is a function of x_T alone, which is what
    the interpolation comparison needs. eta = 1 is ancestral sampling on the coarser level
    grid; with steps = K it is :func:`sample`, draw for draw given the same ``noise``.
    noise:    for eta > 0: None (fresh) or a callable noise(i) -> (B|1, C, H, W), called for
              i = steps, ..., 1 on the step that leaves the i-th level from the end.
    callback: called as callback({"k", "x", "denoised"}) at every visited level, K first, 0 last.
    autocast_dtype: run the network (only) in this precision, as in :func:`sample`.
    """
    if not hasattr(process, "ddim_step"):
        raise TypeError(f"DDIM needs a Gaussian diffusion (DDPM or Blurring Diffusion), "
                        f"got {type(process).__name__}")
    _check_noise(noise)
    levels = ddim_levels(process.K, process.K if steps is None else steps)
    n = len(levels) - 1
    step_net = _step_net(net, autocast_dtype)
    x = x_T
    with eval_mode(net):
        pairs = range(n)
        if progress:
            from tqdm.auto import tqdm

            pairs = tqdm(pairs, desc="DDIM", leave=False)
        for j in pairs:
            t, s = levels[j], levels[j + 1]
            z = None
            if eta > 0 and noise is not None:
                z = _check_step_noise(noise(n - j), x, n - j).to(x.device)
            elif eta > 0 and s > 0:
                z = randn_like(x, generator)
            step = process.ddim_step(step_net, x, t, s, eta=eta, noise=z)
            _report(callback, t, x, step.denoised)
            x = step.x
        _report(callback, 0, x, x)
    return x
