"""ihdm_core: Generative Modelling With Inverse Heat Dissipation (Rissanen et al., ICLR 2023).

A thin package: the heat operator and schedules (``heat``), the DDPM and Blurring Diffusion
baselines (``diffusion``), the U-Net (``unet``), the loss (``losses``), samplers (``samplers``),
the KDE prior (``prior``), configs and presets (``config``), data (``data``) and the training
loop (``train``).
"""

from .config import Config, get_preset, preset_names
from .diffusion import DDPM, BlurringDiffusion
from .heat import HeatDissipation, blur_sigmas, dct2, heat_forward, heat_times, idct2
from .losses import denoising_loss
from .prior import kde_prior_sample
from .processes import build_model, build_process
from .samplers import ddim_sample, draw_noise, sample, slerp
from .unet import UNet

__version__ = "0.1.0"

__all__ = ["Config", "get_preset", "preset_names", "HeatDissipation", "blur_sigmas", "dct2", "idct2",
           "heat_forward", "heat_times", "DDPM", "BlurringDiffusion", "denoising_loss", "kde_prior_sample",
           "build_model", "build_process", "ddim_sample", "draw_noise", "sample", "slerp", "UNet"]
