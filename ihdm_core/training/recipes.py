"""The recipe search: arms of a base preset, each trained on the same CPU budget.

Quality per CPU-second is the axis, not quality per step: a wider network or a larger batch costs
more per step. Each arm's budget in steps is therefore ``budget_seconds x its steps/s``, with its
steps/s measured *alone* (:func:`measure_throughput`, one process, a fixed number of threads),
because the wall time of arms trained side by side is not comparable. The arms and the base are
ordinary configs (identities, run folders, cached scores); ``scripts/recipe_search.py`` trains
and scores them and writes the table.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .config import Config, get_preset

__all__ = ["Arm", "ARMS", "SMOKE_ARMS", "arm_config", "budget_steps", "measure_throughput"]


@dataclass(frozen=True)
class Arm:
    """One recipe: ``changes`` are config sections applied to the base preset (as ``Config.replace``);
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
        raise ValueError(f"budget ({budget_seconds}) and speed ({steps_per_second}) must be positive")
    return max(1, round(budget_seconds * steps_per_second))


def measure_throughput(cfg: Config, *, steps: int = 30, skip: int = 10, threads: int = 1) -> float:
    """Training steps per second of ``cfg`` through the real training loop, in this process
    with ``threads`` threads, into a throw-away folder: the mean over steps ``skip+1..steps``
    (the first ones pay for allocation and warm caches). Run it with nothing else on the
    machine, or the number means nothing."""
    from .train import read_metrics, train

    if steps <= skip:
        raise ValueError(f"steps ({steps}) must exceed skip ({skip})")
    probe = cfg.replace(train={"steps": steps, "log_every": 1, "ckpt_every": steps,
                               "snapshot_every": 0, "eval_every": 0, "grid_every": 0})
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            train(probe, run_dir=Path(tmp) / "run", progress=False)
            recs = [r for r in read_metrics(Path(tmp) / "run") if r["step"] > skip]
    finally:
        torch.set_num_threads(old)
    seconds = sum(len(r["losses"]) / r["steps_per_s"] for r in recs)
    return sum(len(r["losses"]) for r in recs) / seconds


def load_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def save_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{time.time_ns()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
