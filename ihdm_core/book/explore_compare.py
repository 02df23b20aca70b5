"""The explorers of chapter 11 that put IHDM beside DDPM, without widgets:

* :class:`InterpolationExplorer`  the interpolation between two seeds for IHDM, DDPM ancestral
                                  and DDIM (as chapter 5 builds the paths);
* :class:`GradientExplorer`       the input-gradient map of one output pixel at one level, for IHDM
                                  and DDPM (the probe of chapter 7).

They share the models, caches and seeding of :mod:`~ihdm_core.book.explore`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..evaluation import probes
from ..model.latents import NoiseTable, draw_noise, lerp_path, slerp_path
from ..model.prior import kde_prior_sample
from ..model.sampling import ddim_sample, sample
from .explore import LRU, GenerationExplorer, Models, as_image, seed_generator

__all__ = ["InterpolationExplorer", "GradientExplorer"]


# --- interpolation --------------------------------------------------------------------------------
class InterpolationExplorer:
    """Interpolation between the latents of two seeds, as chapter 5 builds it: IHDM linear in
    u_K and spherical in its K step noises; DDPM ancestral spherical in x_T and its T step noises;
    DDIM (eta = 0) spherical in x_T. The DDPM is sampled on ``ddpm_steps`` steps (continuous
    time only; its trained K when None). All frames of a pair are sampled in one batch."""

    def __init__(self, models: Models, n_frames: int = 9, ddpm_steps: int | None = 50):
        if n_frames < 2:
            raise ValueError(f"an interpolation needs at least 2 frames, got {n_frames}")
        self.models, self.n_frames, self.ddpm_steps = models, int(n_frames), ddpm_steps
        self._cache = LRU(32)

    def latents(self, seed: int) -> dict:
        """The endpoint latents of one seed: IHDM (u_K, nu), then DDPM (x_T, eps), one generator."""
        ih, dd = self.models.run("ihdm"), self.models.run("ddpm", self.ddpm_steps)
        g = seed_generator(seed)
        u_K = kde_prior_sample(ih.process, self.models.images("ihdm"), 1, generator=g)[0].cpu()
        nu = draw_noise(ih.process.K, u_K.shape, generator=g)
        x_T = dd.process.prior_sample(1, generator=g).cpu()
        eps = draw_noise(dd.process.K, x_T.shape, generator=g)
        return {"u_K": u_K, "nu": nu, "x_T": x_T, "eps": eps}

    def paths(self, seed_a: int, seed_b: int) -> dict:
        key = (int(seed_a), int(seed_b))

        def make():
            ih, dd = self.models.run("ihdm"), self.models.run("ddpm", self.ddpm_steps)
            a, b, n, dev = (
                self.latents(seed_a),
                self.latents(seed_b),
                self.n_frames,
                self.models.device,
            )
            u_K = lerp_path(a["u_K"], b["u_K"], n).flatten(-5, -4)
            nu = slerp_path(a["nu"], b["nu"], n).flatten(-5, -4)
            x_T = slerp_path(a["x_T"], b["x_T"], n).flatten(-5, -4)
            eps = slerp_path(a["eps"], b["eps"], n).flatten(-5, -4)
            return {
                "IHDM": sample(ih.net, ih.process, u_K.to(dev), noise=NoiseTable(nu.to(dev))),
                "DDPM ancestral": sample(
                    dd.net, dd.process, x_T.to(dev), noise=NoiseTable(eps.to(dev))
                ),
                "DDIM": ddim_sample(dd.net, dd.process, x_T.to(dev), eta=0.0),
            }

        out = self._cache.get_or(key, make)
        return {name: x.clamp(0, 1).cpu() for name, x in out.items()}

    def view(self, seed_a: int, seed_b: int, frame: int) -> dict:
        if int(frame) != frame or not 0 <= frame < self.n_frames:
            raise ValueError(f"frame must be an integer in 0..{self.n_frames - 1}, got {frame!r}")
        rows = self.paths(seed_a, seed_b)
        frame = int(frame)
        return {
            "seeds": (int(seed_a), int(seed_b)),
            "frame": frame,
            "alpha": frame / (self.n_frames - 1),
            "n_frames": self.n_frames,
            "images": {name: as_image(x[frame]) for name, x in rows.items()},
            "rows": {name: [as_image(im) for im in x] for name, x in rows.items()},
        }


# --- input gradients ------------------------------------------------------------------------------
class GradientExplorer:
    """The input gradient d estimate(u_k)[pixel] / d u_k of IHDM and DDPM at level k, on the
    states one seed's trajectory passes (:mod:`ihdm_core.evaluation.probes`, chapter 7). The
    DDPM is sampled on IHDM's K steps (continuous time), so level k is the same t = k / K for
    both; a discrete-time DDPM keeps its own K and is probed at the level round(k K_d / K)."""

    ROLES = ("ihdm", "ddpm")

    def __init__(self, models: Models, generation: GenerationExplorer | None = None):
        self.models = models
        self.generation = generation or GenerationExplorer(models)
        self.K = models.run("ihdm").process.K
        self._cache = LRU(256)

    def _run(self, role: str):
        ddpm = self.models.run("ddpm")
        if role == "ddpm" and getattr(ddpm.process, "continuous", False):
            return self.models.run("ddpm", self.K)
        return self.models.run(role)

    def state(self, role: str, seed: int, k: int) -> tuple[Tensor, int]:
        """The trajectory's state at IHDM level k (in [0, 1] data units) and the model's level."""
        run = self._run(role)
        steps = run.process.K if role == "ddpm" else None
        tr = self.generation.trajectory(role, seed, steps=steps)
        kk = int(round(k * run.process.K / self.K))
        return tr["frames"][tr["levels"].index(kk)], kk

    def gradient(self, role: str, seed: int, pixel: tuple[int, int], k: int) -> Tensor:
        key = (role, int(seed), tuple(int(p) for p in pixel), int(k))

        def make():
            run = self._run(role)
            u, kk = self.state(role, seed, k)
            return probes.jacobian_rows(
                run.process, run.net, u[None], torch.tensor([kk]), torch.tensor([pixel])
            )[0]

        return self._cache.get_or(key, make)

    def view(self, seed: int, pixel: tuple[int, int], k: int) -> dict:
        if int(k) != k or not 1 <= k <= self.K:
            raise ValueError(f"the level k must be an integer in 1..{self.K}, got {k!r}")
        C, H, W = (
            self.models.run("ihdm").cfg.data.channels,
            *self.models.run("ihdm").process.image_size,
        )
        i, j = (int(p) for p in pixel)
        if not (0 <= i < H and 0 <= j < W):
            raise ValueError(
                f"the pixel (row, column) must lie in the {H} x {W} image, got {pixel}"
            )
        out = {
            "seed": int(seed),
            "pixel": (i, j),
            "k": int(k),
            "K": self.K,
            "states": {},
            "gradients": {},
            "levels": {},
        }
        for role in self.ROLES:
            name = "IHDM" if role == "ihdm" else "DDPM"
            u, kk = self.state(role, seed, k)
            g = self.gradient(role, seed, (i, j), k)
            out["states"][name] = as_image(u)
            out["gradients"][name] = g.sum(0).numpy()  # over input channels
            out["levels"][name] = kk
        return out
