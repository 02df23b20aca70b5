"""Run configuration: plain frozen dataclasses and named presets.

A run is identified by its config: ``Config.identity()`` hashes every field that changes
what gets trained (network, process, data, optimisation, seed) and none that only changes
how (logging, checkpoint interval, loader workers). Two configs with the same identity
share one cached run directory, so a notebook re-run reuses the checkpoint.

Paper presets reproduce Tables 1 and 2 of the paper (App. B); ``*-quick`` presets are
small CPU runs for the book's default profile, ``*-smoke`` tiny ones for tests and CI.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

__all__ = ["ModelConfig", "ProcessConfig", "DataConfig", "TrainConfig", "Config",
           "PRESETS", "get_preset", "preset_names", "runs_root", "data_root", "from_dict"]


def _how(default, **kw):
    """A field that does not enter the run identity."""
    return field(default=default, metadata={"identity": False}, **kw)


def _added(default, **kw):
    """A field added after runs were cached. It enters the identity only when set away from its
    default: at the default it reproduces what configs without it trained, so their identities
    (and run folders) stay valid. The default of such a field must therefore never change."""
    return field(default=default, metadata={"identity": "unless-default"}, **kw)


@dataclass(frozen=True)
class ModelConfig:
    base_channels: int = 128
    channel_mult: tuple = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: tuple = (16,)
    dropout: float = 0.1


@dataclass(frozen=True)
class ProcessConfig:
    """The forward process. ``kind`` selects it (see :mod:`ihdm_core.processes`):

    * ``ihdm``: K, sigma_min, sigma_max (sigma_B,max), sigma, delta.
    * ``ddpm``: K, beta_schedule ("linear": beta_start..beta_end, given for 1000 steps and
      scaled by 1000/K; "cosine": the log-SNR cosine clipped to [logsnr_min, logsnr_max]).
    * ``blurring``: K, sigma_max (its sigma_B_max; 0 gives DDPM with the cosine schedule),
      d_min, logsnr_min, logsnr_max.

    ``delta`` (IHDM's sampling noise) and ``clip_denoised`` (the diffusions' x_hat clipping)
    change samples but not training, so they are not part of the run identity. The
    DDPM/blurring fields were added later and enter the identity only when set away from
    their defaults (see ``_added``).
    """

    kind: str = "ihdm"
    K: int = 200
    sigma_min: float = 0.5
    sigma_max: float = 24.0
    sigma: float = 0.01
    delta: float = _how(0.0125)
    beta_schedule: str = _added("linear")
    beta_start: float = _added(1e-4)
    beta_end: float = _added(0.02)
    logsnr_min: float = _added(-10.0)
    logsnr_max: float = _added(10.0)
    d_min: float = _added(0.001)
    # Whether the diffusion samplers clip x_hat to the data range (sampling only); None: the
    # process's default (DDPM clips, Blurring Diffusion does not; see ihdm_core.diffusion).
    clip_denoised: bool | None = _how(None)
    # Gaussian diffusions only. time: "discrete" trains and samples on levels 1..K; "continuous"
    # trains on t ~ U(0, 1] and samples on any number of steps (K is then the default number).
    # prediction: what the network predicts, "eps", "v" or "x".
    time: str = _added("discrete")
    prediction: str = _added("eps")
    # Sampling only: the time grid ("uniform", or "edge": denser where the high frequencies cross
    # their blur edge) and whether x_hat is clamped per DCT frequency to the training data's range.
    grid: str = _how("uniform")
    clamp_dct: bool = _how(False)


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "cifar10"
    image_size: int = 32
    channels: int = 3
    hflip: bool = False
    limit: int | None = None  # use only the first `limit` training images (tests)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 400_000
    batch_size: int = 128
    lr: float = 2e-4
    warmup: int = 5000
    lr_schedule: str = _added("constant")  # the paper's; "cosine" decays to 0 at `steps`
    ema: float = 0.999
    grad_clip: float = 1.0
    seed: int = 0
    amp: str = "bf16"  # on CUDA: "bf16" autocast, "fp16" with GradScaler, or "none"; CPU is fp32
    log_every: int = _how(100)
    ckpt_every: int = _how(5000)
    num_workers: int = _how(2)
    compile: bool = _how(False)
    channels_last: bool = _how(True)


@dataclass(frozen=True)
class Config:
    name: str
    model: ModelConfig = ModelConfig()
    process: ProcessConfig = ProcessConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    notes: str = _how("")

    def identity(self) -> str:
        """Short hash of everything that determines the trained weights."""
        blob = json.dumps(_identity_dict(self), sort_keys=True, default=list)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def run_name(self) -> str:
        return f"{self.name}-{self.identity()}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **sections) -> "Config":
        """``cfg.replace(train={"steps": 10}, process={"K": 5})`` -> a new Config."""
        out = {}
        for key, value in sections.items():
            cur = getattr(self, key)
            out[key] = replace(cur, **value) if isinstance(value, dict) and dataclasses.is_dataclass(cur) else value
        return replace(self, **out)


def _identity_dict(obj):
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in fields(obj):
            mode = f.metadata.get("identity", True)
            value = getattr(obj, f.name)
            if mode is False or f.name == "name" or (mode == "unless-default" and value == f.default):
                continue
            out[f.name] = _identity_dict(value)
        return out
    if isinstance(obj, tuple):
        return [_identity_dict(x) for x in obj]
    return obj


def from_dict(d: dict) -> Config:
    """Inverse of ``Config.to_dict`` (tuples restored), used when loading checkpoints."""
    def build(cls, values):
        kwargs = {}
        for f in fields(cls):
            if f.name not in values:
                continue
            v = values[f.name]
            if isinstance(v, list):
                v = tuple(v)
            kwargs[f.name] = v
        return cls(**kwargs)

    return Config(
        name=d["name"],
        model=build(ModelConfig, d.get("model", {})),
        process=build(ProcessConfig, d.get("process", {})),
        data=build(DataConfig, d.get("data", {})),
        train=build(TrainConfig, d.get("train", {})),
        notes=d.get("notes", ""),
    )


# --- paper presets: Table 1 (network) and Table 2 (process); App. B.2 for step counts ------
def _paper(name, dataset, res, ch, mult, lr, attn, ema, batch, nres, K, smax, delta,
           steps, hflip=False, notes=""):
    return Config(
        name=name,
        model=ModelConfig(base_channels=128, channel_mult=mult, num_res_blocks=nres,
                          attn_resolutions=attn, dropout=0.1),
        process=ProcessConfig(K=K, sigma_min=0.5, sigma_max=smax, sigma=0.01, delta=delta),
        data=DataConfig(dataset=dataset, image_size=res, channels=ch, hflip=hflip),
        train=TrainConfig(steps=steps, batch_size=batch, lr=lr, warmup=5000, ema=ema),
        notes=notes,
    )


PRESETS: dict[str, Config] = {}


def _register(cfg: Config) -> Config:
    PRESETS[cfg.name] = cfg
    return cfg


_register(_paper("mnist", "mnist", 28, 1, (1, 2, 2), 1e-4, (7,), 0.999, 128, 4, 100, 20.0, 0.0125,
                 steps=100_000, notes="Step count for MNIST is not given in the paper; 100k chosen."))
_register(_paper("cifar10", "cifar10", 32, 3, (1, 2, 2, 2), 2e-4, (8, 4), 0.999, 128, 4, 200, 24.0, 0.01325,
                 steps=400_000))
_register(_paper("afhq64", "afhq64", 64, 3, (1, 2, 3, 4), 1e-4, (16, 8), 0.999, 128, 2, 200, 32.0, 0.0125,
                 steps=100_000, hflip=True))
_register(_paper("afhq256", "afhq256", 256, 3, (1, 2, 3, 4, 5), 2e-5, (64, 32, 16), 0.9999, 32, 2, 200, 128.0,
                 0.01275, steps=400_000, hflip=True))
_register(_paper("ffhq128", "ffhq128", 128, 3, (1, 2, 3, 4, 5), 2e-5, (32, 16, 8), 0.999, 32, 2, 200, 128.0,
                 0.0125, steps=400_000,
                 notes="The colour-disentanglement model (Fig. 7a, 29); its step count is not given."))
_register(_paper("ffhq256", "ffhq256", 256, 3, (1, 2, 3, 4, 5), 2e-5, (64, 32, 16), 0.9999, 32, 2, 200, 128.0,
                 0.0125, steps=800_000))
_register(_paper("lsun_church128", "lsun_church128", 128, 3, (1, 2, 3, 4, 5), 2e-5, (32, 16, 8), 0.999, 32, 2,
                 400, 64.0, 0.0125, steps=1_000_000))

# --- CPU presets -------------------------------------------------------------------------
# quick: the book's default profile on 2 CPU cores with the 5,000 offline MNIST digits.
_register(Config(
    name="mnist-quick",
    model=ModelConfig(base_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1,
                      attn_resolutions=(7,), dropout=0.0),
    process=ProcessConfig(K=50, sigma_min=0.5, sigma_max=20.0, sigma=0.01, delta=0.0125),
    data=DataConfig(dataset="mnist5k", image_size=28, channels=1),
    # Sized so that the quick book (about half an hour on 2 CPU cores) can train three models
    # (IHDM, DDPM, Blurring Diffusion at equal budget) and the sigma = 0 model: ~5 steps/s on
    # this network, where base 32 ran at 2 steps/s; batch 32 beat 64 per CPU-second. At 2,000
    # steps it reached recognisability 0.22 and FID 64.8 (500 samples), but the book took 68
    # min; at 1,500 steps 0.25 (300 samples), book 38 min; at 1,000 steps 0.26 (250 samples),
    # book 29.7 min, so the quality plateaus for this width. Base 32 reached 0.39 at 3,000 and
    # 0.48 at 7,000 steps.
    # channels_last off: on 2 CPU cores this 16-channel U-Net trains 1.18x faster in the default
    # layout (benchmarks/bench_train.py: 5.09 vs 4.33 steps/s); not part of the run identity.
    train=TrainConfig(steps=1000, batch_size=32, lr=1e-3, warmup=200, ema=0.995,
                      log_every=50, ckpt_every=500, num_workers=0, channels_last=False),
    notes="Small-scale CPU run on 5,000 real MNIST digits; not the paper's setting.",
))
# ref: the reference models shipped in models/ (trained once with the compute we had; the
# default book loads them). Sized for quality instead of for the half-hour book: twice the
# width of mnist-quick (base 32 ran at 2.4 steps/s on one CPU thread, so two models train side
# by side on 2 cores), a cosine learning-rate decay to 0 so the final weights are settled, and
# EMA 0.999. DDPM and Blurring Diffusion references share the network and budget (below).
_register(Config(
    name="mnist-ref",
    model=ModelConfig(base_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1,
                      attn_resolutions=(7,), dropout=0.0),
    process=ProcessConfig(K=50, sigma_min=0.5, sigma_max=20.0, sigma=0.01, delta=0.0125),
    data=DataConfig(dataset="mnist5k", image_size=28, channels=1),
    train=TrainConfig(steps=4000, batch_size=32, lr=1e-3, warmup=200, lr_schedule="cosine", ema=0.999,
                      log_every=50, ckpt_every=500, num_workers=0, channels_last=False),
    notes="Reference model shipped with the book: 5,000 real MNIST digits, trained on CPU; not the paper's "
          "setting.",
))
_register(Config(
    name="cifar10-quick",
    model=ModelConfig(base_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1,
                      attn_resolutions=(8,), dropout=0.1),
    process=ProcessConfig(K=100, sigma_min=0.5, sigma_max=24.0, sigma=0.01, delta=0.01325),
    data=DataConfig(dataset="cifar10", image_size=32, channels=3),
    train=TrainConfig(steps=4000, batch_size=64, lr=5e-4, warmup=200, ema=0.995,
                      log_every=50, ckpt_every=1000, num_workers=2),
    notes="Small-scale CPU run; needs CIFAR-10 (downloaded when online).",
))
# smoke: seconds on a CPU; exercises every code path, learns little.
_register(Config(
    name="mnist-smoke",
    model=ModelConfig(base_channels=16, channel_mult=(1, 2), num_res_blocks=1,
                      attn_resolutions=(14,), dropout=0.1),
    process=ProcessConfig(K=10, sigma_min=0.5, sigma_max=20.0, sigma=0.01, delta=0.0125),
    data=DataConfig(dataset="mnist5k", image_size=28, channels=1, limit=512),
    train=TrainConfig(steps=30, batch_size=16, lr=1e-3, warmup=5, ema=0.9,
                      log_every=10, ckpt_every=15, num_workers=0, channels_last=False),
    notes="Tiny test preset.",
))
_register(Config(
    name="cifar10-smoke",
    model=ModelConfig(base_channels=16, channel_mult=(1, 2), num_res_blocks=1,
                      attn_resolutions=(16,), dropout=0.1),
    process=ProcessConfig(K=10, sigma_min=0.5, sigma_max=24.0, sigma=0.01, delta=0.01325),
    data=DataConfig(dataset="cifar10", image_size=32, channels=3, limit=512),
    train=TrainConfig(steps=30, batch_size=16, lr=1e-3, warmup=5, ema=0.9,
                      log_every=10, ckpt_every=15, num_workers=0),
    notes="Tiny test preset; needs CIFAR-10.",
))


# --- baselines on the same U-Net and trainer: DDPM and Blurring Diffusion --------------------
# Each is derived from the IHDM preset of its data set, so network, data and optimisation
# follow that preset (and any later retuning of it); only the process differs. Paper scale uses
# 1000 levels (Ho et al.'s CIFAR-10 DDPM; Blurring Diffusion's sampler); the IHDM paper's DDPM
# for the FFHQ interpolation had 200 (``--set process.K=200``: linear betas rescale with K).
# quick/smoke keep their IHDM preset's K, i.e. the same network evaluations per sample.
# sigma_B_max = 20 is Blurring Diffusion's published value at 32 x 32 (IHDM's MNIST value too).
_DDPM = {"kind": "ddpm", "beta_schedule": "linear"}
_BLURRING = {"kind": "blurring", "sigma_max": 20.0}


def _baseline(base: str, name: str, process: dict, notes: str) -> Config:
    return _register(PRESETS[base].replace(name=name, process=process, notes=notes))


for _data in ("mnist", "cifar10"):
    _baseline(_data, f"{_data}-ddpm", {**_DDPM, "K": 1000},
              "DDPM (1000 linear-beta steps, eps prediction) on the IHDM preset's U-Net and training.")
    _baseline(_data, f"{_data}-blurring", {**_BLURRING, "K": 1000},
              "Blurring Diffusion (1000 steps, sigma_B_max 20) on the IHDM preset's U-Net and training.")
    _baseline(f"{_data}-quick", f"{_data}-ddpm-quick", _DDPM,
              f"DDPM at the budget of {_data}-quick (same network, steps, K).")
    _baseline(f"{_data}-quick", f"{_data}-blurring-quick", _BLURRING,
              f"Blurring Diffusion at the budget of {_data}-quick (same network, steps, K).")
    # Ho et al.'s linear betas need K >= 20 (beta_end x 1000/K < 1); the smoke K is 10.
    _baseline(f"{_data}-smoke", f"{_data}-ddpm-smoke", {**_DDPM, "beta_schedule": "cosine"}, "Tiny test preset.")
    _baseline(f"{_data}-smoke", f"{_data}-blurring-smoke", _BLURRING, "Tiny test preset.")

# The reference baselines: mnist-ref's network, data and training budget; continuous time (trained
# on t ~ U(0, 1], sampled on any number of steps; K = 250 is the default number) and v-prediction
# (x_hat = (a z - sigma v) / (a alpha + sigma^2) never divides by the tiny alpha of blurred-out
# frequencies, where eps-prediction amplifies its error; chapter 9 measures the options).
_REF_DIFFUSION = {"time": "continuous", "prediction": "v", "K": 250, "beta_schedule": "cosine"}
_baseline("mnist-ref", "mnist-ddpm-ref", {**_REF_DIFFUSION, "kind": "ddpm"},
          "DDPM (cosine schedule, continuous time, v-prediction) at the budget of mnist-ref.")
_baseline("mnist-ref", "mnist-blurring-ref", {**_REF_DIFFUSION, "kind": "blurring", "sigma_max": 20.0},
          "Blurring Diffusion (sigma_B_max 20, continuous time, v-prediction) at the budget of mnist-ref.")

# The smoke book samples the diffusions as the reference ones are sampled: continuous time, v-prediction.
_baseline("mnist-smoke", "mnist-ddpm-smoke-ct", {**_REF_DIFFUSION, "kind": "ddpm", "K": 10}, "Tiny test preset.")
_baseline("mnist-smoke", "mnist-blurring-smoke-ct", {**_REF_DIFFUSION, "kind": "blurring", "sigma_max": 20.0,
                                                     "K": 10}, "Tiny test preset.")

# The prediction ablation of chapter 9: Blurring Diffusion in continuous time with eps, v and x
# prediction on mnist-quick's network, trained 2,000 steps with a cosine decay (small enough to
# ship all three beside the reference models).
for _pred in ("eps", "v", "x"):
    _register(PRESETS["mnist-quick"].replace(
        name=f"mnist-blurring-{_pred}-ablation",
        process={**_REF_DIFFUSION, "kind": "blurring", "sigma_max": 20.0, "prediction": _pred},
        train={"steps": 2000, "lr_schedule": "cosine"},
        notes=f"Blurring Diffusion, continuous time, {_pred}-prediction: the prediction ablation of chapter 9."))


# The colour model (Fig. 7a): the same digits with random foreground and background colours
# (data set mnist5k-colour), on which the prior state u_K should fix the colours and the sampling
# noise the shape. sigma_B_max = 20 on 28 x 28 leaves the mean colour: measured with
# ihdm_core.heat on 500 training images, u_K differs from the per-channel mean image by at most
# 0.0055 (mean |.| 0.00035, 0.36 % of the image's deviation from its mean in L2), below sigma = 0.01.
# The reference keeps mnist-ref's network, process and optimisation; 3,000 steps fit its CPU budget.
_register(PRESETS["mnist-ref"].replace(
    name="mnist-colour-ref", data={"dataset": "mnist5k-colour", "channels": 3}, train={"steps": 3000},
    notes="Colour-disentanglement reference (Fig. 7a): mnist-ref's setting on the coloured 5,000 digits."))
_register(PRESETS["mnist-smoke"].replace(
    name="mnist-colour-smoke", data={"dataset": "mnist5k-colour", "channels": 3}, notes="Tiny test preset."))


# gpu: the book's ``gpu`` profile, sized for about one hour on one H100-class GPU (UNMEASURED:
# no GPU has run it yet). The paper's MNIST process (K = 100, sigma_B_max 20) on the full 60,000
# torchvision digits with a U-Net four times mnist-ref's width in parameters (base 64, two
# residual blocks per level) and the paper's batch of 128; 30k steps with a cosine decay instead
# of the paper's 100k at a constant rate, so the final weights are settled within the hour. At the
# assumed ~40 steps/s (bf16, compiled) the three main models take ~13 min each. The baselines
# share network and budget and are continuous-time v-prediction diffusions like the references.
_register(PRESETS["mnist"].replace(
    name="mnist-gpu",
    model={"base_channels": 64, "channel_mult": (1, 2, 2), "num_res_blocks": 2, "attn_resolutions": (7,),
           "dropout": 0.1},
    train={"steps": 30_000, "batch_size": 128, "lr": 2e-4, "warmup": 1000, "lr_schedule": "cosine",
           "ema": 0.999, "log_every": 200, "ckpt_every": 5000, "compile": True},
    notes="The gpu profile's IHDM model: the paper's MNIST process on the real 60,000 digits, a base-64 U-Net, "
          "30k steps; sized for one H100-class GPU (unmeasured)."))
_baseline("mnist-gpu", "mnist-ddpm-gpu", {**_REF_DIFFUSION, "kind": "ddpm"},
          "DDPM (cosine schedule, continuous time, v-prediction) at the budget of mnist-gpu.")
_baseline("mnist-gpu", "mnist-blurring-gpu", {**_REF_DIFFUSION, "kind": "blurring", "sigma_max": 20.0},
          "Blurring Diffusion (sigma_B_max 20, continuous time, v-prediction) at the budget of mnist-gpu.")
# Only the 5,000 offline digits exist in colour; a third of the budget keeps the hour.
_register(PRESETS["mnist-gpu"].replace(
    name="mnist-colour-gpu", data={"dataset": "mnist5k-colour", "channels": 3}, train={"steps": 10_000},
    notes="Colour-disentanglement model of the gpu profile: mnist-gpu's setting on the coloured 5,000 digits."))


def preset_names() -> list[str]:
    return sorted(PRESETS)


def get_preset(name: str, **overrides) -> Config:
    """A named preset, optionally with section overrides (see ``Config.replace``)."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known presets: {', '.join(preset_names())}")
    cfg = PRESETS[name]
    return cfg.replace(**overrides) if overrides else cfg


def _project_root() -> Path | None:
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").exists() else None


def runs_root() -> Path:
    """Where trained runs live: $IHDM_RUNS, else <checkout>/runs, else ~/.cache/ihdm/runs."""
    if os.environ.get("IHDM_RUNS"):
        return Path(os.environ["IHDM_RUNS"]).expanduser()
    root = _project_root()
    return root / "runs" if root else Path.home() / ".cache" / "ihdm" / "runs"


def data_root() -> Path:
    """Where data sets live: $IHDM_DATA, else <checkout>/data, else ~/.cache/ihdm/data."""
    if os.environ.get("IHDM_DATA"):
        return Path(os.environ["IHDM_DATA"]).expanduser()
    root = _project_root()
    return root / "data" if root else Path.home() / ".cache" / "ihdm" / "data"
