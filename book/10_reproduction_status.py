# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10. Reproduction status
#
# Every number the paper reports, next to what this build measured, with the profile,
# configuration and hardware that produced it. Numbers are read from the score records the
# earlier chapters wrote (`<run dir>/scores.jsonl`); nothing on this page is typed in by hand
# except the paper's own numbers, which come from the paper (Fig. 5, Tables 1-2, App. B.2-B.3).

# %% tags=["parameters"]
profile = "quick"

# %%
import json
import os
import platform
from pathlib import Path

import torch
from IPython.display import Markdown, display

from ihdm_core.training.config import get_preset
from ihdm_core.evaluation.scores import read_scores, score
from ihdm_core.book.figures import figures_dir, read_index, save_table
from ihdm_core.book.profiles import start
from ihdm_core.training.train import CHECKPOINT, is_available, load_run, read_metrics, run_dir_for, training_seconds

P = start(profile)

# %% [markdown]
# ## The paper's numbers
#
# FID with clean-fid ("clean" mode); 50,000 samples, 10,000 for the 256 x 256 sets (App. B.3).
# In the `paper` profile this chapter evaluates every paper preset whose trained checkpoint is
# present (train it, or drop a checkpoint into the run folder the table names); in the other
# profiles those rows say so instead of showing a number.

# %%
PAPER = [  # (preset, data set, paper FID, FID samples)
    ("cifar10", "CIFAR-10 32x32", 18.96, 50_000),
    ("afhq64", "AFHQ 64x64", 14.78, 50_000),
    ("afhq256", "AFHQ 256x256", 43.49, 10_000),
    ("ffhq256", "FFHQ 256x256", 64.91, 10_000),
    ("lsun_church128", "LSUN-Churches 128x128", 45.06, 50_000),
]
rows = []
for preset, name, paper_fid, n in PAPER:
    cfg = get_preset(preset)
    ckpt = run_dir_for(cfg) / CHECKPOINT
    ours, note = None, ""
    if P.name != "paper":
        note = f"not run in the {P.name} profile"
    elif not ckpt.exists():
        note = f"no checkpoint at {ckpt}"
    else:
        run = load_run(cfg, device=P.device)
        rec = score(run, "fid", n=n, seed=P.seed)
        ours, note = rec["value"], f"step {run.step}, {rec['reference']}"
    rows.append({"data set": name, "preset": f"{preset} [{cfg.identity()}]", "K": cfg.process.K,
                 "sigma_B,max": cfg.process.sigma_max, "delta": cfg.process.delta, "FID (paper)": paper_fid,
                 "FID (ours)": ours, "samples": n, "note": note})
md = save_table(rows, "tab10a_paper_fid", profile=P.name, seed=P.seed,
                caption="The paper's FIDs (Fig. 5a, Tables 1-2) and ours where this profile evaluates them.")
display(Markdown(md))

# %% [markdown]
# ## What this build measured
#
# Every score recorded for the models of this profile, as written by chapters 3, 4 and 9.
# The paper reports no MNIST FID; DDPM's CIFAR-10 FID in the paper is 3.17 (Ho et al.).

# %%
records = []
for role in ("ihdm", "ddpm", "blurring", "sigma0", "colour"):
    cfg = P.config(role)
    if not is_available(cfg):
        continue
    run = load_run(cfg, device="cpu")
    for rec in read_scores(run):
        if rec["run"].get("identity") != cfg.identity() or rec["run"].get("step") != run.step:
            continue  # a score of an earlier, different checkpoint
        steps = (rec.get("key") or {}).get("sampler", {}).get("steps")
        records.append({"model": role, "config": f"{cfg.name} [{cfg.identity()}]", "weights": run.source,
                        "step": run.step, "metric": rec["metric"], "value": rec["value"], "n": rec.get("n_samples"),
                        "sampling steps": steps, "delta": rec.get("delta"), "seed": rec.get("seed"),
                        "reference": rec.get("reference"),
                        "time (s)": round(rec.get("time_s", {}).get("total", float("nan")), 1)})
records.sort(key=lambda r: (r["model"], r["metric"], r["delta"] if r["delta"] is not None else -1))
if records:
    md = save_table(records, "tab10b_our_scores", profile=P.name, seed=P.seed,
                    caption="All scores recorded for this profile's models. " + P.caption)
    display(Markdown(md))
else:
    print("No scores recorded yet: run chapters 3, 4 and 9 first (the pipeline does).")

# %% [markdown]
# ## How the book was executed
#
# Wall time of every chapter in this pipeline run (training included where a chapter
# trained a model), the training cost of each model and the hardware.

# %%
stats_path = os.environ.get("IHDM_PIPELINE_STATS")
stats = json.loads(Path(stats_path).read_text()) if stats_path and Path(stats_path).exists() else None
hardware = (stats or {}).get("hardware") or {
    "cpus": os.cpu_count(), "cpu_threads": torch.get_num_threads(), "machine": platform.machine(),
    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "torch": torch.__version__}
print("hardware:", ", ".join(f"{k} {v}" for k, v in hardware.items()))
if stats:
    chapter_rows = [{"chapter": c["chapter"], "seconds": c["seconds"], "status": c["status"]} for c in stats["chapters"]]
    chapter_rows.append({"chapter": "total so far (this chapter excluded)",
                         "seconds": round(sum(c["seconds"] for c in stats["chapters"]), 1), "status": ""})
    display(Markdown(save_table(chapter_rows, "tab10c_execution", profile=P.name,
                                caption=f"Chapter wall times of the pipeline run started {stats['started']}.")))
else:
    print("Not run by the pipeline: no execution statistics (run `python -m ihdm_core book`).")

train_rows = []
for role in ("ihdm", "ddpm", "blurring", "sigma0", "colour"):
    cfg = P.config(role)
    if not is_available(cfg):
        continue
    run = load_run(cfg, device="cpu")  # shipped weights carry their training log
    log = read_metrics(run.run_dir)
    if not log:
        continue
    seconds = training_seconds(run.run_dir)
    train_rows.append({"model": role, "config": f"{cfg.name} [{cfg.identity()}]", "weights": run.provenance,
                       "steps": log[-1]["step"],
                       "final loss": log[-1]["loss"], "train time (s)": round(seconds, 1),
                       "steps/s": round(log[-1]["step"] / seconds, 2) if seconds else None})
if train_rows:
    display(Markdown(save_table(train_rows, "tab10d_training", profile=P.name,
                                caption="Training cost of this profile's models: shipped ones on the hardware their model "
                                        "card names, the others on the hardware above.")))

# %%
index = read_index(figures_dir(P.name))
missing = [f for e in index.values() for f in e["files"] if not (figures_dir(P.name) / f).exists()]
print(f"{len(index)} figures and tables indexed in {figures_dir(P.name)}; missing files: {missing or 'none'}")
assert not missing
