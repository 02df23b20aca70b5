"""ihdm_core: Generative Modelling With Inverse Heat Dissipation (Rissanen et al., ICLR 2023).

Four layers, each importing only the ones below it (tests/test_layers.py checks this):

* ``model``       the paper: the heat operator (``heat``), the process interface (``process``), DDPM
                  and Blurring Diffusion (``diffusion``), the U-Net, loss, samplers (``sampling``),
                  KDE prior, likelihood (ELBO) and power spectra.
* ``training``    configs and presets, data, the training loop, checkpoints, shipped models, and
                  ``generate`` (samples from a trained run: seeds, batches, files).
* ``evaluation``  FID (``inception``, ``fid``), digit recognisability (``digits``), the score cache
                  (``scores``) and the colour/shape measures (``disentangle``).
* ``book``        the chapters' profiles, figures, animations and the papermill pipeline.

``python -m ihdm_core <command>`` (``cli``) runs train, sample, evaluate, book and models.
"""

from .training.config import Config, get_preset, preset_names
from .model.diffusion import DDPM, BlurringDiffusion
from .model.heat import HeatDissipation, blur_sigmas, dct2, heat_forward, heat_times, idct2
from .model.losses import denoising_loss
from .model.prior import kde_prior_sample
from .training.build import build_model, build_process
from .model.latents import draw_noise, slerp
from .model.sampling import ddim_sample, sample
from .model.unet import UNet

__version__ = "0.1.0"

__all__ = ["Config", "get_preset", "preset_names", "HeatDissipation", "blur_sigmas", "dct2", "idct2",
           "heat_forward", "heat_times", "DDPM", "BlurringDiffusion", "denoising_loss", "kde_prior_sample",
           "build_model", "build_process", "ddim_sample", "draw_noise", "sample", "slerp", "UNet"]
