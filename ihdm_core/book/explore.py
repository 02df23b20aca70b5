"""The computation behind the explorers of chapter 11: one class per explorer, no widgets.

Each explorer answers ``view(...)`` with a dict of arrays (images in [0, 1] as (H, W) or
(H, W, 3) numpy arrays, numbers as floats) that a widget or a precomputed HTML slider draws with
the matching ``draw_*`` function of :mod:`~ihdm_core.book.explore_draw`. Everything expensive
is cached, keyed by what determines it, so that moving a slider over a cached trajectory costs
a lookup and a redraw:

* :class:`Models`                 trained runs and training images, loaded once per profile;
* :class:`ForwardExplorer`        u_k of one image, its radial power spectrum against the
                                  1/f^alpha line of u_0, and the share of energy left;
* :class:`GenerationExplorer`     the trajectory of one seed through a shipped model (IHDM at
                                  any delta; DDPM / Blurring Diffusion on T steps, ancestral
                                  or DDIM);
* :class:`ColourExplorer`         the colour model's sample from a fixed noise seed and a chosen
                                  prior colour or prior image, with its colour error and its shape
                                  correlation to the same noise under a reference prior;

The explorers that put IHDM beside DDPM (interpolation, input gradients) are in
:mod:`~ihdm_core.book.explore_compare`, the drawing of every view and the kernel-free sliders in
:mod:`~ihdm_core.book.explore_draw`.

Seeds are turned into latents by a CPU ``torch.Generator`` in a fixed order, so a view can be
reproduced by calling the package functions directly (tests/test_explore.py does).
"""

from __future__ import annotations

import io
from collections import OrderedDict

import numpy as np
import torch
from torch import Tensor

from ..evaluation import disentangle
from ..model.heat import HeatDissipation
from ..model.prior import kde_prior_sample
from ..model.latents import NoiseTable, draw_noise, shared_noise_grid
from ..model.sampling import Recorder, ddim_sample, sample
from ..model.spectra import dct_power, fit_power_law, radial_average
from ..training.data import load_dataset

__all__ = [
    "Models",
    "LRU",
    "seed_generator",
    "as_image",
    "ForwardExplorer",
    "GenerationExplorer",
    "ColourExplorer",
    "MODEL_ROLES",
    "energy_left",
    "hex_colour",
]

# The shipped models a reader can pick, by the profile role that names each.
MODEL_ROLES = {
    "IHDM, trained longest": "long",
    "IHDM, equal budget with the diffusions": "ihdm",
    "DDPM": "ddpm",
    "Blurring Diffusion": "blurring",
    "IHDM colour, trained longest": "colour_long",
}


class LRU(OrderedDict):
    """A dict that keeps its ``size`` most recently used entries: trajectories are small, but a
    reader who tries hundreds of seeds should not fill the memory."""

    def __init__(self, size: int = 64):
        super().__init__()
        self.size = int(size)

    def get_or(self, key, make):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = make()
        while len(self) > self.size:
            self.popitem(last=False)
        return value


def seed_generator(seed) -> torch.Generator:
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"a seed is an integer >= 0, got {seed!r}")
    return torch.Generator().manual_seed(int(seed))


def as_image(x: Tensor) -> np.ndarray:
    """(C, H, W) tensor -> (H, W) or (H, W, 3) float array in [0, 1] for imshow."""
    x = x.detach().float().cpu().clamp(0, 1)
    return x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy()


def _to_data(process, x: Tensor, k: int) -> Tensor:
    """A sampler state at level k in [0, 1] data units: the diffusions run on z = 2x - 1 at
    levels k >= 1 and return data at level 0 (ihdm_core.model.diffusion's convention)."""
    if k > 0 and hasattr(process, "to_data"):
        return process.to_data(x)
    return x


class Models:
    """The profile's trained runs (shipped ones in the quick profile) and their training images,
    each loaded once. ``run("ihdm")``, ``run("ddpm", steps=50)`` (a continuous-time diffusion
    sampled on 50 steps), ``images("colour_long")``."""

    def __init__(self, profile: str = "quick", device=None):
        from .profiles import get_profile

        self.profile = get_profile(profile)
        self.device = device or self.profile.device
        self._runs: dict = {}
        self._images: dict = {}

    def run(self, role: str, steps: int | None = None):
        from ..training.train import ensure_trained

        if role not in MODEL_ROLES.values():
            raise ValueError(
                f"unknown model role {role!r}; use one of {sorted(MODEL_ROLES.values())}"
            )
        if role not in self._runs:
            self._runs[role] = ensure_trained(
                self.profile.config(role), device=self.device, progress=False
            )
        base = self._runs[role]
        if steps is None or int(steps) == base.process.K:
            return base
        key = (role, int(steps))
        if key not in self._runs:
            self._runs[key] = base.sampled_with(steps=int(steps))  # one-line error if discrete
        return self._runs[key]

    def images(self, role: str) -> Tensor:
        data = self.run(role).cfg.data
        if data.dataset not in self._images:
            self._images[data.dataset] = load_dataset(data)
        return self._images[data.dataset]


