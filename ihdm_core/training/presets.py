"""Named configs: the paper's (Tables 1 and 2, App. B) and the book's.

Paper presets reproduce Tables 1 and 2 of the paper (App. B); ``*-quick`` presets are small CPU
runs for the book's default profile, ``*-smoke`` tiny ones for tests and CI, ``*-ref`` the
reference models shipped in ``models/``, ``*-gpu`` the gpu profile's. Every preset's run name is
frozen in tests/test_identities.py.
"""

from __future__ import annotations

from .config import Config, DataConfig, ModelConfig, ProcessConfig, TrainConfig

__all__ = ["PRESETS", "get_preset", "preset_names", "sigma0"]

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
                 steps=100_000,
                 notes="Step count for MNIST is not given in the paper; 100k chosen."))
_register(_paper("cifar10", "cifar10", 32, 3, (1, 2, 2, 2), 2e-4, (8, 4), 0.999, 128, 4, 200, 24.0,
                 0.01325, steps=400_000))
_register(_paper("afhq64", "afhq64", 64, 3, (1, 2, 3, 4), 1e-4, (16, 8), 0.999, 128, 2, 200, 32.0,
                 0.0125, steps=100_000, hflip=True))
_register(_paper("afhq256", "afhq256", 256, 3, (1, 2, 3, 4, 5), 2e-5, (64, 32, 16), 0.9999, 32, 2,
                 200, 128.0, 0.01275, steps=400_000, hflip=True))
_register(_paper("ffhq128", "ffhq128", 128, 3, (1, 2, 3, 4, 5), 2e-5, (32, 16, 8), 0.999, 32, 2,
                 200, 128.0, 0.0125, steps=400_000,
                 notes="The colour-disentanglement model (Fig. 7a, 29); its step count is not "
                 "given."))
_register(_paper("ffhq256", "ffhq256", 256, 3, (1, 2, 3, 4, 5), 2e-5, (64, 32, 16), 0.9999, 32, 2,
                 200, 128.0, 0.0125, steps=800_000))
_register(_paper("lsun_church128", "lsun_church128", 128, 3, (1, 2, 3, 4, 5), 2e-5, (32, 16, 8),
                 0.999, 32, 2, 400, 64.0, 0.0125, steps=1_000_000))

