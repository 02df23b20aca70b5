"""The recipe search: arms of a base preset, each trained on the same CPU budget.

Quality per CPU-second is the axis, not quality per step: a wider network or a larger batch costs
more per step. Each arm's budget in steps is therefore ``budget_seconds x its steps/s``, with its
steps per CPU-second measured by :func:`measure_throughput` (one process, one thread, its own
CPU time), because the wall time of arms trained side by side is not comparable; arms whose steps
cost the same (:func:`compute_key`) share one measurement. The arms and the
base are ordinary configs (identities, run folders, cached scores); ``scripts/recipe_search.py``
trains and scores them and writes the table.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .config import Config
from .presets import get_preset

__all__ = ["Arm", "ARMS", "SMOKE_ARMS", "arm_config", "budget_steps", "measure_throughput",
           "compute_key", "cached_throughput"]


@dataclass(frozen=True)
class Arm:
    """One recipe: ``changes`` are config sections applied to the base preset (as
    ``Config.replace``);
    ``question`` is the search dimension it answers."""
    name: str
    question: str
    changes: dict = field(default_factory=dict)


# The dimensions, each varied alone around the base (mnist-ref's recipe with the EMA
# warm-up). sigma and delta move together (delta = 1.25 sigma, the paper's default ratio).
ARMS = (
    Arm("base", "reference"),
    Arm("K100", "K = 50 vs 100", {"process": {"K": 100}}),
    Arm("lr5e-4", "learning rate", {"train": {"lr": 5e-4}}),
    Arm("lr2e-3", "learning rate", {"train": {"lr": 2e-3}}),
    Arm("batch16", "batch size", {"train": {"batch_size": 16}}),
    Arm("batch64", "batch size", {"train": {"batch_size": 64}}),
    Arm("dropout0.1", "dropout", {"model": {"dropout": 0.1}}),
    Arm("sigma0.005", "sigma", {"process": {"sigma": 0.005, "delta": 0.00625}}),
    Arm("sigma0.02", "sigma", {"process": {"sigma": 0.02, "delta": 0.025}}),
    Arm("ema0.99", "EMA decay", {"train": {"ema": 0.99}}),
    Arm("ema0.9999", "EMA decay", {"train": {"ema": 0.9999}}),
    Arm("width16", "network width", {"model": {"base_channels": 16}}),
    Arm("width48", "network width", {"model": {"base_channels": 48}}),
    Arm("depth2", "network depth", {"model": {"num_res_blocks": 2}}),
    # The base recipe again with other training seeds: how far an arm moves by chance alone.
    Arm("seed1", "training seed (noise floor)", {"train": {"seed": 1}}),
    Arm("seed2", "training seed (noise floor)", {"train": {"seed": 2}}),
)
SMOKE_ARMS = (ARMS[0], ARMS[1], ARMS[3])  # arms that differ from mnist-smoke


def arm_config(base: str | Config, arm: Arm, steps: int) -> Config:
    """The arm's config: the base with the arm's changes, trained ``steps`` steps (its cosine decay
    and warm-up fitted to that length), named ``<base>-search-<arm>``."""
    cfg = get_preset(base) if isinstance(base, str) else base
    train = {**arm.changes.get("train", {}), "steps": steps,
             "warmup": min(cfg.train.warmup, max(steps // 10, 1)), "ema_warmup": "release"}
    sections = {**arm.changes, "train": train}
    return cfg.replace(name=f"{cfg.name}-search-{arm.name}", **sections)


def budget_steps(budget_seconds: float, steps_per_second: float) -> int:
    """Steps an arm gets for ``budget_seconds`` of training at its measured speed."""
    if budget_seconds <= 0 or steps_per_second <= 0:
        raise ValueError(f"budget ({budget_seconds}) and speed ({steps_per_second}) must be "
                         f"positive")
    return max(1, round(budget_seconds * steps_per_second))


def measure_throughput(cfg: Config, *, steps: int = 30, skip: int = 10, threads: int = 1) -> float:
    """Training steps per CPU-second of ``cfg`` through the real training loop, in this process
    with ``threads`` threads, into throw-away folders. The CPU time of a ``skip``-step run is
    subtracted from that of a ``steps``-step run, so construction and the first, slower steps
    cancel. CPU time, not wall time: on a machine shared with other jobs the process's own CPU
    seconds are what a budget is made of (with one thread, a CPU-second is a core-second), and
    they are far less disturbed by the neighbours than the wall clock is."""
    from .train import train

    if steps <= skip or skip < 1:
        raise ValueError(f"need 1 <= skip ({skip}) < steps ({steps})")
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    cpu = {}
    try:
        for n in (skip, steps):
            probe = cfg.replace(train={"steps": n, "log_every": n, "ckpt_every": n,
                                       "snapshot_every": 0, "eval_every": 0, "grid_every": 0})
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.process_time()
                train(probe, run_dir=Path(tmp) / "run", progress=False)
                cpu[n] = time.process_time() - t0
    finally:
        torch.set_num_threads(old)
    return (steps - skip) / max(cpu[steps] - cpu[skip], 1e-9)


def compute_key(cfg: Config, threads: int) -> str:
    """What the cost of a training step depends on: the network, the batch, the image shape and
    how the step runs (threads, precision, compile, memory format). Not the learning rate, the
    EMA, sigma, delta, K (one random level per image, whatever K) or the run's length. Arms that
    differ only in those share one measured speed, and so one number of steps: a 20-step probe on
    a shared machine scatters by 10-20%, which would otherwise hand such arms different budgets."""
    t, d = cfg.train, cfg.data
    blob = json.dumps({"model": dataclasses.asdict(cfg.model), "batch": t.batch_size,
                       "accum": t.accum_steps, "shape": [d.channels, d.image_size],
                       "how": [t.amp, t.compile, t.channels_last, t.fused_adam]}, sort_keys=True)
    return f"{hashlib.sha256(blob.encode()).hexdigest()[:12]}-t{threads}"


def cached_throughput(cfg: Config, cache: Path | None = None, *, threads: int = 1,
                      probe_steps: int = 30) -> float:
    """:func:`measure_throughput` of ``cfg``, measured once and kept in the JSON file ``cache``
    (default ``<runs>/recipe-search/throughput.json``, shared by the recipe search and the
    learning curves) under its :func:`compute_key`."""
    if cache is None:
        from .paths import runs_root

        cache = runs_root() / "recipe-search" / "throughput.json"
    speeds = load_json(cache)
    key = compute_key(cfg, threads)
    if key not in speeds:
        speeds[key] = measure_throughput(cfg, steps=probe_steps, skip=probe_steps // 3,
                                         threads=threads)
        save_json(cache, speeds)
    return speeds[key]


def load_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def save_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{time.time_ns()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
