"""Builds the forward process and the network a config names.

Every process it builds implements :class:`ihdm_core.model.process.Process`, the one interface
the training loop and the samplers use.

Kinds: ``ihdm`` (:class:`~ihdm_core.model.heat.HeatDissipation`), ``ddpm`` and ``blurring``
(:mod:`ihdm_core.model.diffusion`). The U-Net is the same for all; what its output means (an
update for IHDM, eps / v / x for the diffusions) is each process's ``predict``.
"""

from __future__ import annotations

import torch

from .config import Config
from ..model.diffusion import DDPM, BlurringDiffusion
from ..model.schedules import time_grid
from ..model.heat import HeatDissipation
from ..model.unet import UNet

__all__ = ["build_process", "build_model", "resolve_device", "PROCESS_KINDS"]


def _ihdm(cfg: Config, device, steps, dct_range):
    p = cfg.process
    return HeatDissipation(cfg.data.image_size, K=p.K, sigma_max=p.sigma_max, sigma_min=p.sigma_min,
                           sigma=p.sigma, delta=p.delta, device=device)


def _diffusion_options(cfg: Config, steps, dct_range, sigma_B_max: float, d_min: float) -> dict:
    """K, time grid, prediction, clip and DCT clamp shared by DDPM and Blurring Diffusion."""
    p = cfg.process
    continuous = p.time == "continuous"
    K = p.K if steps is None else int(steps)
    out = {"K": K, "continuous": continuous, "prediction": p.prediction}
    if continuous and p.grid != "uniform":
        out["times"] = time_grid(K, p.grid, sigma_B_max=sigma_B_max, image_size=cfg.data.image_size,
                                 d_min=d_min, logsnr_min=p.logsnr_min, logsnr_max=p.logsnr_max)
    if p.clip_denoised is not None:
        out["clip_denoised"] = bool(p.clip_denoised)
    if p.clamp_dct:
        if dct_range is None:
            raise ValueError("process.clamp_dct needs the training data's DCT range: build the "
                             "process with "
                             "dct_range=ihdm_core.model.diffusion.dct_range(images) "
                             "(ihdm_core.training.train.load_run does)")
        out["dct_range"] = dct_range
    return out


def _ddpm(cfg: Config, device, steps, dct_range):
    p = cfg.process
    return DDPM(cfg.data.image_size, cfg.data.channels, schedule=p.beta_schedule,
                beta_start=p.beta_start,
                beta_end=p.beta_end, logsnr_min=p.logsnr_min, logsnr_max=p.logsnr_max,
                device=device, **_diffusion_options(cfg, steps, dct_range, 0.0, 0.0))


def _blurring(cfg: Config, device, steps, dct_range):
    p = cfg.process
    return BlurringDiffusion(cfg.data.image_size, cfg.data.channels, sigma_B_max=p.sigma_max,
                             d_min=p.d_min,
                             logsnr_min=p.logsnr_min, logsnr_max=p.logsnr_max, device=device,
                             **_diffusion_options(cfg, steps, dct_range, p.sigma_max, p.d_min))


PROCESS_KINDS = {"ihdm": _ihdm, "ddpm": _ddpm, "blurring": _blurring}


def build_process(cfg: Config, device=None, *, steps: int | None = None, dct_range=None):
    """The forward process of ``cfg``. ``steps``: sample a continuous-time diffusion on this many
    steps instead of ``cfg.process.K`` (discrete processes only take their own K)."""
    kind = cfg.process.kind
    if kind not in PROCESS_KINDS:
        raise ValueError(f"unknown process kind {kind!r}; known: "
                         f"{', '.join(sorted(PROCESS_KINDS))}")
    if steps is not None and int(steps) != cfg.process.K and not (
            kind != "ihdm" and cfg.process.time == "continuous"):
        raise ValueError(f"{cfg.name} was trained on {cfg.process.K} discrete levels and samples "
                         f"with exactly "
                         f"those; only continuous-time diffusions (process.time='continuous') "
                         f"take another "
                         f"number of steps (got steps={steps})")
    return PROCESS_KINDS[kind](cfg, device, steps, dct_range)


def build_model(cfg: Config) -> UNet:
    m = cfg.model
    return UNet(image_size=cfg.data.image_size, in_channels=cfg.data.channels,
                base_channels=m.base_channels,
                channel_mult=tuple(m.channel_mult), num_res_blocks=m.num_res_blocks,
                attn_resolutions=tuple(m.attn_resolutions), dropout=m.dropout,
                num_levels=cfg.process.K)


def resolve_device(device=None) -> torch.device:
    """``device`` as a torch device; None: the GPU when there is one, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
