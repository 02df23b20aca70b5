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
# # 9. IHDM, DDPM and Blurring Diffusion at equal budget
#
# Three forward processes destroy information in three ways:
#
# - **IHDM** blurs deterministically, $\mathbf u_k = \mathbf F(t_k)\mathbf u_0$, plus a little
#   noise $\sigma$; the prior is a kernel density estimate on blurred training images.
# - **DDPM** (Ho et al. 2020) adds noise,
#   $\mathbf z_k = \sqrt{\bar\alpha_k}\,\mathbf x + \sqrt{1-\bar\alpha_k}\,\boldsymbol\epsilon$;
#   the prior is $\mathcal N(0, \mathbf I)$.
# - **Blurring Diffusion** (Hoogeboom & Salimans 2023) does both: in the DCT basis every
#   frequency is decayed by the heat equation *and* scaled and noised by a diffusion
#   schedule. With $\sigma_{B,\max} = 0$ it is DDPM with a cosine schedule. IHDM is not its
#   noise-free limit: it keeps a constant small noise $\sigma$ at every level, where Blurring
#   Diffusion's noise grows with the level.
#
# Here all three share one U-Net, one training loop (same steps, batch, learning rate,
# EMA, seed), one sampler and one evaluation, so the comparison isolates the process.
# The DDPM and Blurring Diffusion presets are derived from the IHDM preset of the profile
# (`ihdm_core.training.config`), changing only `process`.
#
# IHDM keeps the discrete levels $k = 1, \dots, K$ of its paper. The two diffusions are trained as
# Blurring Diffusion was published, in continuous time: every training example draws
# $t \sim \mathcal U(0, 1]$ and the network is conditioned on $t$, so one trained model samples on
# any number of steps $T$. Their network predicts
# $\mathbf v = a_t\boldsymbol\epsilon - \sigma_t \mathbf x$ per frequency instead of
# $\boldsymbol\epsilon$; why is measured at the end of the chapter.

# %% tags=["parameters"]
profile = "quick"

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from ihdm_core.book import plots
from ihdm_core.book.profiles import start
from ihdm_core.book.comparison import OptionScore, StepScore, findings
from ihdm_core.evaluation.scores import (draw_samples, high_frequency_trace, min_step_ratio,
                                       step_sweep)
from ihdm_core.model.images import to_float
from ihdm_core.training.data import load_dataset
from ihdm_core import ensure_trained, get_preset, is_available, training_seconds

# %%
P = start(profile)
cfgs = {name: P.config(role) for name, role in {"IHDM": "ihdm", "DDPM": "ddpm",
                                                "Blurring Diffusion": "blurring"}.items()}
for name, cfg in cfgs.items():
    print(f"{name:18s} {cfg.name:24s} identity {cfg.identity()}  process {cfg.process.kind}, K = "
          f"{cfg.process.K}")
    # Equal budget: everything but the process is the same.
    assert (cfg.model, cfg.train, cfg.data) == (cfgs["IHDM"].model, cfgs["IHDM"].train,
                                                cfgs["IHDM"].data)

# %% [markdown]
# ## The three forward processes on one digit
#
# Each row shows $q(\cdot \mid \mathbf x)$ at evenly spaced times $t = k/K$. For the diffusions
# the states live in $[-1, 1]$ model space and are mapped back to $[0, 1]$ for display. Along the
# IHDM row the digit loses its fine detail first and ends close to a flat field of its mean
# intensity, $\mathbf F(t_K)\mathbf u_0$: the only randomness is the small $\sigma$. Along the
# DDPM row the digit stays sharp while the noise $\sqrt{1-\bar\alpha_k}\,\boldsymbol\epsilon$
# covers it, until $\mathbf z_K$ is almost pure $\mathcal N(0, \mathbf I)$. Blurring Diffusion
# blurs and noises at once, so at the end it too is noise, but the information it loses on the way
# goes from high to low frequencies, as in IHDM.

# %%
runs = {name: ensure_trained(cfg, device=P.device, progress=False) for name, cfg in cfgs.items()}
print("\n".join(f"{name}: {run.provenance}" for name, run in runs.items()))

# %% tags=["hide-input"]
x = to_float(load_dataset("mnist5k", split="test")[:1]).to(P.device)
fig = plots.forward_processes_figure(runs, x, torch.linspace(0, 1, 8).tolist(),
                                     P.generator(0, P.device))
P.savefig(fig, "ch09_forward_processes", runs=list(runs.values()), seed=P.seed,
          caption="The forward marginals of IHDM (blur), DDPM (noise) and Blurring Diffusion "
                  "(both) for one held-out digit at evenly spaced times t = k / K.")
plt.show()

# %% [markdown]
# ## Samples and scores at equal budget
#
# Each model is scored with the same FID (clean-fid, "clean" mode, against the training digits),
# the recognisability share (the fraction a CNN trained on real MNIST digits classifies with
# confidence $\ge 0.9$) and a count of **exploded chains**: final states whose root-mean-square
# over the highest DCT frequencies ($i + j \ge H$) exceeds ten times that of the training digits.
# The diffusions are sampled on several numbers of steps $T$ from the same weights; IHDM at its
# $K$. The column *network evals / sample* is the sampling cost. Every score is cached in the run's
# `scores.jsonl` (`ihdm_core.evaluation.scores.step_sweep`), so chapter 10 reads the same numbers.
# The figure after the table shows, for each process, the samples at the number of steps closest
# to the profile's grid setting, with their scores in the title.

