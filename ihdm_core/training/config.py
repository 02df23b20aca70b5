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
import math
import os
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

__all__ = ["ModelConfig", "ProcessConfig", "DataConfig", "TrainConfig", "Config", "ConfigError",
           "PRESETS", "get_preset", "preset_names", "runs_root", "data_root", "from_dict", "parse_value",
           "PROCESS_KINDS", "DATASETS"]


class ConfigError(ValueError):
    """A config field holds a value outside what is allowed; the message names field, value and range."""


# Names the configs accept. Kept here (not imported from the modules that implement them) so that
# a config is checked without importing torch; tests/test_faults.py checks they agree.
PROCESS_KINDS = ("ihdm", "ddpm", "blurring")
BETA_SCHEDULES = ("linear", "cosine")
TIMES = ("discrete", "continuous")
PREDICTIONS = ("eps", "v", "x")
GRIDS = ("uniform", "edge")
LR_SCHEDULES = ("constant", "cosine")
# "release": the 2023 release's (and score_sde's) warm-up, decay_n = min(ema, (1 + n) / (10 + n)) at
# the n-th update; "none": a constant decay from the first step, as runs made before the warm-up.
EMA_WARMUPS = ("release", "none")
AMP_MODES = ("bf16", "fp16", "none")
DATASETS = ("mnist5k", "mnist5k-colour", "mnist", "cifar10", "afhq64", "afhq256", "ffhq128", "ffhq256",
            "lsun_church128")
FOLDER_PREFIX = "folder:"


# --- validation ----------------------------------------------------------------------------------
def _where(obj, name: str) -> str:
    return f"{_SECTION.get(type(obj).__name__, type(obj).__name__)}.{name}"


def _bad(obj, name: str, value, allowed: str) -> ConfigError:
    return ConfigError(f"{_where(obj, name)}={value!r} is not allowed: {allowed}")


def _int(obj, name: str, lo: int | None = None, optional: bool = False) -> None:
    v = getattr(obj, name)
    if v is None and optional:
        return
    what = "an integer" + (f" >= {lo}" if lo is not None else "") + (" or None" if optional else "")
    if isinstance(v, bool) or not isinstance(v, int) or (lo is not None and v < lo):
        raise _bad(obj, name, v, f"must be {what}")


def _float(obj, name: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
           hi_open: bool = False, optional: bool = False) -> None:
    v = getattr(obj, name)
    if v is None and optional:
        return
    lb = "" if lo is None else f"{'>' if lo_open else '>='} {lo:g}"
    ub = "" if hi is None else f"{'<' if hi_open else '<='} {hi:g}"
    what = "a finite number" + (f" {lb}" if lb else "") + (" and" if lb and ub else "") + (f" {ub}" if ub else "")
    what += " or None" if optional else ""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _bad(obj, name, v, f"must be {what}")
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise _bad(obj, name, v, f"must be {what}")
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise _bad(obj, name, v, f"must be {what}")


def _bool(obj, name: str, optional: bool = False) -> None:
    v = getattr(obj, name)
    if not (isinstance(v, bool) or (optional and v is None)):
        raise _bad(obj, name, v, "must be true or false" + (" or None" if optional else ""))


def _choice(obj, name: str, allowed: tuple) -> None:
    v = getattr(obj, name)
    if v not in allowed or not isinstance(v, str):
        raise _bad(obj, name, v, f"must be one of {', '.join(allowed)}")


def _int_tuple(obj, name: str, lo: int, nonempty: bool) -> None:
    v = getattr(obj, name)
    if isinstance(v, list):  # JSON round trips and hand-written replace() calls give lists
        v = tuple(v)
        object.__setattr__(obj, name, v)
    if (not isinstance(v, tuple) or (nonempty and not v)
            or any(isinstance(x, bool) or not isinstance(x, int) or x < lo for x in v)):
        raise _bad(obj, name, v, f"must be a {'non-empty ' if nonempty else ''}tuple of integers >= {lo}")


def _str(obj, name: str) -> None:
    v = getattr(obj, name)
    if not isinstance(v, str):
        raise _bad(obj, name, v, "must be a string")


_SECTION = {"ModelConfig": "model", "ProcessConfig": "process", "DataConfig": "data", "TrainConfig": "train",
            "Config": "config"}


