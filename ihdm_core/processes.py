"""Builds the forward process and the network a config names.

Every process implements the same small interface, used by the one training loop
(:func:`ihdm_core.losses.denoising_loss`) and the one sampler (:func:`ihdm_core.samplers.sample`):

* ``K``                                   number of reverse steps
* ``sample_levels(n, generator)``         training levels, uniform on 1..K
* ``training_pair(x0, k, generator)``     (network input at level k, regression target)
* ``predict(net, x, k)``                  the network's prediction of that target
* ``reverse_step(net, x, k, noise, delta)`` one ancestral step from level k to k-1
* ``prior_sample(n, images, generator=, delta=)`` initial states x_K (IHDM: KDE on ``images``)
* ``to(device)``                          the same process on another device

Kinds: ``ihdm`` (:class:`~ihdm_core.heat.HeatDissipation`), ``ddpm`` and ``blurring``
(:mod:`ihdm_core.diffusion`). The U-Net is the same for all; what its output means (an
update for IHDM, eps for the diffusions) is each process's ``predict``.
"""

from __future__ import annotations

from .config import Config
from .diffusion import DDPM, BlurringDiffusion
from .heat import HeatDissipation
from .unet import UNet

__all__ = ["build_process", "build_model", "PROCESS_KINDS"]


def _ihdm(cfg: Config, device):
    p = cfg.process
    return HeatDissipation(cfg.data.image_size, K=p.K, sigma_max=p.sigma_max, sigma_min=p.sigma_min,
                           sigma=p.sigma, delta=p.delta, device=device)


def _ddpm(cfg: Config, device):
    p = cfg.process
    return DDPM(cfg.data.image_size, cfg.data.channels, K=p.K, schedule=p.beta_schedule, beta_start=p.beta_start,
                beta_end=p.beta_end, logsnr_min=p.logsnr_min, logsnr_max=p.logsnr_max, device=device, **_clip(p))


def _blurring(cfg: Config, device):
    p = cfg.process
    return BlurringDiffusion(cfg.data.image_size, cfg.data.channels, K=p.K, sigma_B_max=p.sigma_max,
                             d_min=p.d_min, logsnr_min=p.logsnr_min, logsnr_max=p.logsnr_max, device=device, **_clip(p))


def _clip(p) -> dict:
    return {} if p.clip_denoised is None else {"clip_denoised": bool(p.clip_denoised)}


PROCESS_KINDS = {"ihdm": _ihdm, "ddpm": _ddpm, "blurring": _blurring}


def build_process(cfg: Config, device=None):
    kind = cfg.process.kind
    if kind not in PROCESS_KINDS:
        raise ValueError(f"unknown process kind {kind!r}; known: {', '.join(sorted(PROCESS_KINDS))}")
    return PROCESS_KINDS[kind](cfg, device)


def build_model(cfg: Config) -> UNet:
    m = cfg.model
    return UNet(image_size=cfg.data.image_size, in_channels=cfg.data.channels, base_channels=m.base_channels,
                channel_mult=tuple(m.channel_mult), num_res_blocks=m.num_res_blocks,
                attn_resolutions=tuple(m.attn_resolutions), dropout=m.dropout, num_levels=cfg.process.K)
