"""Run profiles of the book: what every chapter trains, samples and measures.

A profile names the models a chapter uses (as configs, so every run is cached by identity and
shared between chapters) and the sizes of its experiments. Chapters receive the profile's
name as a papermill parameter and read everything else from here, so the notebooks stay the
same code at every scale:

* ``smoke``  seconds per chapter; exercises every code path and learns nothing (CI).
* ``quick``  the default main job: the 5,000 offline MNIST digits on 2 CPU cores with the
  reference models, evaluators and expensive scores shipped in ``models/`` (measured 9.0 min on a
  fresh clone, setup included; docs/throughput.md); honest small-scale results, captioned as
  such.
* ``gpu``    about one hour on one H100-class GPU (UNMEASURED): the real 60,000 MNIST digits
  and base-64 U-Nets trained 30k steps; results still small-scale next to the paper's.
* ``paper``  Tables 1-2 of the paper on a GPU with the real data sets. Trained checkpoints can
  be dropped in: put them where ``ihdm_core.training.paths.run_dir_for(cfg)`` points and they
  are used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..training.config import Config
from ..training.presets import get_preset, sigma0

if TYPE_CHECKING:
    import torch

__all__ = ["Profile", "PROFILES", "get_profile", "profile_names", "start"]


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    # Presets of the main models; ``Profile.config`` builds them.
    ihdm: str
    ddpm: str
    blurring: str
    # The colour-disentanglement model (Fig. 7a) needs sigma_B_max = the whole image.
    colour: str
    colour_overrides: dict = field(default_factory=dict)
    # The IHDM model trained longest, for the chapters that show IHDM alone (Fig. 14, the scores of
    # chapter 3, the nearest neighbours of chapter 8). None: the main model. Comparisons across
    # processes keep the main trio, which share one budget.
    ihdm_long: str | None = None
    # The colour model trained longest, for chapter 6's Fig. 7a and its measures. None: ``colour``.
    colour_long: str | None = None
    # Training steps of the sigma = 0 failure model (Fig. 13); None keeps the main budget.
    sigma0_steps: int | None = None
    # Chapter 9: (sampling steps T, samples n) at which the continuous-time diffusions are scored
    # (discrete-time ones are sampled at their own K), the T of its sample grids, and the samples
    # per row of its table of sampling options.
    diffusion_steps: tuple = ((50, 200), (100, 200), (250, 500), (1000, 50))
    grid_steps: int = 250
    n_options: int = 200
    # The prediction ablation of chapter 9 (presets; shown when trained or shipped).
    prediction_ablation: tuple = ()
    # Experiment sizes.
    n_grid: int = 64  # samples in a figure grid
    n_eval: int = 500  # samples for FID and recognisability
    fid_ref_n: int | None = None  # reference images for FID (None: the whole training split)
    n_nll: int = 200  # held-out images for the ELBO
    deltas: tuple = (0.0, 0.005, 0.01, 0.0125, 0.015, 0.02)
    n_delta_eval: int = 200  # samples per delta for recognisability / FID
    n_interp: int = 9  # interpolation frames
    n_neighbours: int = 8  # samples whose nearest training images are shown
    n_colour_priors: int = 8  # Fig. 7a grid: rows, one prior state u_K each
    n_colour_noises: int = 8  # Fig. 7a grid: columns, one set of sampling noises each
    sigma_B_max_grid: tuple = (1.0, 2.0, 4.0, 8.0, 14.0, 20.0, 28.0)
    psd_images: int = 6  # natural photographs for the power spectra
    seed: int = 0
    small_scale: bool = True  # captions say the results are small-scale

    @property
    def device(self) -> str:
        """$IHDM_DEVICE if set (e.g. "cuda", "cuda:1", "cpu"), else CUDA when present, else CPU."""
        import os

        import torch

        forced = os.environ.get("IHDM_DEVICE", "").strip()
        if forced:
            try:
                dev = torch.device(forced)
            except RuntimeError:
                raise ValueError(
                    f"IHDM_DEVICE={forced!r} is not a torch device; use e.g. cpu, cuda or cuda:0"
                ) from None
            if dev.type == "cuda" and not torch.cuda.is_available():
                raise RuntimeError(f"IHDM_DEVICE={forced!r} asks for CUDA, but torch sees no GPU")
            return str(dev)
        return "cuda" if torch.cuda.is_available() else "cpu"

    def config(self, role: str, **overrides) -> Config:
        """The config of one of the profile's models: role is 'ihdm', 'ddpm', 'blurring',
        'colour', 'sigma0' (the main IHDM model trained with sigma = 0), 'long' (the IHDM model
        trained longest; the main one where the profile has none) or 'colour_long' (likewise for
        the colour model)."""
        if role == "long":
            cfg = get_preset(self.ihdm_long or self.ihdm)
        elif role == "colour_long" and self.colour_long:
            cfg = get_preset(self.colour_long)
        elif role == "sigma0":
            cfg = sigma0(get_preset(self.ihdm), self.sigma0_steps)
        elif role in ("colour", "colour_long"):
            cfg = get_preset(self.colour, **self.colour_overrides)
            if self.colour_overrides:
                cfg = cfg.replace(name=f"{cfg.name}-colour")
        elif role in ("ihdm", "ddpm", "blurring"):
            cfg = get_preset(getattr(self, role))
        else:
            raise ValueError(
                f"unknown model role {role!r}; use ihdm, ddpm, blurring, colour, sigma0, long or "
                "colour_long"
            )
        return cfg.replace(**overrides) if overrides else cfg

    def generator(self, offset: int = 0, device=None) -> "torch.Generator":
        """A ``torch.Generator`` (on the CPU unless ``device``) seeded with ``seed + offset``:
        one stream per use in a chapter, each with its own offset."""
        import torch

        return torch.Generator(device=device or "cpu").manual_seed(self.seed + int(offset))

    def savefig(self, fig, name: str, caption: str, **kw) -> dict:
        """:func:`ihdm_core.book.figures.savefig` under this profile, the caption ending with
        :attr:`caption`; ``kw``: runs, seed, n and any provenance."""
        from .figures import savefig

        return savefig(fig, name, caption=f"{caption} {self.caption}", profile=self.name, **kw)

    def save_table(self, rows: list[dict], name: str, caption: str, **kw) -> str:
        """:func:`ihdm_core.book.figures.save_table` under this profile; returns the Markdown."""
        from .figures import save_table

        return save_table(rows, name, caption=f"{caption} {self.caption}", profile=self.name, **kw)

    def save_animation(self, frames, name: str, caption: str, **kw):
        """:func:`ihdm_core.book.animate.save_animation` under this profile; returns the path."""
        from .animate import save_animation

        return save_animation(
            frames, name, caption=f"{caption} {self.caption}", profile=self.name, **kw
        )

    @property
    def caption(self) -> str:
        """A sentence every figure of this profile carries."""
        if self.small_scale:
            return (
                f"Profile '{self.name}': small-scale run ({self.description}); "
                "not comparable to the paper's numbers."
            )
        return f"Profile '{self.name}': {self.description}."


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="tiny models trained for seconds, for CI; the figures show the "
        "code runs, not results",
        ihdm="mnist-smoke",
        ddpm="mnist-ddpm-smoke-ct",
        blurring="mnist-blurring-smoke-ct",
        colour="mnist-colour-smoke",
        sigma0_steps=None,
        n_colour_priors=3,
        n_colour_noises=4,
        diffusion_steps=((5, 16), (10, 16)),
        grid_steps=10,
        n_options=8,
        n_grid=16,
        n_eval=32,
        fid_ref_n=64,
        n_nll=16,
        deltas=(0.0, 0.01, 0.0125, 0.02),
        n_delta_eval=16,
        n_interp=5,
        n_neighbours=3,
        sigma_B_max_grid=(1.0, 4.0, 20.0),
        psd_images=2,
    ),
    "quick": Profile(
        name="quick",
        description="5,000 offline MNIST digits; reference U-Nets shipped in "
        "models/, trained on CPU",
        ihdm="mnist-ref",
        ihdm_long="mnist-long",
        ddpm="mnist-ddpm-ref",
        blurring="mnist-blurring-ref",
        # The colour model: the reference network on the coloured digits. The paper's colour model
        # blurs to sigma_B_max = the image size; 20 on 28 px leaves the mean colour plus the two
        # lowest cosine modes at 8% of their amplitude (exp(-(pi/28)^2 * 200)), mode (1, 1) at 0.7%
        # and all others under 0.01%: a near-flat prior (chapter 6 measures how flat).
        # FID is the largest cost after sampling (InceptionV3 at 299 x 299 runs at ~5 images/s on
        # 2 cores): the reference statistics of all 4,500 training digits take ~17 min once,
        # 1,000 ~4.
        colour="mnist-colour-ref",
        colour_long="mnist-colour-long",
        sigma0_steps=1000,
        prediction_ablation=(
            "mnist-blurring-eps-ablation",
            "mnist-blurring-v-ablation",
            "mnist-blurring-x-ablation",
        ),
        n_grid=64,
        n_eval=500,
        fid_ref_n=1000,
        n_nll=200,
        deltas=(0.0, 0.005, 0.01, 0.0125, 0.015, 0.02),
        n_delta_eval=120,
        n_interp=9,
        n_neighbours=8,
        psd_images=6,
    ),
    "paper": Profile(
        name="paper",
        description="the paper's Table 1-2 settings on a GPU with the real data sets",
        ihdm="mnist",
        ddpm="mnist-ddpm",
        blurring="mnist-blurring",
        colour="ffhq128",
        sigma0_steps=None,
        n_grid=100,
        n_eval=50_000,
        fid_ref_n=None,
        n_nll=10_000,
        deltas=(0.0, 0.005, 0.01, 0.0115, 0.0125, 0.01325, 0.0135, 0.015, 0.02),
        n_delta_eval=10_000,
        n_interp=11,
        n_neighbours=16,
        sigma_B_max_grid=(1.0, 2.0, 4.0, 8.0, 16.0, 24.0, 32.0),
        psd_images=12,
        small_scale=False,
    ),
    # One H100-class GPU, about an hour (UNMEASURED until benchmarks/gpu_check.py and the profile
    # have run on one): the real 60,000 MNIST digits, base-64 U-Nets trained 30k steps (colour model
    # 10k, sigma = 0 model 5k), FID on 5,000 samples against the whole training split.
    "gpu": Profile(
        name="gpu",
        description="real MNIST (60,000 digits), base-64 U-Nets, 30k steps; one H100-class GPU",
        ihdm="mnist-gpu",
        ddpm="mnist-ddpm-gpu",
        blurring="mnist-blurring-gpu",
        colour="mnist-colour-gpu",
        sigma0_steps=5000,
        diffusion_steps=((50, 2000), (100, 2000), (250, 2000), (1000, 500)),
        grid_steps=250,
        n_options=1000,
        n_grid=100,
        n_eval=5000,
        fid_ref_n=None,
        n_nll=2000,
        deltas=(0.0, 0.005, 0.01, 0.0115, 0.0125, 0.0135, 0.015, 0.02),
        n_delta_eval=1000,
        n_interp=11,
        n_neighbours=16,
        psd_images=12,
        small_scale=True,
    ),
}


def profile_names() -> list[str]:
    return list(PROFILES)


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
    return PROFILES[name]


def start(profile: str) -> Profile:
    """The set-up every chapter runs first: its Profile, seeded RNGs and one figure style."""
    import matplotlib as mpl
    import torch

    prof = get_profile(profile)
    torch.manual_seed(prof.seed)
    mpl.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "font.size": 9,
            "axes.titlesize": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "image.cmap": "gray",
            "figure.constrained_layout.use": True,
        }
    )
    return prof