# --- forward process ------------------------------------------------------------------------------
def energy_left(u0: Tensor, uk: Tensor) -> float:
    """The share of u_0's energy around its mean that u_k still holds: sum (u_k - mean)^2 over
    sum (u_0 - mean)^2. The heat equation keeps the mean (the DC coefficient), so this is the
    share of the non-DC DCT energy left (Parseval)."""
    a = (u0.double() - u0.double().mean(dim=(-2, -1), keepdim=True)).pow(2).sum()
    b = (uk.double() - uk.double().mean(dim=(-2, -1), keepdim=True)).pow(2).sum()
    if float(a) == 0:
        raise ValueError("a constant image has no energy to dissipate; choose another")
    return float(b / a)


class ForwardExplorer:
    """u_k = F(t_k) u_0 for an image of any size, on the level schedule of an IHDM config
    (K levels, sigma_B from sigma_min to sigma_max, in pixels)."""

    def __init__(self, K: int = 50, sigma_max: float = 20.0, sigma_min: float = 0.5):
        self.K, self.sigma_max, self.sigma_min = int(K), float(sigma_max), float(sigma_min)
        self.images: dict[str, Tensor] = {}
        self._processes: dict = {}
        self._cache = LRU(16)

    def add_image(self, name: str, image) -> str:
        """Register an image: a (C, H, W) / (H, W) tensor or array in [0, 1] (uint8 is scaled)."""
        x = torch.as_tensor(np.asarray(image)) if not isinstance(image, Tensor) else image
        if x.dtype == torch.uint8:
            x = x.float() / 255
        x = x.float()
        if x.dim() == 2:
            x = x[None]
        if x.dim() != 3 or x.shape[0] not in (1, 3) or min(x.shape[-2:]) < 4:
            raise ValueError(
                f"an image is (H, W) or (C, H, W) with C = 1 or 3 and sides >= 4, "
                f"got shape {tuple(x.shape)}"
            )
        self.images[name] = x.clamp(0, 1)
        self._cache.pop(name, None)
        return name

    def add_file(self, name: str, data: bytes, size: int = 64) -> str:
        """Register an uploaded image file (any format Pillow reads), as luminance, centre
        square, resized to ``size`` x ``size`` (as the book's photographs are)."""
        from PIL import Image, UnidentifiedImageError

        from .photos import photograph

        try:
            with Image.open(io.BytesIO(data)) as im:
                arr = np.asarray(im.convert("RGB"))
        except UnidentifiedImageError:
            raise ValueError(f"{name!r} is not an image file Pillow can read") from None
        return self.add_image(name, photograph(arr, size))

    def process(self, size: tuple[int, int]) -> HeatDissipation:
        if size not in self._processes:
            self._processes[size] = HeatDissipation(size, self.K, self.sigma_max, self.sigma_min)
        return self._processes[size]

    def _prepared(self, name: str) -> dict:
        if name not in self.images:
            raise KeyError(f"unknown image {name!r}; known: {', '.join(self.images)}")

        def make():
            u0 = self.images[name]
            proc = self.process(tuple(u0.shape[-2:]))
            traj = proc.trajectory(u0)  # (K + 1, C, H, W), level 0 first
            freqs, psd0 = radial_average(dct_power(u0))
            return {
                "trajectory": traj,
                "freqs": freqs,
                "psd0": psd0,
                "fit": fit_power_law(freqs, psd0),
                "sigma_B": proc.sigma_B.cpu().numpy(),
            }

        return self._cache.get_or(name, make)

    def view(self, name: str, k: int) -> dict:
        if int(k) != k or not 0 <= k <= self.K:
            raise ValueError(f"the level k must be an integer in 0..{self.K}, got {k!r}")
        k = int(k)
        prep = self._prepared(name)
        uk = prep["trajectory"][k]
        freqs, psd = radial_average(dct_power(uk))
        fit = prep["fit"]
        return {
            "name": name,
            "k": k,
            "sigma_B": float(prep["sigma_B"][k]) if k else 0.0,
            "u0": as_image(self.images[name]),
            "uk": as_image(uk),
            "freqs": freqs,
            "psd": psd,
            "psd0": prep["psd0"],
            "alpha": fit["alpha"],
            "line": fit["A"] * np.where(freqs > 0, freqs, np.nan) ** -fit["alpha"],
            "energy_left": energy_left(self.images[name], uk),
        }


