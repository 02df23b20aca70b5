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
# # 3. Training IHDM and generating
#
# The whole model is two short algorithms (paper Sec. 3.2). The forward process is fixed:
# $q(\mathbf u_k\mid\mathbf u_0) = \mathcal N(\mathbf F(t_k)\mathbf u_0, \sigma^2\mathbf I)$, the
# heat equation run to time $t_k$ plus a little Gaussian noise of standard deviation $\sigma$. The
# reverse process is a chain of Gaussians
# $p_\theta(\mathbf u_{k-1}\mid\mathbf u_k) =
# \mathcal N(\mu_\theta(\mathbf u_k, k), \delta^2\mathbf I)$
# whose mean is a U-Net with a skip connection,
# $\mu_\theta(\mathbf u_k, k) = \mathbf u_k + f_\theta(\mathbf u_k, k)$.
#
# **Algorithm 1 (the loss).** Draw a training image $\mathbf u_0$ and a level
# $k \sim \mathcal U\{1,\dots,K\}$; blur it to the two neighbouring levels,
# $\mathbf u_k = \mathbf F(t_k)\mathbf u_0$ and $\mathbf u_{k-1} = \mathbf F(t_{k-1})\mathbf u_0$;
# perturb the more blurred one, $\hat{\mathbf u}_k = \mathbf u_k + \boldsymbol\varepsilon$ with
# $\boldsymbol\varepsilon \sim \mathcal N(\mathbf 0, \sigma^2\mathbf I)$; regress
# $\|\mu_\theta(\hat{\mathbf u}_k, k) - \mathbf u_{k-1}\|_2^2$. The network learns to take one
# small step *backwards* along the heat equation, from a slightly noisy input. This MSE is, up to
# the factor $1/(2\delta^2)$ and constants, the term $L_{k-1}$ of the ELBO (Eq. 10): training
# ignores $\delta$ altogether. With the skip connection the network outputs the *change*
# $f_\theta(\hat{\mathbf u}_k, k) \approx \mathbf u_{k-1} - \hat{\mathbf u}_k$: it removes the
# noise $\boldsymbol\varepsilon$ and takes one step back along the heat equation. The paper
# compares this to denoising score matching, with the difference that the target is a less blurred
# image rather than the denoised input itself.
#
# **Algorithm 2 (sampling).** Draw $\mathbf u_K \sim p(\mathbf u_K)$, a kernel density estimate on
# blurred training images (a training image blurred to $t_K$ plus
# $\mathcal N(\mathbf 0, \delta^2\mathbf I)$), then for $k = K, \dots, 1$ set
# $\mathbf u \leftarrow \mu_\theta(\mathbf u, k) + \boldsymbol\varepsilon_k$,
# $\boldsymbol\varepsilon_k \sim \mathcal N(\mathbf 0, \delta^2\mathbf I)$ (the implementation, as
# is usual, adds no noise on the last step, $k = 1$). The sampling noise $\delta$ is a free
# hyperparameter, set slightly above $\sigma$ (Table 2: $0.0125$ for MNIST); chapter 4 is about
# it.
#
# This chapter loads (or trains) the profile's longest-trained IHDM model, looks at where its loss
# goes, scores its samples, follows their quality through training, and reproduces the qualitative
# figures of generation: Fig. 5 (sequences and stochastic branching), Fig. 14 (uncurated
# samples) and Figs. 15/17 (many samples from one initial state).

# %% tags=["parameters"]
profile = "quick"

# %% tags=["hide-input"]
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from ihdm_core import ensure_trained, get_preset, kde_prior_sample, to_float, training_seconds
from ihdm_core.book import sampling_plots as plots
from ihdm_core.book.animate import frame_levels, show_animation
from ihdm_core.book.figures import describe_config, show_images
from ihdm_core.book.profiles import start
from ihdm_core.book.learning import (curve_table, equal_images_table, learning_curve_figure,
                                     load_recipe_search, recipe_table, summarise_curve)
from ihdm_core.evaluation.curves import committed_curve
from ihdm_core.evaluation.dynamics import branch_spread, loss_curve, loss_per_level, smoothed
from ihdm_core.evaluation.quality import real_image_scores
from ihdm_core.evaluation.scores import draw_samples, score
from ihdm_core.model.sampling import Recorder, sample
from ihdm_core.training.data import load_dataset

# %%
P = start(profile)
cfg = P.config("long")  # IHDM alone: the longest-trained model (the main one in chapters 4-9)
main = P.config("ihdm")
paper = get_preset("mnist")  # Tables 1-2 of the paper, MNIST row
K, sigma, delta = cfg.process.K, cfg.process.sigma, cfg.process.delta
train_images = load_dataset(cfg.data)
test_images = load_dataset(cfg.data.dataset, split="test")
print(f"profile {P.name}: {cfg.name}, K = {K}, sigma = {sigma}, delta = {delta}, "
      f"{len(train_images)} training / {len(test_images)} held-out images")


