"""The tables of chapter 10 (reproduction status): the paper's FIDs beside ours, every score the
earlier chapters recorded, the pipeline's wall times and the training cost of each model.

Every number comes from a record on disk (``scores.jsonl``, the training log, the pipeline's
statistics) except the paper's own FIDs in :data:`PAPER_FID`, which are the paper's."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..evaluation.scores import read_scores, score
from ..training.presets import get_preset
from ..training.checkpoints import CHECKPOINT
from ..training.hardware import hardware_record
from ..training.log import read_metrics, training_seconds
from ..training.paths import run_dir_for
from ..training.runs import is_available, load_run
from .figures import read_index

__all__ = ["PAPER_FID", "ROLES", "paper_fid_rows", "available_runs", "score_rows", "training_rows",
           "pipeline_stats", "hardware", "execution_rows", "missing_files"]

# (preset, data set, FID in the paper (Fig. 5a, Tables 1-2), samples the paper's FID used (App.
# B.3))
PAPER_FID = [
    ("cifar10", "CIFAR-10 32x32", 18.96, 50_000),
    ("afhq64", "AFHQ 64x64", 14.78, 50_000),
    ("afhq256", "AFHQ 256x256", 43.49, 10_000),
    ("ffhq256", "FFHQ 256x256", 64.91, 10_000),
    ("lsun_church128", "LSUN-Churches 128x128", 45.06, 50_000),
]
# the models a profile trains, in table order
ROLES = ("ihdm", "long", "ddpm", "blurring", "sigma0", "colour", "colour_long")


def paper_fid_rows(profile: str, *, seed: int = 0, device=None) -> list[dict]:
    """One row per paper data set; only the ``paper`` profile evaluates ours, and only where the
    preset's checkpoint exists (otherwise the note says why the cell is empty)."""
    rows = []
    for preset, name, paper_fid, n in PAPER_FID:
        cfg = get_preset(preset)
        ckpt = run_dir_for(cfg) / CHECKPOINT
        ours, note = None, ""
        if profile != "paper":
            note = f"not run in the {profile} profile"
        elif not ckpt.exists():
            note = f"no checkpoint at {ckpt}"
        else:
            run = load_run(cfg, device=device)
            rec = score(run, "fid", n=n, seed=seed)
            ours, note = rec["value"], f"step {run.step}, {rec['reference']}"
        rows.append({"data set": name, "preset": f"{preset} [{cfg.identity()}]", "K": cfg.process.K,
                     "sigma_B,max": cfg.process.sigma_max, "delta": cfg.process.delta,
                     "FID (paper)": paper_fid, "FID (ours)": ours, "samples": n, "note": note})
    return rows


def available_runs(P, roles=ROLES, device="cpu") -> dict:
    """{role: loaded run} for the profile's models whose weights exist (shipped or trained here);
    a role that names the same model as an earlier one (a profile without a long run) is left
    out, so no score is listed twice."""
    runs, seen = {}, set()
    for role in roles:
        cfg = P.config(role)
        if cfg.identity() not in seen and is_available(cfg):
            runs[role] = load_run(cfg, device=device)
            seen.add(cfg.identity())
    return runs


def score_rows(runs: dict) -> list[dict]:
    """Every score recorded for the current checkpoint of each run ({role: run}); records of an
    earlier checkpoint or another config (a different identity or step) are left out."""
    records = []
    for role, run in runs.items():
        for rec in read_scores(run):
            if (rec["run"].get("identity") != run.cfg.identity()
                    or rec["run"].get("step") != run.step):
                continue
            steps = (rec.get("key") or {}).get("sampler", {}).get("steps")
            records.append({"model": role, "config": f"{run.cfg.name} [{run.cfg.identity()}]",
                            "weights": run.source,
                            "step": run.step, "metric": rec["metric"], "value": rec["value"],
                            "n": rec.get("n_samples"), "sampling steps": steps,
                            "delta": rec.get("delta"),
                            "seed": rec.get("seed"), "reference": rec.get("reference"),
                            "time (s)": round(rec.get("time_s", {}).get("total", float("nan")), 1)})
    return sorted(records,
                  key=lambda r: (r["model"], r["metric"],
                                 r["delta"] if r["delta"] is not None else -1))


def training_rows(runs: dict) -> list[dict]:
    """Steps, final loss and wall time of each run's training log (runs without a log are left
    out)."""
    rows = []
    for role, run in runs.items():
        log = read_metrics(run.run_dir)
        if not log:
            continue
        seconds = training_seconds(run.run_dir)
        rows.append({"model": role, "config": f"{run.cfg.name} [{run.cfg.identity()}]",
                     "weights": run.provenance,
                     "steps": log[-1]["step"], "final loss": log[-1]["loss"],
                     "train time (s)": round(seconds, 1),
                     "steps/s": round(log[-1]["step"] / seconds, 2) if seconds else None})
    return rows


def pipeline_stats() -> dict | None:
    """The statistics the book pipeline hands its chapters through ``$IHDM_PIPELINE_STATS``, if
    any."""
    path = os.environ.get("IHDM_PIPELINE_STATS")
    return json.loads(Path(path).read_text()) if path and Path(path).exists() else None


def hardware(stats: dict | None) -> dict:
    """The pipeline's hardware record, else this process's."""
    return (stats or {}).get("hardware") or hardware_record()


def execution_rows(stats: dict) -> list[dict]:
    """Wall time per executed chapter and their total."""
    rows = [{"chapter": c["chapter"], "seconds": c["seconds"], "status": c["status"]}
            for c in stats["chapters"]]
    rows.append({"chapter": "total so far (this chapter excluded)",
                 "seconds": round(sum(c["seconds"] for c in stats["chapters"]), 1), "status": ""})
    return rows


def missing_files(directory) -> tuple[dict, list[str]]:
    """(the figure index of ``directory``, the files it lists that are not there)."""
    index = read_index(directory)
    return index, [f for e in index.values() for f in e["files"]
                   if not (Path(directory) / f).exists()]