# %%
scores, scored = [], {}
for name, run in runs.items():
    recs = step_sweep(run, P.diffusion_steps, n_default=P.n_eval, seed=P.seed,
                      fid_ref_n=P.fid_ref_n)
    scored |= {(name, rec["steps"]): rec["run"] for rec in recs}
    scores += [StepScore.from_record(name, r, training_seconds(run.run_dir) / 60) for r in recs]
md = P.save_table([s.row() for s in scores], "tab09_three_processes", runs=list(runs.values()),
                    seed=P.seed, n=P.n_eval,
                  caption="IHDM, DDPM and Blurring Diffusion on the same U-Net, trainer and "
                          "budget; the diffusions sampled on T steps from one continuous-time "
                          f"model. FID against {recs[-1]['fid']['reference_n']} training digits.")
display(Markdown(md))
by = {(s.process, s.steps): s for s in scores}

# %% tags=["hide-input"]
show = {name: min((T for (n_, T) in scored if n_ == name), key=lambda T: abs(T - P.grid_steps))
        for name in runs}
fig = plots.samples_figure({f"{name}, {T} steps\nrecognisability {by[name, T].recognisability:.2f}"
                            f" · FID {by[name, T].fid:.1f}": draw_samples(scored[(name, T)],
                                                                          P.n_grid,
                                                                         seed=P.seed)
                            for name, T in show.items()})
P.savefig(fig, "ch09_samples", runs=list(runs.values()), seed=P.seed, n=P.n_grid,
          caption="Uncurated samples of the three processes at equal training budget.")
plt.show()

# %% [markdown]
# ## Why the number of steps matters for Blurring Diffusion
#
# A reverse step from $t$ to $s < t$ needs $\hat{\mathbf x}$ and the ratio
# $\alpha_{t|s} = \alpha_t / \alpha_s$ per frequency. For DDPM the ratio is the same at every
# frequency and close to 1 once $T$ is a few dozen. Blurring Diffusion multiplies $a_t$ by the
# heat factor $d_t = (1 - d_{\min}) e^{-\lambda \tau_t} + d_{\min}$, which for a high frequency
# drops from 1 to $d_{\min} = 0.001$ within a short stretch of $t$: on a coarse grid one step
# spans that whole drop, and an $\boldsymbol\epsilon$-predicting sampler divides the network's
# error there by $\alpha_{t|s}$. The table gives the smallest ratio over all frequencies and steps
# for each $T$, on the uniform grid $t_k = k/T$ and on a grid that puts more steps where the high
# frequencies cross their blur edge (`process.grid = "edge"`,
# `ihdm_core.model.schedules.time_grid`).

# %%
bd, ddpm = runs["Blurring Diffusion"], runs["DDPM"]
ratio_rows = [{"T": T, "DDPM (cosine)": min_step_ratio(ddpm, T),
               "Blurring Diffusion, uniform grid": min_step_ratio(bd, T),
               "Blurring Diffusion, edge grid": min_step_ratio(bd, T, grid="edge")}
              for T in sorted({T for T, _ in P.diffusion_steps} | {10, 25})]
md = P.save_table(ratio_rows, "tab09_step_ratios", runs=[ddpm, bd],
                  caption="The smallest per-frequency step ratio alpha_t / alpha_s over all steps, "
                          "per number of sampling steps T. Values far below 1 amplify prediction "
                          "errors.")
display(Markdown(md))

# %% tags=["hide-input"]
fig = plots.step_ratio_figure(
    [(bd.sampled_with(steps=T).process, c, f"Blurring Diffusion, T = {T}")
     for T, c in ((50, "C3"), (250, "C1"), (1000, "C0"))]
    + [(bd.sampled_with(steps=50, grid="edge").process, "C3--",
        "Blurring Diffusion, T = 50, edge grid"),
       (ddpm.sampled_with(steps=50).process, "0.5", "DDPM (cosine), T = 50")])
P.savefig(fig, "ch09_step_ratios", runs=[ddpm, bd],
          caption="Per-step smallest ratio alpha_t / alpha_s along the sampling grid.")
plt.show()

