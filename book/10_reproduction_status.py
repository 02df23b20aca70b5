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
# The tables are built by `ihdm_core.book.status`; this page only shows them.

# %% tags=["parameters"]
profile = "quick"

# %% tags=["hide-input"]
from IPython.display import Markdown, display

from ihdm_core.book import status
from ihdm_core.book.figures import figures_dir
from ihdm_core.book.profiles import start

# %%
P = start(profile)

# %% [markdown]
# ## The paper's numbers
#
# FID with clean-fid ("clean" mode); 50,000 samples, 10,000 for the 256 x 256 sets (App. B.3).
# Each row also names the preset that reproduces the data set, with its number of steps $K$,
# its largest blur $\sigma_{B,\max}$ and its sampling noise $\delta$ (App. B.4).
# In the `paper` profile this chapter evaluates every paper preset whose trained checkpoint is
# present (train it, or drop a checkpoint into the run folder the table names); in the other
# profiles those rows say so instead of showing a number.

# %%
md = P.save_table(status.paper_fid_rows(P.name, seed=P.seed, device=P.device), "tab10a_paper_fid",
                  seed=P.seed, caption="The paper's FIDs (Fig. 5a, App. B.3) and ours where this "
                                       "profile evaluates them.")
display(Markdown(md))

# %% [markdown]
# ## What this build measured
#
# Every score recorded for the models of this profile, as written by chapters 3, 4 and 9: the
# main IHDM model (`ihdm`, the equal-budget partner of the diffusions), the longest-trained
# IHDM model of chapter 3 (`long`, listed where the profile has one), the DDPM and Blurring
# Diffusion baselines, the model trained with $\sigma = 0$, and the colour models (the one of
# the equal-budget set, `colour`, and the longest-trained one of chapter 6, `colour_long`), where
# their weights exist. A score counts only if it was measured on the checkpoint loaded now (same
# configuration identity, same training step); the sampling steps and the $\delta$ it was
# sampled with are part of each row.
# The paper reports no MNIST FID and trains no DDPM; the DDPM CIFAR-10 FID of 3.17 is Ho et
# al.'s (2020).

# %%
runs = status.available_runs(P)
records = status.score_rows(runs)
if records:
    display(Markdown(P.save_table(records, "tab10b_our_scores", seed=P.seed,
                                  caption="All scores recorded for this profile's models.")))
else:
    print("No scores recorded yet: run chapters 3, 4 and 9 first (the pipeline does).")

# %% [markdown]
# ## How the book was executed
#
# Wall time of every chapter in this pipeline run (training included where a chapter
# trained a model), the training cost of each model and the hardware. The chapter times come from
# the statistics the pipeline keeps while it runs, so they exist only when the book is built with
# `python -m ihdm_core book`; the training cost is read from each model's training log, which
# shipped weights carry with them.

# %%
stats = status.pipeline_stats()
print("hardware:", ", ".join(f"{k} {v}" for k, v in status.hardware(stats).items()))
if stats:
    display(Markdown(P.save_table(status.execution_rows(stats), "tab10c_execution",
                                  caption="Chapter wall times of the pipeline run started "
                                          f"{stats['started']}.")))
else:
    print("Not run by the pipeline: no execution statistics (run `python -m ihdm_core book`).")
train_rows = status.training_rows(runs)
if train_rows:
    display(Markdown(P.save_table(train_rows, "tab10d_training",
                                  caption="Training cost of this profile's models: shipped ones on "
                                          "the hardware their model card names, the others on the "
                                          "hardware above.")))

# %% [markdown]
# ## Every figure and table accounted for
#
# The chapters register each figure and table they save in one index; a last check confirms that
# every file the index names exists.

# %%
index, missing = status.missing_files(figures_dir(P.name))
print(f"{len(index)} figures and tables indexed in {figures_dir(P.name)}; missing files: "
      f"{missing or 'none'}")
assert not missing
