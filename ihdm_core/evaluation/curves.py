"""Learning curves: sample quality against training images seen (and CPU seconds), from a run's
numbered snapshots, with an honest extrapolation of where a trend would reach a target.

Each point loads the EMA weights of one snapshot (``checkpoint-<step>.pt``) and scores them with
the book's cached scores (:func:`ihdm_core.evaluation.scores.score`): digit recognisability and FID
of samples drawn at the run's own delta (the paper's for IHDM presets) with a fixed seed, so
two points differ only by the weights. Recognisability carries its binomial standard error.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..training.build import build_model
from ..training.checkpoints import list_snapshots, load_checkpoint, snapshots
from ..training.config import from_dict
from ..training.log import read_metrics
from ..training.runs import Run, sampling_process
from .scores import score

__all__ = [
    "snapshot_steps",
    "snapshot_run",
    "curve_point",
    "learning_curve",
    "binomial_se",
    "committed_curve",
    "extrapolate",
    "CURVE_COLUMNS",
]

CURVE_COLUMNS = (
    "config",
    "step",
    "images_seen",
    "train_seconds",
    "cpu_seconds",
    "recognisability",
    "recognisability_se",
    "n_recognisability",
    "fid",
    "n_fid",
    "fid_reference_n",
    "min_class_share",
    "eval_loss",
    "delta",
    "seed",
)


def binomial_se(p: float, n: int) -> float:
    """Standard error of a share p measured on n independent samples."""
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    return math.sqrt(max(p * (1.0 - p), 0.0) / n)


def snapshot_steps(run_dir: str | Path) -> list[int]:
    """Steps of the snapshots kept on purpose (``train.snapshot_every``), oldest first; the
    numbered fallbacks of the last checkpoints are not points of a curve."""
    return [s["step"] for s in list_snapshots(run_dir)]


def snapshot_run(run_dir: str | Path, step: int, device="cpu") -> Run:
    """The EMA weights of the snapshot at ``step`` as a Run whose scores are cached in
    ``<run_dir>/curve/`` (keyed by identity and step, like every score)."""
    run_dir = Path(run_dir)
    path = dict(snapshots(run_dir)).get(step)
    if path is None:
        raise FileNotFoundError(
            f"{run_dir} has no snapshot at step {step}; it has {snapshot_steps(run_dir) or 'none'}"
        )
    ckpt = load_checkpoint(path, fallback=False, quiet=True)[0]
    cfg = from_dict(ckpt["config"])
    net = build_model(cfg)
    net.load_state_dict(ckpt["ema"])
    net.to(device).eval().requires_grad_(False)
    cache = run_dir / "curve"
    cache.mkdir(exist_ok=True)
    return Run(net, sampling_process(cfg, device), cfg, int(ckpt["step"]), cache)


def _seconds_until(records: list[dict], step: int) -> float | None:
    """Wall seconds the logged training steps up to ``step`` took (None if unlogged)."""
    done = [r for r in records if r["step"] <= step and r.get("steps_per_s")]
    if not done or done[-1]["step"] < step:
        return None
    return sum(len(r["losses"]) / r["steps_per_s"] for r in done)


def curve_point(
    run: Run,
    *,
    n_recog: int,
    n_fid: int,
    ref_n: int | None,
    seed: int = 0,
    steps_per_cpu_second: float | None = None,
    metrics: list[dict] | None = None,
    device="cpu",
) -> dict:
    """One row of :data:`CURVE_COLUMNS` for ``run`` (a snapshot or a finished run).

    ``cpu_seconds`` is the training budget the point cost, counted as steps divided by the
    preset's throughput measured alone (``steps_per_cpu_second``): wall time of runs trained beside
    other jobs is not comparable. ``train_seconds`` is the logged wall time, for the record."""
    rec = score(run, "recognisability", n=n_recog, seed=seed, progress=False)
    fid = (
        score(run, "fid", n=n_fid, seed=seed, ref_n=ref_n, device=device, progress=False)
        if n_fid
        else None
    )
    hist = rec["details"]["class_histogram"]
    digits = sum(hist)
    evals = {r["step"]: r["eval_loss"] for r in (metrics or []) if r.get("kind") == "eval"}
    train = [r for r in (metrics or []) if r.get("kind", "train") == "train"]
    return {
        "config": run.cfg.name,
        "step": run.step,
        "images_seen": run.step * run.cfg.train.batch_size,
        "train_seconds": _seconds_until(train, run.step),
        "cpu_seconds": run.step / steps_per_cpu_second if steps_per_cpu_second else None,
        "recognisability": rec["value"],
        "recognisability_se": binomial_se(rec["value"], n_recog),
        "n_recognisability": n_recog,
        "fid": fid["value"] if fid else None,
        "n_fid": n_fid,
        "fid_reference_n": fid["reference_n"] if fid else None,
        "min_class_share": min(hist) / digits if digits else 0.0,
        "eval_loss": evals.get(run.step),
        "delta": rec["delta"],
        "seed": seed,
    }


def learning_curve(
    run_dir: str | Path,
    *,
    n_recog: int = 200,
    n_fid: int = 500,
    ref_n: int | None = 1000,
    seed: int = 0,
    steps: list[int] | None = None,
    steps_per_cpu_second: float | None = None,
    device="cpu",
    progress=None,
) -> list[dict]:
    """Score every snapshot of a run (or the given ``steps``), oldest first. ``progress`` is
    called with each finished row (a long curve reports as it goes)."""
    run_dir = Path(run_dir)
    metrics = read_metrics(run_dir, kind=None)
    rows = []
    for step in steps if steps is not None else snapshot_steps(run_dir):
        run = snapshot_run(run_dir, step, device)
        rows.append(
            curve_point(
                run,
                n_recog=n_recog,
                n_fid=n_fid,
                ref_n=ref_n,
                seed=seed,
                steps_per_cpu_second=steps_per_cpu_second,
                metrics=metrics,
                device=device,
            )
        )
        del run
        if progress is not None:
            progress(rows[-1])
    return rows


def extrapolate(images: list[float], quality: list[float], target: float, *, last: int = 4) -> dict:
    """Where quality would reach ``target`` if it kept rising linearly in log10(images seen), fitted
    by least squares to the ``last`` points. Returns {"slope_per_decade", "intercept",
    "images_at_target" (None if the trend does not rise), "points"}. A log-linear trend is an
    optimistic reading for a share bounded by 1; the book says so wherever it shows this."""
    if len(images) != len(quality):
        raise ValueError("images and quality must have the same length")
    x = np.log10(np.asarray(images, dtype=float))[-last:]
    y = np.asarray(quality, dtype=float)[-last:]
    if len(x) < 2 or np.ptp(x) == 0:
        raise ValueError("need at least two points at different numbers of images to fit a trend")
    slope, intercept = np.polyfit(x, y, 1)
    at = None if slope <= 0 else float(10 ** ((target - intercept) / slope))
    return {
        "slope_per_decade": float(slope),
        "intercept": float(intercept),
        "images_at_target": at,
        "points": int(len(x)),
        "target": target,
    }


def committed_curve(run_name: str, root: Path | None = None) -> dict | None:
    """The learning curve committed for a run (``models/curves/<run>.json``, written by
    ``scripts/learning_curve.py``), or None: {"run", "steps_per_cpu_second", "threads", "rows"}."""
    from ..training.paths import project_root

    base = root if root is not None else (project_root() or Path(".")) / "models" / "curves"
    path = Path(base) / f"{run_name}.json"
    if not path.exists():
        return None
    import json

    data = json.loads(path.read_text())
    missing = set(CURVE_COLUMNS) - set(data["rows"][0]) if data.get("rows") else set()
    if missing:
        raise ValueError(f"{path}: curve rows lack {sorted(missing)}")
    return data
