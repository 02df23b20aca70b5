"""ihdm_core: Generative Modelling With Inverse Heat Dissipation (Rissanen et al., ICLR 2023).

Four layers, each importing only the ones below it (tests/test_layers.py checks this, and
tests/test_cycles.py that no modules import each other in a circle):

* ``model``       the paper: the heat operator (``heat``), the process interface (``process``), DDPM
                  and Blurring Diffusion (``diffusion``), the U-Net, loss, samplers (``sampling``),
                  images, KDE prior, likelihood (ELBO) and power spectra.
* ``training``    the config schema (``config``, its value ``checks``) and the named ``presets``;
                  ``paths``, ``data``, ``build`` (process and network of a config); the training
                  loop (``train``) over the data order (``batches``) and the optimiser ``step``,
                  with its ``log``, ``checkpoints`` and ``hardware`` record; trained ``runs``
                  (loaded from runs/ or the ``shipped`` models/); ``generate`` (samples by seed).
* ``evaluation``  FID (``inception``, ``fid``), digit recognisability (``digits``), the score cache
                  (``scores``) and the colour/shape measures (``disentangle``).
* ``book``        the chapters' profiles, figures, plots, animations and the papermill pipeline.

``python -m ihdm_core <command>`` (``cli``) runs train, sample, evaluate, book and models.
The names below are the package's short public API.
"""

from .model.diffusion import DDPM, BlurringDiffusion
from .model.heat import HeatDissipation, blur_sigmas, dct2, heat_forward, heat_times, idct2
from .model.images import to_float
from .model.losses import denoising_loss
from .model.prior import kde_prior_sample
from .model.latents import draw_noise, slerp
from .model.sampling import ddim_sample, sample
from .model.unet import UNet
from .training.build import build_model, build_process
from .training.config import Config
from .training.log import training_seconds
from .training.presets import get_preset, preset_names
from .training.runs import is_available, load_run
from .training.train import ensure_trained, train

__version__ = "0.1.0"

__all__ = ["Config", "get_preset", "preset_names", "HeatDissipation", "blur_sigmas", "dct2",
           "idct2", "heat_forward", "heat_times", "DDPM", "BlurringDiffusion", "denoising_loss",
           "kde_prior_sample", "build_model", "build_process", "ddim_sample", "draw_noise",
           "sample",
           "slerp", "UNet", "to_float", "train", "ensure_trained", "load_run", "is_available",
           "training_seconds"]