# %% [markdown]
# ## The model and its budget
#
# The profile's model next to the paper's MNIST model (Tables 1 and 2 of the paper). The forward
# process is the paper's except for $K$; the network and the optimisation are scaled down to what
# two CPU cores can train. This chapter shows IHDM alone, so it uses the profile's *longest*
# trained IHDM model: in the quick profile `mnist-long`, the network and process of the main
# model `mnist-ref` with dropout 0.1 and the EMA warm-up, trained for 32,000 steps, 8x the images
# `mnist-ref` saw (about 4 hours on one core). The chapters that compare IHDM with the diffusions
# keep `mnist-ref`, which shares its budget with them. Neither model is trained by the book: both
# ship with it (`models/`, each with a model card), trained once with
# `python -m ihdm_core train --preset <name>`, and are found by their config identity and checked
# against their SHA-256. `python -m ihdm_core book --retrain` ignores the
# shipped weights and trains every model from scratch. Everything this chapter shows is still a
# small-scale reproduction: the paper's method at a CPU budget, not its sample quality.
#
# The network is the paper's (App. B.1): a U-Net with residual blocks, GroupNorm, dropout,
# self-attention at low resolutions, average-pooling down and nearest-neighbour up, and the level
# $k$ entering every residual block through a sinusoidal embedding. `describe_config` reads the
# quantities of Tables 1 and 2 from a config and counts the parameters of the network it builds.

# %%
ours, theirs = describe_config(cfg), describe_config(paper)
rows = [{"quantity": q, f"profile '{P.name}'": ours[q], "paper (MNIST)": theirs[q]} for q in ours]
md = P.save_table(rows, "tab01_ihdm_config", runs=[cfg, paper],
                  caption="The profile's IHDM model next to the paper's MNIST model (Tables 1-2; "
                          "the paper gives no MNIST step count, the preset's "
                          f"{paper.train.steps:,} is our choice).")
display(Markdown(md))

# %% [markdown]
# ## Training
#
# `ensure_trained` returns the EMA network of the config: the shipped reference weights of its
# identity if they exist, else a finished run of the same identity from the cache, else it runs
# the training loop of `ihdm_core.training.train` (Alg. 1 on minibatches, Adam, gradient clipping at
# norm 1, an exponential moving average of the weights). The loss curve below is the training log,
# shipped with the weights or written now. Levels are
# drawn from all of $\{1, \dots, K\}$ (the 2023 release never trained level $K$).
#
# App. B.1 lists the paper's optimiser settings, which the presets follow: Adam with
# $\beta_1 = 0.9$, $\beta_2 = 0.999$, $\varepsilon = 10^{-8}$, the learning rate warmed up linearly
# from 0, gradient norms clipped at 1, and samples drawn from the EMA of the weights. The cell
# prints where the weights came from and how long training took according to its log.

# %%
print(f"{cfg.name}: {cfg.train.steps:,} steps (shipped or cached weights are loaded; otherwise "
      f"trained now on {P.device}) ...", flush=True)
t0 = time.perf_counter()
run = ensure_trained(cfg, device=P.device, progress=False)
call_s = time.perf_counter() - t0
steps, losses = loss_curve(run.run_dir)
train_s = training_seconds(run.run_dir)
assert run.step == cfg.train.steps and steps[-1] == run.step and np.all(np.diff(steps) > 0)
assert np.isfinite(losses).all()
print(f"{run.provenance}; this call took {call_s:.1f} s "
      f"({'trained now' if call_s > 0.5 * train_s else 'loaded, not trained'})")
print(f"training wall time in the log: {train_s / 60:.1f} min, {len(losses) / train_s:.2f} "
      f"steps/s, {len(losses) * cfg.train.batch_size / train_s:.0f} images/s")

# %% [markdown]
# ### The loss during training
#
# The training loss of every step (the squared error summed over the $N = 28\times28$ pixels, as in
# Eq. 10, averaged over the batch) and a moving average. For reference, the dashed line is
# $N\sigma^2$: the loss of a network that outputs its input, $\mu = \hat{\mathbf u}_k$, if the blur
# step itself cost nothing. A trained model goes well below it: besides un-blurring, the network
# removes most of the training noise $\boldsymbol\varepsilon$, which it can because blurred digits
# lie close to a low-dimensional set.

# %% tags=["hide-input"]
n_pix = math.prod(train_images.shape[1:])
win = smoothed(steps, losses)[2]
fig = plots.training_loss_figure(steps, losses, smoothed(steps, losses), n_pix * sigma ** 2,
                                 cfg.train.warmup, f"Training loss (Alg. 1), {cfg.name}")
