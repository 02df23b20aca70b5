"""Trained runs, loaded: from ``runs/`` (trained here, cached by config identity) or from the
shipped reference models under ``models/`` (:mod:`ihdm_core.training.shipped`).

A :class:`Run` is the EMA network with the process to sample it and the config it was trained
with; :func:`load_run` finds one, :func:`is_available` says whether one is there to find.
Training a missing run is :func:`ihdm_core.training.train.ensure_trained`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .build import build_model, build_process, resolve_device
from .checkpoints import CHECKPOINT, load_checkpoint
from .config import Config, from_dict
from .data import load_dataset
from .hardware import describe
from .log import METRICS
from .paths import relative_path, run_dir_for
from .presets import get_preset
from .shipped import (load_shipped_state, retrain_requested, shipped_cache_dir, shipped_dir,
                      shipped_info)

__all__ = ["Run", "load_run", "is_available", "sampling_process", "HARDWARE"]

# Written by the trainer into the run folder: one hardware record per (re)start, so a run says
# where it was trained even when its folder was copied to another machine.
HARDWARE = "hardware.jsonl"


@dataclass
class Run:
    net: torch.nn.Module
    process: object
    cfg: Config
    step: int
    # the run's folder; for a shipped model, its score cache under runs/shipped/
    run_dir: Path
    source: str = "trained"  # "trained" (runs/) or "shipped" (models/)

    def sampled_with(self, steps: int | None = None, **process) -> "Run":
        """The same weights sampled another way: ``steps`` for a continuous-time diffusion, and
        sampling options of ``process`` (``grid``, ``clamp_dct``, ``clip_denoised``) that are
        not part of the run's identity."""
        cfg = self.cfg.replace(process=process) if process else self.cfg
        if cfg.identity() != self.cfg.identity():
            raise ValueError(f"{sorted(process)} change what was trained; "
                             "only sampling options may differ")
        proc = sampling_process(cfg, self.process.device, steps=steps)
        return dataclasses.replace(self, cfg=cfg, process=proc)

    @property
    def provenance(self) -> str:
        """One caption phrase: which weights these are, where they were trained, steps, hardware."""
        if self.source == "shipped":
            hw = shipped_info(self.cfg).get("hardware", "hardware not recorded")
            return f"shipped reference model {self.cfg.name} ({self.step:,} steps on {hw})"
        return (f"{self.cfg.name} trained into {relative_path(self.run_dir)} "
                f"({self.step:,} steps on {trained_on(self.run_dir)})")


def trained_on(run_dir) -> str:
    """The hardware a run folder was trained on, from the records the trainer left in it."""
    path = Path(run_dir) / HARDWARE
    if not path.exists():
        return "hardware not recorded"
    seen = []
    for line in path.read_text().splitlines():
        if line.strip() and describe(json.loads(line)) not in seen:
            seen.append(describe(json.loads(line)))
    return " and ".join(seen) if seen else "hardware not recorded"


def sampling_process(cfg: Config, device=None, steps: int | None = None):
    """The process to sample ``cfg`` with: its own, on another number of steps for continuous-time
    diffusions, with the training data's DCT range when ``process.clamp_dct`` asks for it."""
    rng = None
    if cfg.process.clamp_dct:
        from ..model.diffusion import dct_range

        rng = tuple(r.to(resolve_device(device)) for r in dct_range(load_dataset(cfg.data)))
    return build_process(cfg, resolve_device(device), steps=steps, dct_range=rng)


def _load_shipped(cfg: Config, device) -> Run:
    state, meta = load_shipped_state(cfg)
    net = build_model(cfg)
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise RuntimeError(f"{shipped_dir(cfg)}: the shipped weights do not fit the network of "
                           f"{cfg.name}: {str(err).splitlines()[0]}") from None
    net.to(device).eval().requires_grad_(False)
    cache = shipped_cache_dir(cfg)
    cache.mkdir(parents=True, exist_ok=True)
    log = shipped_dir(cfg) / METRICS
    if log.exists():  # chapters read the training log next to the scores
        (cache / METRICS).write_bytes(log.read_bytes())
    step = int(meta.get("step", cfg.train.steps))
    return Run(net, sampling_process(cfg, device), cfg, step, cache, "shipped")


def uses_shipped(cfg, retrain: bool | None = None) -> bool:
    """Whether ``cfg`` loads shipped weights: one ships for its identity and no retrain is asked."""
    return (isinstance(cfg, Config) and not retrain_requested(retrain)
            and shipped_dir(cfg) is not None)


def is_available(cfg: Config, retrain: bool | None = None) -> bool:
    """Whether ``load_run(cfg)`` finds weights: shipped ones, or a finished run in runs/."""
    if uses_shipped(cfg, retrain):
        return True
    path = run_dir_for(cfg) / CHECKPOINT
    return path.exists() and load_checkpoint(path)[0]["step"] >= cfg.train.steps


def load_run(cfg_or_dir: Config | str | Path, device=None, use_ema: bool = True,
             retrain: bool | None = None) -> Run:
    """Load a trained run: a Config (looked up by identity), a preset name or a run folder.

    A config whose identity ships under ``models/`` loads the shipped EMA weights (verified by
    SHA-256), unless a retrain is asked for (``retrain=True`` or ``IHDM_RETRAIN=1``): then only
    runs trained here count."""
    if isinstance(cfg_or_dir, str) and not Path(cfg_or_dir).exists():
        cfg_or_dir = get_preset(cfg_or_dir)
    if use_ema and uses_shipped(cfg_or_dir, retrain):
        return _load_shipped(cfg_or_dir, resolve_device(device))
    is_cfg = isinstance(cfg_or_dir, Config)
    run_dir = run_dir_for(cfg_or_dir) if is_cfg else Path(cfg_or_dir)
    path = run_dir / CHECKPOINT
    if not path.exists():
        name = cfg_or_dir.name if is_cfg else run_dir.name
        raise FileNotFoundError(f"no trained run at {run_dir}; train it first with "
                                f"`python -m ihdm_core train --preset {name}` "
                                "(or ensure_trained(cfg))")
    device = resolve_device(device)
    ckpt = load_checkpoint(path)[0]
    cfg = from_dict(ckpt["config"])
    net = build_model(cfg)
    net.load_state_dict(ckpt["ema" if use_ema else "model"])  # strict: a mismatch is an error
    net.to(device).eval().requires_grad_(False)
    return Run(net, sampling_process(cfg, device), cfg, ckpt["step"], run_dir)