# %% [markdown]
# ## Options against the instability, measured
#
# Three switches, each a sampling or training option of the config:
#
# - `process.clamp_dct`: clamp $\hat{\mathbf x}$ per frequency (in the DCT basis) to the box the
#   training data span, computed from the training set. Clamping in pixel space instead spreads the
#   high-frequency error over all frequencies.
# - `process.grid = "edge"`: the denser grid of the table above.
# - `process.prediction`: $\boldsymbol\epsilon$, $\mathbf v$ or $\mathbf x$. With $\mathbf v$,
#   $\hat{\mathbf x} = (a_t \mathbf z_t - \sigma_t \hat{\mathbf v}) / (a_t \alpha_t + \sigma_t^2)$
#   never divides by a small $\alpha_t$; with $\boldsymbol\epsilon$,
#   $\hat{\mathbf x} = (\mathbf z_t - \sigma_t\hat{\boldsymbol\epsilon})/\alpha_t$ does. It
#   changes what is trained, so it needs one model per choice (the `*-ablation` presets, smaller
#   networks at equal budget among themselves).
#
# The first two are applied to the Blurring Diffusion model above at the smallest $T$ of the sweep,
# where a coarse grid hurts most. Every row draws the same prior states and step noises, so rows
# differ only by the option. The prediction ablation adds one row per trained `*-ablation` model;
# presets not trained here are listed below the table with the command that trains them.

# %%
T_opt = min(T for (name, T) in scored if name == "Blurring Diffusion")
opts, metrics = [], ("recognisability", "explosions")
for label, options in (("uniform grid (default)", {}), ("edge grid", {"grid": "edge"}),
                       ("DCT clamp", {"clamp_dct": True}), ("edge grid + DCT clamp",
                                                            {"grid": "edge", "clamp_dct": True})):
    recs = step_sweep(bd, [(T_opt, P.n_options)], n_default=P.n_options, seed=P.seed,
                      metrics=metrics, **options)
    opts += [OptionScore.from_record(label, r) for r in recs]
missing = [preset for preset in P.prediction_ablation if not is_available(get_preset(preset))]
for preset in (p for p in P.prediction_ablation if p not in missing):
    run = ensure_trained(get_preset(preset), device=P.device, progress=False)
    recs = step_sweep(run, sorted({(T_opt, P.n_options), (P.grid_steps, P.n_options)}),
                      n_default=P.n_options,
                      seed=P.seed, metrics=metrics)
    opts += [OptionScore.from_record(f"{run.cfg.process.prediction}-prediction", r) for r in recs]
md = P.save_table([o.row() for o in opts], "tab09_options", runs=[bd], seed=P.seed, n=P.n_options,
                  caption="Blurring Diffusion sampling and training options, same prior draws and "
                          "noise per row.")
display(Markdown(md))
if missing:
    print("prediction ablation not trained here; train with: "
          + "; ".join(f"python -m ihdm_core train --preset {m}" for m in missing))

# %% [markdown]
# ## The chains, step by step
#
# The root-mean-square of the highest DCT frequencies of each Blurring Diffusion chain along its
# steps, for the smallest and the default number of steps, against the value the forward process
# gives them ($\approx \sigma_t$, since digits have almost no energy there).

# %% tags=["hide-input"]
n_trace = min(P.n_grid, 32)
fig = plots.chains_figure({T: high_frequency_trace(bd.sampled_with(steps=T)
                                                   if bd.cfg.process.time == "continuous"
                                                   else bd, n_trace, seed=P.seed + 1)
                           for T in sorted({T_opt, show["Blurring Diffusion"]})})
P.savefig(fig, "ch09_blurring_chains", runs=[bd], seed=P.seed + 1, n=n_trace,
          caption="Blurring Diffusion sampling chains: high-frequency RMS of the state per step "
                  "against the forward process's sigma_t.")
plt.show()

# %% [markdown]
# ## What was measured
#
# The sentences below are assembled from the tables above (`ihdm_core.book.comparison.findings`,
# on the same typed records the tables are rows of): Blurring Diffusion against DDPM at every
# number of steps $T$ both were scored on, and the range of Blurring Diffusion's smallest step ratio
# $\alpha_t/\alpha_s$ between the coarsest and the finest grid.

# %%
smallest = {r["T"]: r["Blurring Diffusion, uniform grid"] for r in ratio_rows}
display(Markdown(findings(scores, smallest, opts)))

# %% [markdown]
# **The defaults, and why.** The diffusions are trained in continuous time with
# $\mathbf v$-prediction and sampled on the uniform grid without a clamp. Continuous time is what
# makes $T$ a sampling choice at all. $\mathbf v$-prediction keeps $\hat{\mathbf x}$ bounded when
# $\alpha_t$ is tiny: with an exact $\boldsymbol\epsilon$ the two are the same sampler (the oracle
# tests in `tests/test_continuous.py` recover the data within $10^{-3}$ at $T = 1000$ for all
# three predictions), but with the high-frequency part of the prediction half wrong,
# $\boldsymbol\epsilon$-prediction explodes on 20 steps and $\mathbf v$-prediction does not (same
# test module). The reference models were trained with $\mathbf v$ on that evidence; the
# prediction rows above (when the `*-ablation` models are there) are the same comparison on
# trained networks, smaller ones at 2,000 steps, with $\mathbf x$-prediction beside them. The edge
# grid and the DCT clamp stay options: the table above shows what each does to the trained model
# at the smallest $T$; with $\mathbf v$-prediction the instability they were built against is
# already small.
#
# On CIFAR-10 IHDM's FID (18.96, the paper) is behind DDPM's (3.17, Ho et al. 2020; the paper
# trains no DDPM) and argues for IHDM's other properties (chapters 5-7). The table measures the
# three processes at this profile's budget, not their limits.