def _how(default, **kw):
    """A field that does not enter the run identity."""
    return field(default=default, metadata={"identity": False}, **kw)


def _added(default, **kw):
    """A field added after runs were cached. It enters the identity only when set away from its
    default: at the default it reproduces what configs without it trained, so their identities
    (and run folders) stay valid. The default of such a field must therefore never change."""
    return field(default=default, metadata={"identity": "unless-default"}, **kw)


def _changed(default, legacy, **kw):
    """A field added after runs were cached whose new default changes what is trained. Configs
    written before it existed meant ``legacy``: ``from_dict`` fills that value in when the field is
    missing, and the field enters the identity only when set away from ``legacy``, so a run
    trained the old way keeps its identity (and run folder), and every run at the new default
    gets a new one."""
    return field(default=default, metadata={"identity": "unless-legacy", "legacy": legacy}, **kw)


@dataclass(frozen=True)
class ModelConfig:
    base_channels: int = 128
    channel_mult: tuple = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: tuple = (16,)
    dropout: float = 0.1

    def __post_init__(self):
        _int(self, "base_channels", 1)
        _int_tuple(self, "channel_mult", 1, nonempty=True)
        _int(self, "num_res_blocks", 1)
        _int_tuple(self, "attn_resolutions", 1, nonempty=False)
        _float(self, "dropout", 0.0, 1.0, hi_open=True)

    @property
    def downsampling(self) -> int:
        """How many times the U-Net halves the image: once between consecutive channel_mult levels."""
        return 2 ** (len(self.channel_mult) - 1)


