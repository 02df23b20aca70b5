"""Latents: everything random that a sample is a deterministic function of, built in one place.

A sample of Alg. 2 is fixed by its prior state x_K (IHDM: a KDE draw around a blurred training
image; the Gaussian diffusions: N(0, I)) and one noise image per reverse step. :class:`Latents`
holds both; ``sample(net, process, lat.x_K, noise=lat.noise)`` draws the images. The step noise
is always a callable ``noise(k) -> (B|1, C, H, W)``, asked once per level k = K, ..., 1 in that
order (also at k = 1, whose draw the last step does not use, so draw streams stay simple):

* :class:`NoiseTable` serves a (K, B|1, C, H, W) tensor drawn up front (:func:`draw_noise`);
* :class:`SeedNoise` draws each sample's noise from its own seeded generator as the sampler asks,
  without holding K steps of noise in memory.

The cases the book and the exports need:

* :func:`seed_latents` - per-seed draws (EDM's ``StackedRandomGenerator`` pattern): seed i owns
  one CPU generator seeded with i, which draws, in this order, the prior state, then one noise
  image per level K, ..., 1. No seed's draws depend on another's, so seed i gives the same
  latents at any batch size. Its modes share noise (``shared_noise``), start every seed from
  the same prior draw (``same_init``) or interpolate between seeds (``interpolate``);
* :func:`interpolation` - paths between pairs of endpoint latents (Fig. 7b, App. D.2): prior
  states linearly for IHDM, every Gaussian draw spherically (:func:`slerp`);
* :func:`shared_noise_grid` - the colour/shape grid (Fig. 7a, App. D.3): row p starts at prior
  centre p, column n uses noise set n in every row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ._util import randn

__all__ = ["MODES", "Latents", "NoiseTable", "SeedNoise", "draw_noise", "shared_noise", "slerp",
           "lerp_path", "slerp_path", "seed_latents", "Interpolation", "interpolation",
           "shared_noise_grid"]

MODES = ("independent", "shared_noise", "same_init", "interpolate")


class NoiseTable:
    """Step noise drawn up front: ``table[k - 1]`` (B|1, C, H, W) is the draw used at level k."""

    def __init__(self, table: Tensor):
        if not isinstance(table, Tensor) or table.dim() < 3:
            got = tuple(table.shape) if isinstance(table, Tensor) else type(table).__name__
            raise ValueError(f"a noise table is a (K, B|1, C, H, W) tensor, got {got}")
        self.table = table

    def __call__(self, k: int) -> Tensor:
        return self.table[k - 1]

    def __len__(self) -> int:
        return self.table.shape[0]

    def batch(self, start: int, stop: int) -> "NoiseTable":
        """The noise of samples start..stop-1 (a shared (K, 1, ...) table stays shared)."""
        return self if self.table.shape[1] == 1 else NoiseTable(self.table[:, start:stop])


class SeedNoise:
    """Step noise drawn as the sampler asks: one (C, H, W) draw per generator and call.

    Sample b uses generator b's draw, unless ``combine`` (draws -> one per sample) mixes them,
    e.g. slerps two endpoint seeds' draws; ``shared_batch=B`` broadcasts the first generator's
    draw to all B samples.
    """

    def __init__(self, gens: list[torch.Generator], shape, device=None, *, combine=None,
                 shared_batch: int | None = None):
        self.gens, self.shape, self.device = gens, tuple(shape), device
        self.combine, self.shared_batch = combine, shared_batch

    def __call__(self, k: int) -> Tensor:
        draws = [torch.randn(self.shape, generator=g) for g in self.gens]
        if self.shared_batch is not None:
            return draws[0][None].expand(self.shared_batch, *self.shape).to(self.device)
        if self.combine is not None:
            return torch.stack(self.combine(draws)).to(self.device)
        return torch.stack(draws).to(self.device)


@dataclass
class Latents:
    """A batch's latents: prior states ``x_K`` (B, C, H, W) and the step noise ``noise(k)``."""

    x_K: Tensor
    noise: NoiseTable | SeedNoise

    def batch(self, start: int, stop: int) -> "Latents":
        """Samples start..stop-1, for sampling a large set in batches (tables only)."""
        if not isinstance(self.noise, NoiseTable):
            raise TypeError("only latents with a noise table can be cut into batches")
        return Latents(self.x_K[start:stop], self.noise.batch(start, stop))