# --- generation -----------------------------------------------------------------------------------
class GenerationExplorer:
    """The trajectory of one seed through one of the profile's models.

    IHDM: u_K = blur(x_i) + delta nu with x_i a training image drawn by the seed (the KDE prior),
    then the K step noises, all from one CPU generator seeded with ``seed``, sampled at ``delta``
    (the model's delta when None). Diffusions: x_T ~ N(0, I), then the T step noises, from the
    same kind of generator; ``steps`` T (continuous-time models only) and ``sampler``
    "ancestral" or "ddim" (eta = 0: deterministic given x_T)."""

    def __init__(self, models: Models):
        self.models = models
        self._cache = LRU(64)

    def trajectory(
        self,
        role: str,
        seed: int,
        *,
        delta: float | None = None,
        steps: int | None = None,
        sampler: str = "ancestral",
    ) -> dict:
        if sampler not in ("ancestral", "ddim"):
            raise ValueError(f"sampler is 'ancestral' or 'ddim', got {sampler!r}")
        run = self.models.run(role, steps)
        is_ihdm = run.process.name == "ihdm"
        if is_ihdm and sampler != "ancestral":
            raise ValueError("IHDM has one sampler (Alg. 2); DDIM is for the Gaussian diffusions")
        if not is_ihdm and delta is not None:
            raise ValueError(
                "delta is IHDM's sampling noise; the diffusions take steps and sampler"
            )
        if delta is not None and not 0 <= delta < 1:
            raise ValueError(f"delta must lie in [0, 1), got {delta}")
        key = (role, int(seed), None if delta is None else float(delta), run.process.K, sampler)
        return self._cache.get_or(key, lambda: self._sample(run, role, seed, delta, sampler))

    def _sample(self, run, role, seed, delta, sampler) -> dict:
        g, proc, dev = seed_generator(seed), run.process, self.models.device
        rec = Recorder(clamp=False)
        if proc.name == "ihdm":
            u = kde_prior_sample(proc, self.models.images(role), 1, generator=g, delta=delta)[0]
            noise = draw_noise(proc.K, u.shape, generator=g)
            sample(
                run.net, proc, u.to(dev), delta=delta, noise=NoiseTable(noise.to(dev)), callback=rec
            )
        else:
            x = proc.prior_sample(1, generator=g)
            if sampler == "ddim":
                ddim_sample(run.net, proc, x, eta=0.0, callback=rec)
            else:
                noise = draw_noise(proc.K, x.shape, generator=g)
                sample(run.net, proc, x, noise=NoiseTable(noise.to(dev)), callback=rec)
        levels = rec.levels()
        frames = torch.stack([_to_data(proc, rec.states[k][0], k) for k in levels]).clamp(0, 1)
        return {"levels": levels, "frames": frames, "K": proc.K, "ihdm": proc.name == "ihdm"}

    def view(
        self,
        role: str,
        seed: int,
        step: int,
        *,
        delta: float | None = None,
        steps: int | None = None,
        sampler: str = "ancestral",
        n_strip: int = 8,
    ) -> dict:
        """Frame ``step`` of the trajectory (0 = the prior state, the last = the sample) and a
        strip of ``n_strip`` evenly spaced frames."""
        tr = self.trajectory(role, seed, delta=delta, steps=steps, sampler=sampler)
        n = len(tr["levels"])
        if int(step) != step or not 0 <= step < n:
            raise ValueError(f"step must be an integer in 0..{n - 1}, got {step!r}")
        pick = np.unique(np.linspace(0, n - 1, max(2, min(n_strip, n))).round().astype(int))
        return {
            "role": role,
            "seed": int(seed),
            "step": int(step),
            "level": tr["levels"][step],
            "K": tr["K"],
            "n_steps": n,
            "frame": as_image(tr["frames"][step]),
            "strip": [as_image(tr["frames"][i]) for i in pick],
            "strip_levels": [tr["levels"][i] for i in pick],
            "sample": tr["frames"][-1],
            "sampler": "Alg. 2" if tr["ihdm"] else f"{sampler}, T = {tr['K']}",
            "delta": delta
            if delta is not None or not tr["ihdm"]
            else self.models.run(role).process.delta,
        }