@dataclass(frozen=True)
class ProcessConfig:
    """The forward process. ``kind`` selects it (see :mod:`ihdm_core.training.build`):

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
    # process's default (DDPM clips, Blurring Diffusion does not; see ihdm_core.model.diffusion).
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

    def __post_init__(self):
        _choice(self, "kind", PROCESS_KINDS)
        _int(self, "K", 1)
        _float(self, "sigma_min", 0.0)
        _float(self, "sigma_max", 0.0)
        _float(self, "sigma", 0.0)
        _float(self, "delta", 0.0, optional=True)
        _choice(self, "beta_schedule", BETA_SCHEDULES)
        _float(self, "beta_start", 0.0, 1.0, lo_open=True, hi_open=True)
        _float(self, "beta_end", 0.0, 1.0, lo_open=True, hi_open=True)
        _float(self, "logsnr_min")
        _float(self, "logsnr_max")
        _float(self, "d_min", 0.0, 1.0, hi_open=True)
        _bool(self, "clip_denoised", optional=True)
        _choice(self, "time", TIMES)
        _choice(self, "prediction", PREDICTIONS)
        _choice(self, "grid", GRIDS)
        _bool(self, "clamp_dct")
        if self.kind == "ihdm" and self.sigma_min > self.sigma_max:
            raise ConfigError(f"process.sigma_min={self.sigma_min!r} is not allowed: must be <= process.sigma_max "
                              f"({self.sigma_max!r})")
        if self.beta_start > self.beta_end:
            raise ConfigError(f"process.beta_start={self.beta_start!r} is not allowed: must be <= process.beta_end "
                              f"({self.beta_end!r})")
        if self.logsnr_min >= self.logsnr_max:
            raise ConfigError(f"process.logsnr_min={self.logsnr_min!r} is not allowed: must be < "
                              f"process.logsnr_max ({self.logsnr_max!r})")
        if self.kind == "ihdm" and self.time != "discrete":
            raise ConfigError(f"process.time={self.time!r} is not allowed with process.kind='ihdm': IHDM is "
                              f"discrete (continuous time is for kind ddpm or blurring)")
        if self.kind == "ddpm" and self.time == "continuous" and self.beta_schedule != "cosine":
            raise ConfigError(f"process.beta_schedule={self.beta_schedule!r} is not allowed with "
                              f"process.time='continuous': continuous time needs beta_schedule='cosine'")
        if self.kind == "ddpm" and self.beta_schedule == "linear" and self.time == "discrete" \
                and self.beta_end * 1000.0 / self.K >= 1:
            # Ho et al.'s betas are given for 1000 steps and scaled by 1000/K (ihdm_core.model.diffusion).
            raise ConfigError(f"process.K={self.K!r} is not allowed with linear betas: beta_end x 1000/K = "
                              f"{self.beta_end * 1000.0 / self.K:g} must be < 1, so K must be > "
                              f"{self.beta_end * 1000.0:g} (or use beta_schedule='cosine')")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "cifar10"
    image_size: int = 32
    channels: int = 3
    hflip: bool = False
    limit: int | None = None  # use only the first `limit` training images (tests)

    def __post_init__(self):
        _str(self, "dataset")
        if self.dataset.startswith(FOLDER_PREFIX):
            if not os.path.isabs(self.dataset[len(FOLDER_PREFIX):]):
                raise _bad(self, "dataset", self.dataset, "a folder data set is 'folder:' and an absolute path")
        elif self.dataset not in DATASETS:
            raise _bad(self, "dataset", self.dataset,
                       f"must be one of {', '.join(DATASETS)}, or 'folder:/absolute/path'")
        _int(self, "image_size", 1)
        _int(self, "channels", 1)
        _bool(self, "hflip")
        _int(self, "limit", 1, optional=True)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 400_000
    batch_size: int = 128
    lr: float = 2e-4
    warmup: int = 5000
    lr_schedule: str = _added("constant")  # the paper's; "cosine" decays to 0 at `steps`
    ema: float = 0.999
    ema_warmup: str = _changed("release", legacy="none")
    grad_clip: float = 1.0
    seed: int = 0
    amp: str = "bf16"  # on CUDA: "bf16" autocast, "fp16" with GradScaler, or "none"; CPU is fp32
    log_every: int = _how(100)
    ckpt_every: int = _how(5000)
    num_workers: int = _how(2)
    compile: bool = _how(False)
    channels_last: bool = _how(True)
    # Training outputs; none of them changes the weights, so none enters the identity.
    # Numbered snapshots every `snapshot_every` steps (0: off), keeping the last `keep_snapshots`
    # and the one with the lowest held-out loss; the held-out loss on `eval_n` test-split images
    # every `eval_every` steps (0: off); a grid of `grid_n` EMA samples every `grid_every` steps.
    snapshot_every: int = _how(0)
    keep_snapshots: int = _how(3)
    eval_every: int = _how(0)
    eval_n: int = _how(256)
    grid_every: int = _how(0)
    grid_n: int = _how(16)
    tensorboard: bool = _how(False)
    # Gradient accumulation: batch_size images per step in accum_steps micro-batches, with the
    # levels and noise of the whole batch drawn first, so the step equals the full-batch step.
    accum_steps: int = _how(1)
    # On CUDA: Adam's fused kernel (one launch for all parameters); False gives PyTorch's default
    # implementation, the plain baseline that benchmarks/gpu_check.py measures it against.
    fused_adam: bool = _how(True)

    def __post_init__(self):
        _int(self, "steps", 1)
        _int(self, "batch_size", 1)
        _float(self, "lr", 0.0, lo_open=True)
        _int(self, "warmup", 0)
        _choice(self, "lr_schedule", LR_SCHEDULES)
        _float(self, "ema", 0.0, 1.0, hi_open=True)
        _choice(self, "ema_warmup", EMA_WARMUPS)
        _float(self, "grad_clip", 0.0)
        _int(self, "seed", 0)
        _choice(self, "amp", AMP_MODES)
        _int(self, "log_every", 1)
        _int(self, "ckpt_every", 1)
        _int(self, "num_workers", 0)
        _bool(self, "compile")
        _bool(self, "channels_last")
        for name in ("snapshot_every", "eval_every", "grid_every"):
            _int(self, name, 0)
        for name in ("keep_snapshots", "eval_n", "grid_n", "accum_steps"):
            _int(self, name, 1)
        _bool(self, "tensorboard")
        _bool(self, "fused_adam")
        if self.batch_size % self.accum_steps:
            raise _bad(self, "accum_steps", self.accum_steps,
                       f"must divide train.batch_size={self.batch_size} (micro-batches of equal size)")


@dataclass(frozen=True)
class Config:
    name: str
    model: ModelConfig = ModelConfig()
    process: ProcessConfig = ProcessConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    notes: str = _how("")

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ConfigError(f"config.name={self.name!r} is not allowed: must be a non-empty string without '/'")
        _str(self, "notes")
        for key, cls in (("model", ModelConfig), ("process", ProcessConfig), ("data", DataConfig),
                         ("train", TrainConfig)):
            if not isinstance(getattr(self, key), cls):
                raise ConfigError(f"config.{key} must be a {cls.__name__}, got {type(getattr(self, key)).__name__}")
        m, d = self.model, self.data
        if d.image_size % m.downsampling:
            raise ConfigError(
                f"data.image_size={d.image_size} is not allowed with model.channel_mult={m.channel_mult}: the "
                f"U-Net halves the image {len(m.channel_mult) - 1} times, so the size must be divisible by "
                f"{m.downsampling}")
        have = [d.image_size // 2**i for i in range(len(m.channel_mult))]
        missing = [r for r in m.attn_resolutions if r not in have]
        if missing:
            raise ConfigError(
                f"model.attn_resolutions={m.attn_resolutions} is not allowed: {', '.join(map(str, missing))} "
                f"is not a resolution of this network (image {d.image_size}, channel_mult {m.channel_mult}: "
                f"{', '.join(map(str, have))})")

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
            if key not in _CONFIG_FIELDS:
                raise ConfigError(f"unknown config section {key!r}; the sections are: {', '.join(_CONFIG_FIELDS)}")
            cur = getattr(self, key)
            if isinstance(value, dict) and dataclasses.is_dataclass(cur):
                _check_keys(key, type(cur), value)
            out[key] = replace(cur, **value) if isinstance(value, dict) and dataclasses.is_dataclass(cur) else value
        return replace(self, **out)


_CONFIG_FIELDS = tuple(f.name for f in fields(Config))
SECTIONS = {"model": ModelConfig, "process": ProcessConfig, "data": DataConfig, "train": TrainConfig}


def _check_keys(section: str, cls, values: dict) -> None:
    known = [f.name for f in fields(cls)]
    unknown = [k for k in values if k not in known]
    if unknown:
        raise ConfigError(f"unknown field {section}.{unknown[0]}; the fields of {section} are: {', '.join(known)}")


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def parse_value(section: str, name: str, text: str):
    """The value of ``section.name`` written as text (``--set``), parsed by the field's declared type:
    int, float (finite), bool (true/false), tuple of ints ("8,4", "[8, 4]" or "()"), str, and None for
    Optional fields ("none"). Raises ConfigError naming the field, the text and the type wanted."""
    if section not in SECTIONS:
        raise ConfigError(f"unknown config section {section!r} in {section}.{name}; the sections are: "
                          f"{', '.join(SECTIONS)}")
    cls = SECTIONS[section]
    _check_keys(section, cls, {name: None})
    hint = typing.get_type_hints(cls)[name]
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    raw = text.strip()
    if optional and raw.lower() in ("none", "null"):
        return None

    def bad(what: str) -> ConfigError:
        return ConfigError(f"{section}.{name}={text!r} is not allowed: must be {what}"
                           + (" or none" if optional else ""))

    if base is bool:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise bad("true or false")
    if base is int:
        try:
            return int(raw)
        except ValueError:
            raise bad("an integer") from None
    if base is float:
        try:
            value = float(raw)
        except ValueError:
            raise bad("a finite number") from None
        if not math.isfinite(value):
            raise bad("a finite number")
        return value
    if base is tuple:
        inner = raw.strip("()[] ")
        try:
            return tuple(int(x) for x in inner.split(",") if x.strip())
        except ValueError:
            raise bad("integers separated by commas, e.g. 8,4 (or () for none)") from None
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    return raw


def _identity_dict(obj):
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in fields(obj):
            mode = f.metadata.get("identity", True)
            value = getattr(obj, f.name)
            if mode is False or f.name == "name" or (mode == "unless-default" and value == f.default):
                continue
            if mode == "unless-legacy" and value == f.metadata["legacy"]:
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
                if "legacy" in f.metadata:  # written before the field existed: trained the old way
                    kwargs[f.name] = f.metadata["legacy"]
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
    # Width, batch, steps and channels_last were measured for the half-hour book: docs/tuning-history.md.
    train=TrainConfig(steps=1000, batch_size=32, lr=1e-3, warmup=200, ema=0.995,
                      log_every=50, ckpt_every=500, num_workers=0, channels_last=False),
    notes="Small-scale CPU run on 5,000 real MNIST digits; not the paper's setting.",
))
# ref: the reference models shipped in models/ (trained once with the compute we had; the
# default book loads them). Sized for quality instead of for the half-hour book: twice the
# width of mnist-quick (base 32 ran at 2.4 steps/s on one CPU thread, so two models train side
# by side on 2 cores), a cosine learning-rate decay to 0 so the final weights are settled, and
# EMA 0.999. DDPM and Blurring Diffusion references share the network and budget (below).
# Trained before the EMA warm-up existed: ema_warmup="none" says so and keeps the shipped weights
# (and every preset derived from this one) at their identities.
_register(Config(
    name="mnist-ref",
    model=ModelConfig(base_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1,
                      attn_resolutions=(7,), dropout=0.0),
    process=ProcessConfig(K=50, sigma_min=0.5, sigma_max=20.0, sigma=0.01, delta=0.0125),
    data=DataConfig(dataset="mnist5k", image_size=28, channels=1),
    train=TrainConfig(steps=4000, batch_size=32, lr=1e-3, warmup=200, lr_schedule="cosine", ema=0.999,
                      ema_warmup="none", log_every=50, ckpt_every=500, num_workers=0, channels_last=False),
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

# The sigma = 0 model of chapter 4 (Fig. 13) at the reference budget; the quick profile's
# 'sigma0' role builds the same config (and so finds these shipped weights).
_register(PRESETS["mnist-ref"].replace(
    name="mnist-ref-sigma0", process={"sigma": 0.0}, train={"steps": 1000},
    notes="mnist-ref trained without noise (sigma = 0): the failure mode of Fig. 13, shipped with the book."))

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
        train={"steps": 2000, "lr_schedule": "cosine", "ema_warmup": "none"},  # shipped, trained without
        notes=f"Blurring Diffusion, continuous time, {_pred}-prediction: the prediction ablation of chapter 9."))


# The colour model (Fig. 7a): the same digits with random foreground and background colours
# (data set mnist5k-colour), on which the prior state u_K should fix the colours and the sampling
# noise the shape. sigma_B_max = 20 on 28 x 28 leaves the mean colour: measured with
# ihdm_core.model.heat on 500 training images, u_K differs from the per-channel mean image by at most
# 0.0055 (mean |.| 0.00035, 0.36 % of the image's deviation from its mean in L2), below sigma = 0.01.
# The reference keeps mnist-ref's network, process and optimisation; 3,000 steps fit its CPU budget.
_register(PRESETS["mnist-ref"].replace(
    name="mnist-colour-ref", data={"dataset": "mnist5k-colour", "channels": 3}, train={"steps": 3000},
    notes="Colour-disentanglement reference (Fig. 7a): mnist-ref's setting on the coloured 5,000 digits."))
# long: the long reference runs (issue "samples a reader believes"). mnist-ref's network and
# process, 8x its training images (32,000 steps at batch 32, about 230 epochs of the 4,500 offline
# training digits), the paper's dropout of 0.1 against memorising them, the cosine decay spread
# over the whole run, and the EMA warm-up. Snapshots every 2,000 steps (all kept) give the
# learning curve; the held-out loss every 1,000 steps watches for memorisation. Trained on CPU in
# the background across sessions, resumable from its committed state (models/resumable/).
_register(PRESETS["mnist-ref"].replace(
    name="mnist-long",
    model={"dropout": 0.1},
    train={"steps": 32_000, "ema_warmup": "release", "snapshot_every": 2000, "keep_snapshots": 64,
           "eval_every": 1000, "eval_n": 500, "ckpt_every": 250},
    notes="Long IHDM reference: mnist-ref at 8x the training images, dropout 0.1, EMA warm-up; CPU."))
# The colour model at the paper's sigma_B_max = image size (Sec. 4, Fig. 29): 28 on 28 x 28 digits.
_register(PRESETS["mnist-long"].replace(
    name="mnist-colour-long", data={"dataset": "mnist5k-colour", "channels": 3},
    process={"sigma_max": 28.0},
    notes="Long colour reference (Fig. 7a): mnist-long on the coloured digits, sigma_B_max 28 (image size)."))
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
    """A named preset, optionally with section overrides (see ``Config.replace``). An unknown
    preset is a KeyError; an unknown or invalid field a ConfigError."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known presets: {', '.join(preset_names())}")
    cfg = PRESETS[name]
    return cfg.replace(**overrides) if overrides else cfg


def _project_root() -> Path | None:
    root = Path(__file__).resolve().parents[2]
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