def draw_noise(K: int, shape, *, generator: torch.Generator | None = None, device=None) -> Tensor:
    """Standard-normal noise for every reverse step: (K, *shape), ``noise[k-1]`` used at level k."""
    return randn((K, *tuple(shape)), generator, device)


def shared_noise(K: int, shape, *, generator: torch.Generator | None = None,
                 device=None) -> NoiseTable:
    """One noise image per step for the whole batch: (K, 1, C, H, W) broadcast to ``shape``."""
    shape = tuple(shape)
    return NoiseTable(randn((K, 1, *shape[1:]), generator, device).expand(K, *shape))


def slerp(z1: Tensor, z2: Tensor, phi: float) -> Tensor:
    """Spherical interpolation cos(phi) z1 + sin(phi) z2, phi in [0, pi/2]: z1 at 0, z2 at pi/2.

    App. D prints sin(phi) z1 + cos(pi/2 - phi) z2, which does not interpolate; this is the
    path it means. For two independent Gaussian vectors, nearly orthogonal and of equal norm,
    the norm stays constant along it; a straight line would shrink it by sqrt(2) half-way.
    """
    return math.cos(phi) * z1 + math.sin(phi) * z2


def _check_path(a: Tensor, b: Tensor, n_frames: int) -> None:
    if a.shape != b.shape:
        raise ValueError(f"endpoints must have the same shape, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    if n_frames < 2:
        raise ValueError(f"a path needs at least 2 frames, got {n_frames}")


def lerp_path(a: Tensor, b: Tensor, n_frames: int) -> Tensor:
    """(..., C, H, W) endpoints -> (..., n_frames, C, H, W): (1 - alpha) a + alpha b,
    alpha = i / (n_frames - 1)."""
    _check_path(a, b, n_frames)
    w = torch.linspace(0, 1, n_frames, dtype=a.dtype, device=a.device).view(n_frames, 1, 1, 1)
    return (1 - w) * a.unsqueeze(-4) + w * b.unsqueeze(-4)


def slerp_path(a: Tensor, b: Tensor, n_frames: int) -> Tensor:
    """(..., C, H, W) endpoints -> (..., n_frames, C, H, W): :func:`slerp` at
    phi = pi/2 i / (n_frames - 1), so frame 0 is ``a`` and the last frame ``b``."""
    _check_path(a, b, n_frames)
    phi = torch.linspace(0, 1, n_frames) * math.pi / 2
    return torch.stack([slerp(a, b, float(p)) for p in phi], dim=-4)


# --- per-seed latents -------------------------------------------------------------------------
def _seed_prior(process, seed: int, images, delta) -> tuple[torch.Generator, Tensor]:
    """Seed ``seed``'s generator, advanced past its prior draw, and that draw (1, C, H, W)."""
    gen = torch.Generator().manual_seed(int(seed))
    # n = 1: the prior (for IHDM also its blur) of a seed never shares a batch with another.
    return gen, process.prior_sample(1, images, generator=gen, delta=delta).cpu()


def _interp_weights(seed: int, frames: int) -> tuple[int, int, float]:
    a = frames * (seed // frames)
    return a, a + frames - 1, (seed - a) / (frames - 1)


def _interpolated_seeds(process, seeds, images, delta, frames: int) -> Latents:
    gens, priors, phis = [], [], []
    for s in seeds:
        a, b, w = _interp_weights(s, frames)
        # fresh endpoint generators per frame: each frame consumes its endpoints' noise in full
        (ga, pa), (gb, pb) = _seed_prior(process, a, images,
                                         delta), _seed_prior(process, b, images, delta)
        gens += [ga, gb]
        phis.append(w * math.pi / 2)
        # IHDM's prior states are blurred images, blended linearly; Gaussian z_K are slerped.
        priors.append(slerp(pa, pb, phis[-1]) if not process.data_prior else (1 - w) * pa + w * pb)

    def combine(draws):
        return [slerp(draws[2 * i], draws[2 * i + 1], p) for i, p in enumerate(phis)]

    x_K = torch.cat(priors)
    return Latents(x_K.to(process.device),
                   SeedNoise(gens, x_K.shape[1:], process.device, combine=combine))


def seed_latents(process, seeds, *, images=None, delta: float | None = None,
                 mode: str = "independent", shared_seed: int = 0, frames: int = 8) -> Latents:
    """The latents of ``seeds``, each drawn from its own generator (module docstring), on the
    process's device.

    mode: ``independent`` (each seed its own prior draw and step noise), ``shared_noise`` (own
    prior draw, the step noise of ``shared_seed``), ``same_init`` (the prior draw of
    ``shared_seed``, own step noise) or ``interpolate``: seed i is frame i mod ``frames`` of the
    path from seed a = frames * (i // frames) to a + frames - 1, so the end frames are exactly
    the independent latents of those seeds.
    images: the training images IHDM's prior draws around; delta: its prior noise.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    seeds = [int(s) for s in seeds]
    if mode == "interpolate":
        return _interpolated_seeds(process, seeds, images, delta, frames)
    own = [_seed_prior(process, s, images, delta) for s in seeds]
    gens, x_K = [g for g, _ in own], torch.cat([p for _, p in own])
    shape, dev = x_K.shape[1:], process.device
    if mode == "independent":
        return Latents(x_K.to(dev), SeedNoise(gens, shape, dev))
    # the shared seed's generator is made afresh per batch, so every batch sees the same draws
    shared_gen, shared_prior = _seed_prior(process, shared_seed, images, delta)
    if mode == "shared_noise":
        return Latents(x_K.to(dev), SeedNoise([shared_gen], shape, dev, shared_batch=len(seeds)))
    x_K = shared_prior.expand(len(seeds), *shape).contiguous()
    return Latents(x_K.to(dev), SeedNoise(gens, shape, dev))


# --- interpolation and the colour grid -----------------------------------------------------
@dataclass
class Interpolation:
    """Paths between endpoint pairs, flattened pair-major into one batch of pairs * frames.

    latents: x_K (pairs * frames, C, H, W) and a noise table (K, pairs * frames, C, H, W);
    prior_ends (pairs, 2, C, H, W) and noise_ends (K, pairs, 2, C, H, W): the endpoints."""

    latents: Latents
    prior_ends: Tensor
    noise_ends: Tensor
    frames: int


def interpolation(process, n_pairs: int, n_frames: int, *, images=None,
                  generator: torch.Generator | None = None) -> Interpolation:
    """Interpolation paths between ``n_pairs`` pairs of latents drawn from one ``generator``:
    first all 2 * n_pairs prior states, then all K step noises. IHDM's prior states (blurred
    images) are interpolated linearly, every Gaussian draw spherically (App. D.2). Built on
    the CPU; move ``latents`` to the sampler's device."""
    x_end = process.prior_sample(2 * n_pairs, images, generator=generator).cpu()
    shape = tuple(x_end.shape[1:])
    x_end = x_end.view(n_pairs, 2, *shape)
    z_end = draw_noise(process.K, (2 * n_pairs, *shape), generator=generator)
    z_end = z_end.view(process.K, n_pairs, 2, *shape)
    prior_path = lerp_path if process.data_prior else slerp_path
    x_K = prior_path(x_end[:, 0], x_end[:, 1], n_frames).flatten(-5, -4)
    z = slerp_path(z_end[:, :, 0], z_end[:, :, 1], n_frames).flatten(-5, -4)
    return Interpolation(Latents(x_K, NoiseTable(z)), x_end, z_end, n_frames)


def shared_noise_grid(centres: Tensor, K: int, n_noises: int, delta: float, *,
                      generator: torch.Generator | None = None) -> Latents:
    """The latents of a P x N grid, flattened row-major to P N samples.

    Column n gets one prior noise nu_n and step noises z_{n,1..K}, the same in every row:
    x_K[p, n] = centres[p] + delta nu_n, and z_{n,k} at level k. The noises are drawn on the
    generator's device (CPU by default), nu first, and moved to the centres' device, so a
    seeded grid is the same on CPU and GPU.
    """
    if not isinstance(centres, Tensor) or centres.dim() != 4:
        raise ValueError("centres must be a (P, C, H, W) tensor")
    P, shape = centres.shape[0], tuple(centres.shape[1:])
    nu = randn((n_noises, *shape), generator, centres.device)
    z = randn((K, n_noises, *shape), generator, centres.device)
    x_K = (centres[:, None] + delta * nu[None]).reshape(P * n_noises, *shape)
    noise = z[:, None].expand(K, P, n_noises, *shape).reshape(K, P * n_noises, *shape)
    return Latents(x_K, NoiseTable(noise))
