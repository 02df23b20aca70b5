"""Run configuration: the schema (plain frozen dataclasses), its validation and the run identity.

A run is identified by its config: ``Config.identity()`` hashes every field that changes
what gets trained (network, process, data, optimisation, seed) and none that only changes
how (logging, checkpoint interval, loader workers). Two configs with the same identity
share one cached run directory, so a notebook re-run reuses the checkpoint. The named configs
(the paper's and the book's) are in :mod:`ihdm_core.training.presets`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field, fields, replace

from .checks import (ConfigError, check_bool, check_choice, check_float, check_int, check_int_tuple,
                     check_str, not_allowed)

__all__ = ["ModelConfig", "ProcessConfig", "DataConfig", "TrainConfig", "Config", "from_dict",
           "PROCESS_KINDS", "DATASETS", "FOLDER_SETS", "FOLDER_PREFIX"]

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
# The data sets by name (ihdm_core.training.data loads them): those read from a folder you provide
# map to (their folder under the data root, their image size).
FOLDER_SETS = {"afhq64": ("afhq", 64), "afhq256": ("afhq", 256), "ffhq128": ("ffhq", 128),
               "ffhq256": ("ffhq", 256), "lsun_church128": ("lsun_church", 128)}
DATASETS = ("mnist5k", "mnist5k-colour", "mnist", "cifar10", *FOLDER_SETS)
# Any other folder of images: "folder:/absolute/path".
FOLDER_PREFIX = "folder:"


# --- validation: each section checks its fields with ihdm_core.training.checks -------------
_SECTION = {"ModelConfig": "model", "ProcessConfig": "process", "DataConfig": "data",
            "TrainConfig": "train", "Config": "config"}


def _where(obj, name: str) -> str:
    return f"{_SECTION.get(type(obj).__name__, type(obj).__name__)}.{name}"


def _bad(obj, name: str, value, allowed: str) -> ConfigError:
    return not_allowed(_where(obj, name), value, allowed)


def _int(obj, name: str, lo: int | None = None, optional: bool = False) -> None:
    check_int(getattr(obj, name), _where(obj, name), lo, optional)


def _float(obj, name: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
           hi_open: bool = False, optional: bool = False) -> None:
    check_float(getattr(obj, name), _where(obj, name), lo, hi, lo_open, hi_open, optional)


def _bool(obj, name: str, optional: bool = False) -> None:
    check_bool(getattr(obj, name), _where(obj, name), optional)


def _choice(obj, name: str, allowed: tuple) -> None:
    check_choice(getattr(obj, name), _where(obj, name), allowed)


def _int_tuple(obj, name: str, lo: int, nonempty: bool) -> None:
    # frozen dataclass: the list a JSON round trip gives is stored back as a tuple
    object.__setattr__(obj, name,
                       check_int_tuple(getattr(obj, name), _where(obj, name), lo, nonempty))


def _str(obj, name: str) -> None:
    check_str(getattr(obj, name), _where(obj, name))


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
        """How many times the U-Net halves the image: once between consecutive channel_mult
        levels."""
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
            raise ConfigError(f"process.sigma_min={self.sigma_min!r} is not allowed: must be <= "
                              f"process.sigma_max "
                              f"({self.sigma_max!r})")
        if self.beta_start > self.beta_end:
            raise ConfigError(f"process.beta_start={self.beta_start!r} is not allowed: must be <= "
                              f"process.beta_end "
                              f"({self.beta_end!r})")
        if self.logsnr_min >= self.logsnr_max:
            raise ConfigError(f"process.logsnr_min={self.logsnr_min!r} is not allowed: must be < "
                              f"process.logsnr_max ({self.logsnr_max!r})")
        if self.kind == "ihdm" and self.time != "discrete":
            raise ConfigError(f"process.time={self.time!r} is not allowed with "
                              f"process.kind='ihdm': IHDM is "
                              f"discrete (continuous time is for kind ddpm or blurring)")
        if self.kind == "ddpm" and self.time == "continuous" and self.beta_schedule != "cosine":
            raise ConfigError(f"process.beta_schedule={self.beta_schedule!r} is not allowed with "
                              f"process.time='continuous': continuous time needs "
                              f"beta_schedule='cosine'")
        if self.kind == "ddpm" and self.beta_schedule == "linear" and self.time == "discrete" \
                and self.beta_end * 1000.0 / self.K >= 1:
            # Ho et al.'s betas are given for 1000 steps and scaled by 1000/K
            # (ihdm_core.model.diffusion).
            raise ConfigError(f"process.K={self.K!r} is not allowed with linear betas: beta_end x "
                              f"1000/K = "
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
                raise _bad(self, "dataset", self.dataset,
                           "a folder data set is 'folder:' and an absolute path")
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
                       f"must divide train.batch_size={self.batch_size} (micro-batches of equal "
                       f"size)")


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
            raise ConfigError(f"config.name={self.name!r} is not allowed: must be a non-empty "
                              f"string without '/'")
        _str(self, "notes")
        for key, cls in (("model", ModelConfig), ("process", ProcessConfig), ("data", DataConfig),
                         ("train", TrainConfig)):
            if not isinstance(getattr(self, key), cls):
                raise ConfigError(f"config.{key} must be a {cls.__name__}, got "
                                  f"{type(getattr(self, key)).__name__}")
        m, d = self.model, self.data
        if d.image_size % m.downsampling:
            raise ConfigError(
                f"data.image_size={d.image_size} is not allowed with "
                f"model.channel_mult={m.channel_mult}: the "
                f"U-Net halves the image {len(m.channel_mult) - 1} times, so the size must be "
                f"divisible by "
                f"{m.downsampling}")
        have = [d.image_size // 2**i for i in range(len(m.channel_mult))]
        missing = [r for r in m.attn_resolutions if r not in have]
        if missing:
            raise ConfigError(
                f"model.attn_resolutions={m.attn_resolutions} is not allowed: "
                f"{', '.join(map(str, missing))} "
                f"is not a resolution of this network (image {d.image_size}, channel_mult "
                f"{m.channel_mult}: "
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
                raise ConfigError(f"unknown config section {key!r}; the sections are: "
                                  f"{', '.join(_CONFIG_FIELDS)}")
            cur = getattr(self, key)
            if isinstance(value, dict) and dataclasses.is_dataclass(cur):
                check_keys(key, type(cur), value)
            nested = isinstance(value, dict) and dataclasses.is_dataclass(cur)
            out[key] = replace(cur, **value) if nested else value
        return replace(self, **out)


_CONFIG_FIELDS = tuple(f.name for f in fields(Config))
SECTIONS = {"model": ModelConfig, "process": ProcessConfig, "data": DataConfig,
            "train": TrainConfig}


def check_keys(section: str, cls, values: dict) -> None:
    known = [f.name for f in fields(cls)]
    unknown = [k for k in values if k not in known]
    if unknown:
        raise ConfigError(f"unknown field {section}.{unknown[0]}; the fields of {section} are: "
                          f"{', '.join(known)}")


def _identity_dict(obj):
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in fields(obj):
            mode = f.metadata.get("identity", True)
            value = getattr(obj, f.name)
            if mode is False or f.name == "name" or (mode == "unless-default"
                                                     and value == f.default):
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