# --- colour and shape -----------------------------------------------------------------------------
def hex_colour(text: str) -> Tensor:
    """'#rrggbb' -> (3,) float tensor in [0, 1]."""
    s = str(text).strip().lstrip("#")
    if len(s) != 6 or any(c not in "0123456789abcdefABCDEF" for c in s):
        raise ValueError(f"a colour is '#rrggbb', got {text!r}")
    return torch.tensor([int(s[i : i + 2], 16) / 255 for i in (0, 2, 4)])


class ColourExplorer:
    """The colour model sampled from a fixed noise seed and a chosen prior state.

    The prior centre is F(t_K) x of a training image (what the KDE prior blurs), that state
    recoloured (its mean colour replaced by a picked one), or a flat image of a picked colour.
    The seed draws the prior noise nu and the K step noises exactly as one column of
    :func:`ihdm_core.model.latents.shared_noise_grid`, so a sample equals
    ``disentangle.sample_grid`` on the same centre and generator. The measures: the colour error
    |mean colour(sample) - mean colour(centre)| and the shape correlation
    (``disentangle.shape_correlation``) with the same seed's sample under the reference prior
    (training image ``reference``), which says whether the shape stays when the colour moves."""

    def __init__(self, models: Models, role: str = "colour_long", reference: int = 0):
        self.models, self.role, self.reference = models, role, int(reference)
        self._cache = LRU(128)

    @property
    def run(self):
        return self.models.run(self.role)

    def centre(self, colour: str | None = None, image: int | None = None) -> Tensor:
        """The noise-free prior state: F(t_K) x of training image ``image``; with ``colour`` too,
        that state with its mean colour replaced by ``colour`` (the faint low-frequency layout
        the model reads is kept); ``colour`` alone, a flat image of that colour."""
        run = self.run
        C, H, W = run.cfg.data.channels, run.cfg.data.image_size, run.cfg.data.image_size
        if colour is None and image is None:
            raise ValueError("give a prior colour ('#rrggbb'), a training image index, or both")
        base = None
        if image is not None:
            n = len(self.models.images(self.role))
            if int(image) != image or not 0 <= image < n:
                raise ValueError(
                    f"the prior image is a training index in 0..{n - 1}, got {image!r}"
                )
            base = disentangle.prior_centres(
                run.process, self.models.images(self.role), [int(image)]
            ).cpu()
        if colour is None:
            return base
        c = hex_colour(colour)
        if C != 3:
            raise ValueError(f"{run.cfg.name} has {C} channel(s); a prior colour needs 3")
        c = c.view(1, 3, 1, 1)
        if base is None:
            return c.expand(1, 3, H, W).clone()
        return base - base.mean(dim=(-2, -1), keepdim=True) + c

    def sample(self, seed: int, colour: str | None = None, image: int | None = None) -> dict:
        key = (int(seed), colour and colour.lower(), None if image is None else int(image))

        def make():
            run = self.run
            centre = self.centre(colour, image)
            lat = shared_noise_grid(centre, run.process.K, 1, run.process.delta,
                                    generator=seed_generator(seed))
            dev = self.models.device
            noise = NoiseTable(lat.noise.table.to(dev))
            x = sample(run.net, run.process, lat.x_K.to(dev), noise=noise).clamp(0, 1).cpu()
            u_K = lat.x_K
            return {"centre": centre, "u_K": u_K.cpu(), "sample": x}

        return self._cache.get_or(key, make)

    def view(self, seed: int, colour: str | None = None, image: int | None = None) -> dict:
        cur = self.sample(seed, colour, image)
        ref = self.sample(seed, image=self.reference)
        both = torch.cat([cur["sample"], ref["sample"]]).double()
        return {
            "seed": int(seed),
            "colour": colour,
            "image": image,
            "reference": self.reference,
            "u_K": as_image(cur["u_K"][0]),
            "sample": as_image(cur["sample"][0]),
            "reference_sample": as_image(ref["sample"][0]),
            "colour_error": float((disentangle.mean_colour(cur["sample"].double())
                                   - disentangle.mean_colour(cur["centre"].double())).norm()),
            "shape_correlation": float(disentangle.shape_correlation(both)[0, 1]),
        }