# --- CPU presets -------------------------------------------------------------------------
# quick: the book's default profile on 2 CPU cores with the 5,000 offline MNIST digits.
_register(Config(
    name="mnist-quick",
    model=ModelConfig(base_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1,
                      attn_resolutions=(7,), dropout=0.0),
    process=ProcessConfig(K=50, sigma_min=0.5, sigma_max=20.0, sigma=0.01, delta=0.0125),
    data=DataConfig(dataset="mnist5k", image_size=28, channels=1),
    # Width, batch, steps and channels_last were measured for the half-hour book:
    # docs/tuning-history.md.
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
    train=TrainConfig(steps=4000, batch_size=32, lr=1e-3, warmup=200, lr_schedule="cosine",
                      ema=0.999,
                      ema_warmup="none", log_every=50, ckpt_every=500, num_workers=0,
                      channels_last=False),
    notes="Reference model shipped with the book: 5,000 real MNIST digits, trained on CPU; not "
    "the paper's "
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
              "DDPM (1000 linear-beta steps, eps prediction) on the IHDM preset's U-Net and "
              "training.")
    _baseline(_data, f"{_data}-blurring", {**_BLURRING, "K": 1000},
              "Blurring Diffusion (1000 steps, sigma_B_max 20) on the IHDM preset's U-Net and "
              "training.")
    _baseline(f"{_data}-quick", f"{_data}-ddpm-quick", _DDPM,
              f"DDPM at the budget of {_data}-quick (same network, steps, K).")
    _baseline(f"{_data}-quick", f"{_data}-blurring-quick", _BLURRING,
              f"Blurring Diffusion at the budget of {_data}-quick (same network, steps, K).")
    # Ho et al.'s linear betas need K >= 20 (beta_end x 1000/K < 1); the smoke K is 10.
    _baseline(f"{_data}-smoke", f"{_data}-ddpm-smoke", {**_DDPM, "beta_schedule": "cosine"},
              "Tiny test preset.")
    _baseline(f"{_data}-smoke", f"{_data}-blurring-smoke", _BLURRING, "Tiny test preset.")

# The reference baselines: mnist-ref's network, data and training budget; continuous time (trained
# on t ~ U(0, 1], sampled on any number of steps; K = 250 is the default number) and v-prediction
# (x_hat = (a z - sigma v) / (a alpha + sigma^2) never divides by the tiny alpha of blurred-out
# frequencies, where eps-prediction amplifies its error; chapter 9 measures the options).
_REF_DIFFUSION = {"time": "continuous", "prediction": "v", "K": 250, "beta_schedule": "cosine"}
_baseline("mnist-ref", "mnist-ddpm-ref", {**_REF_DIFFUSION, "kind": "ddpm"},
          "DDPM (cosine schedule, continuous time, v-prediction) at the budget of mnist-ref.")
_baseline("mnist-ref", "mnist-blurring-ref",
          {**_REF_DIFFUSION, "kind": "blurring", "sigma_max": 20.0},
          "Blurring Diffusion (sigma_B_max 20, continuous time, v-prediction) at the budget of "
          "mnist-ref.")

# The sigma = 0 model of chapter 4 (Fig. 13): defined once here; the profiles' 'sigma0' role
# derives it from their IHDM model with sigma0(), and mnist-ref-sigma0 is the one that ships.
def sigma0(cfg: Config, steps: int | None = None) -> Config:
    """``cfg`` trained without noise (sigma = 0), for ``steps`` steps (default: ``cfg``'s)."""
    return cfg.replace(name=f"{cfg.name}-sigma0", process={"sigma": 0.0},
                       train={"steps": steps or cfg.train.steps})


_register(sigma0(PRESETS["mnist-ref"], steps=1000).replace(
    notes="mnist-ref trained without noise (sigma = 0): the failure mode of Fig. 13, shipped with "
          "the book."))

# The smoke book samples the diffusions as the reference ones are sampled: continuous time,
# v-prediction.
_baseline("mnist-smoke", "mnist-ddpm-smoke-ct", {**_REF_DIFFUSION, "kind": "ddpm", "K": 10},
          "Tiny test preset.")
_baseline("mnist-smoke", "mnist-blurring-smoke-ct",
          {**_REF_DIFFUSION, "kind": "blurring", "sigma_max": 20.0,
                                                     "K": 10}, "Tiny test preset.")

# The prediction ablation of chapter 9: Blurring Diffusion in continuous time with eps, v and x
# prediction on mnist-quick's network, trained 2,000 steps with a cosine decay (small enough to
# ship all three beside the reference models).
for _pred in ("eps", "v", "x"):
    _register(PRESETS["mnist-quick"].replace(
        name=f"mnist-blurring-{_pred}-ablation",
        process={**_REF_DIFFUSION, "kind": "blurring", "sigma_max": 20.0, "prediction": _pred},
        # shipped, trained without
        train={"steps": 2000, "lr_schedule": "cosine", "ema_warmup": "none"},
        notes=f"Blurring Diffusion, continuous time, {_pred}-prediction: the prediction ablation "
        f"of chapter 9."))


# The colour model (Fig. 7a): the same digits with random foreground and background colours
# (data set mnist5k-colour), on which the prior state u_K should fix the colours and the sampling
# noise the shape. sigma_B_max = 20 on 28 x 28 leaves the mean colour: measured with
# ihdm_core.model.heat on 500 training images, u_K differs from the per-channel mean image by at
# most 0.0055 (mean |.| 0.00035, 0.36 % of the image's deviation from its mean in L2), below sigma =
# 0.01. The reference keeps mnist-ref's network, process and optimisation; 3,000 steps fit its CPU
# budget.
_register(PRESETS["mnist-ref"].replace(
    name="mnist-colour-ref", data={"dataset": "mnist5k-colour", "channels": 3},
    train={"steps": 3000},
    notes="Colour-disentanglement reference (Fig. 7a): mnist-ref's setting on the coloured 5,000 "
    "digits."))
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
    notes="Long IHDM reference: mnist-ref at 8x the training images, dropout 0.1, EMA warm-up; "
    "CPU."))