P.savefig(fig, "ch03_training_loss", runs=[run], seed=cfg.train.seed, n=len(losses),
          caption=f"Training loss against step, raw and smoothed; batch {cfg.train.batch_size}, "
                  f"levels drawn uniformly from 1..{K}.")
plt.show()

# %% [markdown]
# ### Where the loss goes: one Monte-Carlo batch per level
#
# The training loss mixes all levels. Evaluating Alg. 1 at every level $k$ separately, with the
# trained EMA network on held-out digits, shows which reverse steps are hard. Two references: the
# loss of the skip connection alone ($f_\theta = 0$, i.e. $\mu = \hat{\mathbf u}_k$), which is
# $N\sigma^2$ plus the size of the actual step $\|\mathbf u_k - \mathbf u_{k-1}\|^2$, and
# $N\sigma^2$. `loss_per_level` draws one $\boldsymbol\varepsilon$ per level for a fixed set of
# held-out digits (drawn at random: the offline test split is stored by class) and returns both.

# %%
n_lv = min(P.n_grid, len(test_images))
x0 = to_float(test_images[torch.randperm(len(test_images), generator=P.generator())[:n_lv]])
mse_k, skip_k = loss_per_level(run.net, run.process, x0.to(P.device), P.generator(0, P.device))
levels, sB = np.arange(1, K + 1), run.process.sigma_B.cpu().numpy()
low = levels <= max(1, K // 4)
print(f"mean over levels: {mse_k.mean():.4g} (held-out, EMA net); last {win} training steps: "
      f"{losses[-win:].mean():.4g} (training batches, raw net)")
print(f"share of the summed loss in the lowest quarter of levels (k <= {levels[low][-1]}, sigma_B "
      f"<= {sB[levels[low][-1]]:.2f} px): {mse_k[low].sum() / mse_k.sum():.0%}")
print(f"loss / skip-connection loss: {np.min(mse_k / skip_k):.2f} .. {np.max(mse_k / skip_k):.2f}")

# %% tags=["hide-input"]
fig = plots.loss_per_level_figure(mse_k, skip_k, n_pix * sigma ** 2, sB,
                                  f"Alg. 1 loss per level on {n_lv} held-out digits")
P.savefig(fig, "ch03_loss_per_level", runs=[run], seed=P.seed, n=n_lv,
          caption="The loss of Alg. 1 at each level k, one Monte-Carlo draw of the training noise "
                  f"on {n_lv} held-out digits, for the trained EMA network and for the skip "
                  "connection alone.")
plt.show()

# %% [markdown]
# **Reading it.** The skip-connection curve is the size of the task. At the most blurred levels a
# reverse step changes the image by almost nothing and the curve sits on $N\sigma^2$; towards small
# $k$ the steps grow, and the very last one, from $\sigma_{B,1} = 0.5$ pixels to the data itself, is
# by far the largest: it restores the sharp, nearly binary strokes of the digit. The trained
# network's error stays well below both references and follows the same shape: the residual loss
# concentrates at the small-$k$ end, the last steps of generation, where edges are put back and the
# fine detail of a digit is genuinely uncertain given its slightly noisy blurred version. At large
# $k$ the network's job is mostly to remove the injected noise, and it removes nearly all of it.
# Since the ELBO term $L_{k-1}$ is this error divided by $2\delta^2$ (Eq. 10), the same levels
# dominate the data term of the likelihood in chapter 4.

# %% [markdown]
# ## Figure 14: uncurated samples, and how good they are
#
# The samples below are the first ones of exactly the set that is scored: `draw_samples` draws
# them with Alg. 2, sample $i$ from seed $s + i$ alone (its prior draw and its sampling noise), so
# the first $n$ of a larger set are the set of $n$. The figure draws only the tiles it shows; the
# scores below draw the rest, unless they were recorded before, here or with the shipped model. Each
# sample costs $K$ network evaluations, one per reverse step. As in
# App. B.1, the last step adds no noise, $\mathbf u_0 = \mu_\theta(\mathbf u_1, 1)$: noise at that
# point cannot improve the output.

# %%
t0 = time.perf_counter()
n_show = min(P.n_grid, P.n_eval)
x_show = draw_samples(run, n_show, seed=P.seed)
sample_s = time.perf_counter() - t0
assert x_show.shape == (n_show, *train_images.shape[1:]) and 0 <= x_show.min() <= x_show.max() <= 1
print(f"{n_show} samples with K = {K} steps in {sample_s:.1f} s "
      f"({n_show / max(sample_s, 1e-9):.1f} samples/s)")

# %% tags=["hide-input"]
nrow = math.ceil(math.sqrt(n_show))
fig, ax = plt.subplots(figsize=(0.62 * nrow + 0.4, 0.62 * math.ceil(n_show / nrow) + 0.5))
show_images(ax, x_show, nrow=nrow,
            title=f"Uncurated IHDM samples ({cfg.name}, delta = {delta}, K = {K})")
P.savefig(fig, "fig14_uncurated_samples", runs=[run], seed=P.seed, n=n_show,
          caption=f"Fig. 14: uncurated samples, the first {n_show} of the {P.n_eval} that are "
                  "scored below.")
plt.show()

# %% [markdown]
# Two scores, both computed on these $n$ samples (`ihdm_core.evaluation.scores.score` records them
# in the run folder so that later chapters reuse rather than recompute them):
#
# * **FID** (clean-fid "clean" mode, InceptionV3 features, App. B.3) against the statistics of the
#   training digits. FID is biased upward at small $n$: the sample covariance of 2048-d features
#   from a few hundred images is far from its limit, and the paper used 50,000 samples. To read the
#   number, the table also gives the FID of the same number of *real held-out digits* against the
#   same reference: roughly the floor a perfect model could reach at this $n$.
# * **Recognisability**: the share of samples that a small CNN trained on the real training digits
#   (with an extra "not a digit" class) assigns to one digit with confidence $\ge 0.9$. Real
#   held-out digits score about 0.9 on it, which is the practical ceiling. It is much less noisy
#   than FID at small $n$ and says directly whether the samples look like digits.
#
# The paper reports FID on its other data sets and no MNIST FID (Sec. 4), so the table has no
# paper column; it places the model between the floor and the ceiling that real digits reach
# with the same $n$ and the same reference.

# %%
t0 = time.perf_counter()
rec_r = score(run, "recognisability", n=P.n_eval, seed=P.seed, progress=False)
rec_f = score(run, "fid", n=P.n_eval, seed=P.seed, ref_n=P.fid_ref_n, device=P.device,
              progress=False)
score_s = time.perf_counter() - t0
for rec in (rec_r, rec_f):
    print(f"{rec['metric']:>16}: {rec['value']:.4g} on {rec['n_samples']} samples, reference: "
          f"{rec['reference']} (n = {rec.get('reference_n', '-')}), delta = {rec['delta']}, seed "
          f"{rec['seed']}; score time {rec['time_s']['total']:.1f} s, recorded "
          f"{rec.get('recorded', 'now')}")

# %% [markdown]
# The same two scores for real held-out digits: recognisability on the whole test split, FID on as
# many test digits as there are samples, against the same reference statistics.

# %%
real = real_image_scores(cfg.data.dataset, n_fid=P.n_eval, seed=P.seed, ref_n=P.fid_ref_n,
                         device=P.device)
print(f"this cell and the last: {score_s:.1f} s for the two scores, {real['fid_seconds']:.1f} s "
      "for the real-digit FID")

# %% tags=["hide-input"]
ours, theirs = f"IHDM samples (delta = {delta})", f"real held-out digits ({cfg.data.dataset} test)"
ref, cnn = real["reference"], "digit CNN, confidence >= 0.9"
fid_ref = f"{ref.meta.get('reference', cfg.data.dataset)} (n = {ref.n})"
rows = [dict(zip(["metric", "images", "n", "value", "reference", "time (s)"], r)) for r in [
    ("FID", ours, rec_f["n_samples"], rec_f["value"], fid_ref, rec_f["time_s"]["total"]),
    ("FID", theirs, real["fid_n"], real["fid"], fid_ref, real["fid_seconds"]),
    ("recognisability", ours, rec_r["n_samples"], rec_r["value"], cnn, rec_r["time_s"]["total"]),
    ("recognisability", theirs, real["recognisability"]["n"],
     real["recognisability"]["share_confident"], cnn, None)]]
md = P.save_table(rows, "tab05_ihdm_scores", runs=[run], seed=P.seed, n=P.n_eval,
                  caption="Sample quality of the profile's IHDM model, with real held-out digits "
                          "scored the same way as the floor (FID) and ceiling (recognisability) at "
                          "this sample count. The paper reports no MNIST FID.")
display(Markdown(md))
print("class histogram of the samples (digits 0-9):", rec_r["details"]["class_histogram"],
      f"| not a digit: {rec_r['details']['not_digit']}")

# %% [markdown]
# The class histogram is a cheap check for mode collapse: a model that covers the data draws
# all ten digits in roughly equal numbers (the prior starts every sample from a different blurred
# training digit, so coverage is inherited from the data as long as the reverse process follows
# its initial state).

# %% [markdown]
# ## How quality grows with training
#
# Sample quality is bought with training images, and on a CPU that means hours. The long run kept
# a snapshot of its EMA weights every 2,000 steps; `scripts/learning_curve.py` scored each one the
# way the table above scores the final model (the same seed, $\delta$ and $n$; recognisability
# with its binomial standard error, FID against the same reference digits) and committed the rows
# under `models/curves/`. They are a record of that CPU run, shown in every profile. The CPU hours
# count steps at the throughput of the training loop measured on its own
# (`ihdm_core.training.recipes.measure_throughput`), not the wall time of a run that shared its
# machine. The held-out loss is Alg. 1 on the held-out digits, logged during training: if the
# network began to memorise its 4,500 training digits (the run passes over them about 230 times),
# it would turn upwards.
#
# The dashed line extends the trend of the last four points, quality linear in $\log_{10}$ of the
# images seen, to where it would reach 0.8. For a share bounded by 1 that reading is optimistic:
# such curves flatten as they approach their ceiling (real digits score 0.90).
#
# Beside it, where their curves are committed, the two baselines of chapter 9 on the same footing:
# `mnist-ddpm-long` (DDPM) and `mnist-blurring-long` (Blurring Diffusion) train the same network on
# the same digits with the same recipe and learning-rate schedule; only the process differs (both
# in continuous time with $v$-prediction, sampled on $T = 250$ steps, five times IHDM's $K = 50$
# network evaluations per sample). Their snapshots were scored the same way, as far as those runs
# have gone; the second table compares the three at equal images seen.

# %%
curve = committed_curve(get_preset("mnist-long").run_name())
baselines = {f"{kind} ({name})": committed_curve(get_preset(name).run_name())
             for kind, name in (("DDPM", "mnist-ddpm-long"),
                                ("Blurring", "mnist-blurring-long"))}
fits, lines = summarise_curve(curve, targets=(0.6, 0.8), gpu=get_preset("mnist-gpu"))
print("\n".join(lines))

# %% tags=["hide-input"]
rows_c = curve["rows"]
same_n = rows_c[-1]["n_fid"] == real["fid_n"] and rows_c[-1]["fid_reference_n"] == ref.n
curves = {"IHDM (mnist-long)": rows_c}
curves.update({label: c["rows"] for label, c in baselines.items() if c})
fig = learning_curve_figure(curves, {"IHDM (mnist-long)": fits[0.8]},
                            target=0.8, real_recog=real["recognisability"]["share_confident"],
                            real_fid=real["fid"] if same_n else None,
                            title=f"Learning curves (n = "
                                  f"{rows_c[-1]['n_recognisability']} per point, seed "
                                  f"{rows_c[-1]['seed']}, IHDM at delta = {rows_c[-1]['delta']})")
P.savefig(fig, "fig_learning_curve", seed=rows_c[-1]["seed"], n=rows_c[-1]["n_recognisability"],
          caption="Recognisability (with +-1 SE) and FID of the long IHDM run's snapshots (and "
                  "of its DDPM and Blurring Diffusion twins', where committed) against training "
                  "images seen; dashed: "
                  "IHDM's log-linear trend of the last four points extended to 0.8 "
                  "(optimistic).")
plt.show()
display(Markdown(P.save_table(curve_table(rows_c), "tab05b_learning_curve",
                              seed=rows_c[-1]["seed"], n=rows_c[-1]["n_recognisability"],
                              caption="The long IHDM run's snapshots, scored.")))
if len(curves) > 1:
    display(Markdown(P.save_table(equal_images_table(curves), "tab05b_processes_equal_images",
                                  seed=rows_c[-1]["seed"], n=rows_c[-1]["n_recognisability"],
                                  caption="IHDM, DDPM and Blurring Diffusion on the same network "
                                          "and recipe, at equal training images seen (empty: "
                                          "not scored there).")))

# %% [markdown]
# **Reading it.** Both scores improve with every doubling of the images seen, quickly at first.
# Over the last snapshots, as the cosine schedule takes the learning rate to zero, the
# recognisability flattens, so the slope of the fitted trend falls and the compute it asks for
# 0.8 (printed above) grows. The held-out loss falls at every snapshot to the end: in about 230
# passes over its 4,500 training digits the network has not begun to memorise them (chapter 8
# checks the samples themselves against the training set). A flattening curve with a falling
# held-out loss points at the size of the network rather than at the number of images as the
# next limit, which is what the recipe search below probes at small scale.
#
# **IHDM against the diffusions.** The second table puts the three processes side by side at the
# images seen that the IHDM curve and at least one other scored, on the same network and recipe.
# Read the gaps there, at equal training: they are the gaps chapter 9 measures between the
# equal-budget trio, followed along the runs, and the class shares (chapter 9's histograms) say
# whether one process favours some digits. In the committed curves DDPM on this very network passes
# IHDM's final score within a fifth of IHDM's images, so the network's size alone does not explain
# where IHDM flattens. Blurring Diffusion, trained for its first 6,000 steps so far, lies between
# the two in recognisability, with FID close to IHDM's.

# %% [markdown]
# ### Which recipe? A search at a fixed CPU budget
#
# Before spending hours, which settings buy the most quality per CPU-second?
# `scripts/recipe_search.py` trains one arm per question around `mnist-ref` (with the EMA
# warm-up), each for the *same CPU budget*: an arm's steps are the budget times its training
# speed, measured alone in the process's CPU seconds, so a wider network or a larger batch gets
# fewer steps, and arms whose steps cost the same (a learning rate, $\sigma$, $K$, the EMA) share
# one measurement and so one number of steps. Each arm is scored like the models above
# (recognisability of $n$ samples at a fixed seed, with its binomial standard error); the column
# "vs base (SE)" gives its difference to the base arm in units of the combined standard error, so
# $|z| < 2$ is no evidence either way. Two arms are the base recipe with other training seeds: the
# spread that chance alone gives. The search is a record of a CPU run committed under `docs/`,
# shown in every profile. At such a small budget it measures what helps *early* in training,
# which need not be what helps after hours; the long run above kept the base recipe plus
# dropout, chosen before the search.

# %%
search = load_recipe_search()
if search is None:
    print("no recipe search committed (scripts/recipe_search.py writes docs/recipe-search.json)")
else:
    display(Markdown(P.save_table(recipe_table(search["rows"]), "tab05c_recipe_search",
                                  n=search["rows"][0]["n"], seed=search["rows"][0]["seed"],
                                  caption=f"Recipe search around {search['base']}: every arm "
                                          f"trained for {search['budget_s']:g} CPU seconds "
                                          f"({search['threads']} thread), best first.")))
    ahead = [r["arm"] for r in recipe_table(search["rows"]) if (r["vs base (SE)"] or 0) >= 2]
    print("arms at least two combined standard errors above the base arm:", ahead or "none")

# %% [markdown]
# **Reading it.** The three runs of the base recipe (seeds 0, 1, 2) score 0.180, 0.164 and
# 0.172: the training seed moves the score by about one standard error. Against that floor,
# $\sigma = 0.02$ (with $\delta = 0.025$, the same ratio) and $K = 100$ stand out above the base
# arm; below it are the learning rate of $2 \cdot 10^{-3}$ and a second residual block per level,
# which gets 40% fewer steps for the same CPU time. The EMA arm is not a tie but the base arm
# itself: with the release's warm-up the decay
# is $\min(0.9999, (1 + n)/(10 + n))$, which stays below 0.999 until step 8,991, so at a few
# hundred steps both EMAs are the same average and the two arms the same weights.
#
# One warning outweighs the ranking. In an earlier run of this search every arm's speed came
# from its own 20-step probe, which scattered from 1.97 to 3.49 steps per CPU-second for arms of
# identical cost; those arms trained 760-816 steps instead of 878. With that 8-16% change in
# length (and in the warm-up and cosine decay fitted to it), $K = 100$ scored 0.158 instead of
# 0.252, $\sigma = 0.02$ 0.208 instead of 0.290, and the learning rate of $2 \cdot 10^{-3}$ 0.234
# instead of 0.128, which turned it from the best arm into the second worst. At this budget an
# arm's score depends on its schedule far more than its standard error or the seed spread says,
# so the table points at what to try in a longer run; it does not settle it. The slower EMA and
# the larger network are the usual winners of long training, and only a run long enough for
# them can tell.

# %% [markdown]
# ## Figure 5a: generation sequences
#
# The states $\mathbf u_k$ of Alg. 2 at evenly spaced levels (evenly spaced in $k$ means
# log-spaced in $\sigma_{B,k}$). Generation starts from an almost flat image, the prior draw, and
# the network redistributes its mass into a digit, coarse shape first, strokes last. The mean
# intensity of the image is kept throughout (the heat equation conserves it, and so, nearly, does
# its learned inverse). The sampler's callback receives every state $\mathbf u_k$; the cell keeps
# the ones at the levels shown and prints the mean intensity of the first and last.
#
# Each figure from here on draws from its own seeded stream, `P.generator(i)` (the profile's seed
# plus $i$), so one cell rerun alone reproduces its figure. The prior draws come from a CPU
# generator, which keeps them the same on a CPU and a GPU; the sampler's step noise comes from a
# generator on the sampling device. The callback (`Recorder` keeps the states it is asked for)
# gets each state together with the estimate the step computed from it, $\mu_\theta(\mathbf u_k,
# k)$, so recording a trajectory costs no extra network evaluation.

# %%
n_show = max(2, math.isqrt(P.n_grid) // 2)
seq_levels = sorted({int(v) for v in np.round(np.linspace(K, 0, 8))}, reverse=True)
u_K, _ = kde_prior_sample(run.process, train_images, n_show, generator=P.generator(1))
rec = Recorder(seq_levels, clamp=False)
x_seq = sample(run.net, run.process, u_K, generator=P.generator(1, P.device),
               callback=rec)
seq = rec.frames().transpose(0, 1)  # (n_show, levels, C, H, W)
assert torch.equal(seq[:, -1], x_seq.cpu()) and torch.equal(seq[:, 0], u_K.cpu())
print("mean intensity, u_K vs u_0:", np.round(u_K.mean((1, 2, 3)).cpu().numpy(), 3),
      np.round(x_seq.mean((1, 2, 3)).cpu().numpy(), 3))

# %% tags=["hide-input"]
fig = plots.sequence_figure(seq, seq_levels, sB, "Generation: $u_K$ (left) to $u_0$ (right)")
P.savefig(fig, "fig05a_generation_sequences", runs=[run], seed=P.seed + 1, n=n_show,
          caption="Fig. 5a: the states u_k of the reverse process at evenly spaced levels k = K..0 "
                  f"for {n_show} samples (delta = {delta}).")
plt.show()

# %% [markdown]
# Compare the columns with Fig. 1 read backwards: the left columns look like the forward process
# at large $t_k$, because $\mathbf u_K$ *is* a training digit blurred to $t_K$, plus noise of
# standard deviation $\delta$; what the right columns add is generated by the network and the noise.
#
# The same, animated: a grid of samples, one frame per level (every level up to 40 of them,
# otherwise 40 evenly spaced ones), from the prior draw $\mathbf u_K$ to the sample $\mathbf u_0$.
# `ihdm_core.model.sampling.Recorder` is the sampler's callback; it keeps the states it is asked
# for.

# %%
n_anim = min(P.n_grid, 16)
rec = Recorder(frame_levels(K))
u_K, _ = kde_prior_sample(run.process, train_images, n_anim, generator=P.generator(4))
x_anim = sample(run.net, run.process, u_K, generator=P.generator(4, P.device),
                callback=rec)
anim_traj = rec.frames()  # (levels, n_anim, C, H, W), u_K first
assert torch.equal(anim_traj[0], u_K.clamp(0, 1).cpu()) and torch.equal(anim_traj[-1],
                                                                        x_anim.clamp(0, 1).cpu())

# %% tags=["hide-input"]
gif = P.save_animation(anim_traj, "anim05a_generation", runs=[run], seed=P.seed + 4, n=n_anim,
                       labels=[f"k = {k}, σ_B = {sB[k]:.2g}" if k else "k = 0: the samples"
                               for k in rec.levels()],
                       levels=rec.levels(), caption=f"Generation u_K -> u_0 for {n_anim} samples, "
                                                    "one frame per "
                       f"level shown (delta = {delta}).")
display(show_animation(gif))

# %% [markdown]
# ## Figure 5b: stochastic branching
#
# The process is stochastic: at every step the noise $\boldsymbol\varepsilon_k$ can push the
# trajectory one way or another. To see *when* the content of a sample is decided, take one
# trajectory, stop it at level $k$, and continue from the same state $\mathbf u_k$ several times
# with fresh noise (Alg. 2 from $k$ down to 1, `reverse_step` in a loop). The paper's observation:
# large-scale structure is determined early; later splits change only details.
#
# This is the role of $\sigma$ in the paper's Fig. 3b: with $\sigma > 0$ the forward paths of
# nearby images merge within the noise, so a reverse path may split into several sharper images,
# and the sampling noise $\delta$ decides which one it takes.
#
# The right panel makes this quantitative over several source trajectories and many split levels:
# the spread between continuations (RMS pixel difference, averaged over pairs), split into a
# coarse part (the continuations blurred to the middle level $K/2$) and the fine remainder.
# `ihdm_core.evaluation.dynamics.branch_spread` runs the continuations and measures both.

# %%
n_branch = n_src = max(2, math.isqrt(P.n_grid) // 2)
gen = P.generator(2, P.device)
u_K, _ = kde_prior_sample(run.process, train_images, n_src, generator=P.generator(2))
traj = {}
sample(run.net, run.process, u_K, generator=gen,
       callback=lambda s: traj.__setitem__(s["k"], s["x"]))
k_coarse = max(1, K // 2)
split_levels = sorted({int(v) for v in np.round(np.linspace(K, 2, min(K - 1, 8)))}, reverse=True)
show_levels = sorted({min(split_levels, key=lambda k: abs(k - f * K))
                      for f in (0.9, 0.7, 0.5, 0.3)}, reverse=True)
branches = {kb: branch_spread(run.net, run.process, traj[kb], kb, n_branch, k_coarse, gen)
            for kb in split_levels}
spread = {"levels": split_levels, **{p: np.array([b[p] for b in branches.values()])
                                     for p in ("coarse", "fine")}}
print("RMS spread, coarse:", np.round(spread["coarse"], 4), " fine:", np.round(spread["fine"], 4))

# %% tags=["hide-input"]
fig = plots.branching_figure(traj, branches, show_levels, spread, k_coarse, sB,
                             f"{n_src} trajectories x {n_branch} continuations per split")
P.savefig(fig, "fig05b_stochastic_branching", runs=[run], seed=P.seed + 2, n=n_src * n_branch,
          caption=f"Fig. 5b: one trajectory split at several levels into {n_branch} continuations "
                  "with fresh noise (left); spread between continuations against the split level, "
                  "coarse vs. fine (right).")
plt.show()

# %% [markdown]
# Read the rows top to bottom: a split near $K$ can still end in different digits, a split in the
# middle keeps the digit and its pose and varies the stroke, a late split only changes pixels at
# the edges. On the right (each curve relative to its value for a split at the top level), the
# coarse spread falls off first, the fine spread persists until the last few steps: the successive
# bifurcations of the paper's Fig. 5b. (With a small model the late continuations can also differ
# in small defects; the ordering coarse-before-fine is what matters.)

# %% [markdown]
# ## Figures 15 and 17: shared initial states
#
# Each row starts from one prior draw $\mathbf u_K$ (first column: the same training digit blurred
# to $\sigma_{B,\max}$, plus the same $\delta$-noise) and differs only in the sampling noise. At
# $\sigma_{B,\max} = 20$ pixels a digit is spread over the whole $28\times28$ frame, so
# $\mathbf u_K$ is nearly flat and carries little more than the digit's overall brightness and a
# faint centre of mass. Different noise then produces different digits from the same start, often
# of different classes: the information content of a sample comes from the sampling noise, not
# from the prior. In the code, each prior draw is repeated once per column before sampling.

# %%
n_rows = math.isqrt(P.n_grid)
n_cols = max(1, P.n_grid // n_rows)
u_rows, idx_rows = kde_prior_sample(run.process, train_images, n_rows, generator=P.generator(3))
u_K = u_rows.repeat_interleave(n_cols, 0)
assert torch.equal(u_K.view(n_rows, n_cols, *u_K.shape[1:])[:, -1], u_rows)
x_shared = sample(run.net, run.process, u_K, generator=P.generator(3, P.device))
tiles = torch.cat([u_rows.cpu()[:, None], x_shared.clamp(0, 1).cpu().view(n_rows, n_cols,
                                                                          *u_K.shape[1:])], 1)
print(f"prior training indices: {idx_rows.tolist()}")

# %% tags=["hide-input"]
fig = plots.shared_start_figure(tiles, "Shared initial state per row; different sampling noise")
P.savefig(fig, "fig15_shared_initial_states", runs=[run], seed=P.seed + 3, n=n_rows * n_cols,
          caption="Figs. 15/17: samples with shared initial states u_K: each row starts from the "
                  f"prior draw in its first column ({n_cols} samples per row, delta = {delta}).")
plt.show()

# %% [markdown]
# Animated, for the first rows (up to four, with up to four samples each): every sample of a row
# starts from the row's $\mathbf u_K$, so each row begins as one image repeated and splits
# into different digits as the sampling noise accumulates.

# %%
rows_a, cols_a = min(n_rows, 4), min(n_cols, 4)
rec = Recorder(frame_levels(K))
sample(run.net, run.process, u_rows[:rows_a].repeat_interleave(cols_a, 0), callback=rec,
       generator=P.generator(5, P.device))
shared_traj = rec.frames()
start_rows = shared_traj[0].view(rows_a, cols_a, *shared_traj.shape[2:])
assert torch.equal(start_rows, start_rows[:, :1].expand_as(start_rows))  # one start per row

# %% tags=["hide-input"]
gif = P.save_animation(shared_traj, "anim15_shared_initial_state", runs=[run], seed=P.seed + 5,
                       n=rows_a * cols_a, nrow=cols_a, levels=rec.levels(),
                       labels=[f"k = {k}" if k else "k = 0: the samples" for k in rec.levels()],
                       caption=f"Sampling from shared initial states: each row of {cols_a} starts "
                               "from one prior draw u_K; only the sampling noise differs (delta = "
                               f"{delta}).")
display(show_animation(gif))

# %% [markdown]
# **What to take away.** Two short algorithms train and sample a working generative model:
# the loss is a per-level regression to a slightly sharper image, and sampling is that regression
# applied $K$ times with a little noise. Generation is coarse-to-fine in a literal sense, and the
# sampling noise, not the nearly flat prior state, decides what is drawn. How much noise to add is
# the subject of the next chapter, together with what goes wrong without the training noise
# $\sigma$.