# The colour model at the paper's sigma_B_max = image size (Sec. 4, Fig. 29): 28 on 28 x 28 digits.
_register(PRESETS["mnist-long"].replace(
    name="mnist-colour-long", data={"dataset": "mnist5k-colour", "channels": 3},
    process={"sigma_max": 28.0},
    notes="Long colour reference (Fig. 7a): mnist-long on the coloured digits, sigma_B_max 28 "
    "(image size)."))
# DDPM on mnist-long's recipe and schedule, for the learning curve of chapter 3: its snapshots
# compare with mnist-long's at equal images seen (the two share the network, data, lr schedule).
_baseline("mnist-long", "mnist-ddpm-long", {**_REF_DIFFUSION, "kind": "ddpm"},
          "DDPM (mnist-ddpm-ref's process) on mnist-long's recipe and schedule; learning curve.")
_baseline("mnist-long", "mnist-blurring-long",
          {**_REF_DIFFUSION, "kind": "blurring", "sigma_max": 20.0},
          "Blurring Diffusion (mnist-blurring-ref's process) on mnist-long's recipe and schedule; "
          "learning curve.")
_register(PRESETS["mnist-smoke"].replace(
    name="mnist-colour-smoke", data={"dataset": "mnist5k-colour", "channels": 3},
    notes="Tiny test preset."))


# gpu: the book's ``gpu`` profile, sized for about one hour on one H100-class GPU (UNMEASURED:
# no GPU has run it yet). The paper's MNIST process (K = 100, sigma_B_max 20) on the full 60,000
# torchvision digits with a U-Net four times mnist-ref's width in parameters (base 64, two
# residual blocks per level) and the paper's batch of 128; 30k steps with a cosine decay instead
# of the paper's 100k at a constant rate, so the final weights are settled within the hour. At the
# assumed ~40 steps/s (bf16, compiled) the three main models take ~13 min each. The baselines
# share network and budget and are continuous-time v-prediction diffusions like the references.
_register(PRESETS["mnist"].replace(
    name="mnist-gpu",
    model={"base_channels": 64, "channel_mult": (1, 2, 2), "num_res_blocks": 2,
           "attn_resolutions": (7,), "dropout": 0.1},
    train={"steps": 30_000, "batch_size": 128, "lr": 2e-4, "warmup": 1000, "lr_schedule": "cosine",
           "ema": 0.999, "log_every": 200, "ckpt_every": 5000, "compile": True},
    notes="The gpu profile's IHDM model: the paper's MNIST process on the real 60,000 digits, a "
    "base-64 U-Net, "
          "30k steps; sized for one H100-class GPU (unmeasured)."))
_baseline("mnist-gpu", "mnist-ddpm-gpu", {**_REF_DIFFUSION, "kind": "ddpm"},
          "DDPM (cosine schedule, continuous time, v-prediction) at the budget of mnist-gpu.")
_baseline("mnist-gpu", "mnist-blurring-gpu",
          {**_REF_DIFFUSION, "kind": "blurring", "sigma_max": 20.0},
          "Blurring Diffusion (sigma_B_max 20, continuous time, v-prediction) at the budget of "
          "mnist-gpu.")
# Only the 5,000 offline digits exist in colour; a third of the budget keeps the hour.
_register(PRESETS["mnist-gpu"].replace(
    name="mnist-colour-gpu", data={"dataset": "mnist5k-colour", "channels": 3},
    train={"steps": 10_000},
    notes="Colour-disentanglement model of the gpu profile: mnist-gpu's setting on the coloured "
    "5,000 digits."))


def preset_names() -> list[str]:
    return sorted(PRESETS)


def get_preset(name: str, **overrides) -> Config:
    """A named preset, optionally with section overrides (see ``Config.replace``). An unknown
    preset is a KeyError; an unknown or invalid field a ConfigError."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known presets: {', '.join(preset_names())}")
    cfg = PRESETS[name]
    return cfg.replace(**overrides) if overrides else cfg
