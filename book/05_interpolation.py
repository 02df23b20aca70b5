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
# # 5. Interpolation
#
# A sample of IHDM is a deterministic function of its *latents*: the prior state $\mathbf u_K$ and
# the $K-1$ sampling-noise images $\boldsymbol\nu_K, \dots, \boldsymbol\nu_2$ that Alg. 2 adds on
# the way down
# ($\mathbf u_{k-1} = \boldsymbol\mu_\theta(\mathbf u_k, k) + \delta\boldsymbol\nu_k$, no noise on
# the last step). Fixing all of them and moving smoothly between two sets of latents gives an
# interpolation between two samples (paper Sec. 4, Fig. 7b, App. D.2):
#
# * the prior states are interpolated **linearly**,
#   $\mathbf u_K(\alpha) = (1-\alpha)\mathbf u_K^{(1)} + \alpha\,\mathbf u_K^{(2)}$;
# * the noises are interpolated **spherically**,
#   $\boldsymbol\nu(\phi) = \sin\phi\,\boldsymbol\nu^{(2)} + \cos\phi\,\boldsymbol\nu^{(1)}$,
#   $\phi \in [0, \pi/2]$, because two independent high-dimensional Gaussian vectors are nearly
#   orthogonal and of equal length, and a straight line between them passes through vectors about
#   $\sqrt 2$ shorter half-way, i.e. through an effectively smaller $\delta$, which changes the
#   samples a lot (chapter 4).
#
# The paper prints the spherical interpolation as $\sin(\phi)\nu_1 + \cos(\pi/2-\phi)\nu_2$; since
# $\cos(\pi/2-\phi) = \sin\phi$ that is just $\sin\phi\,(\nu_1+\nu_2)$, a rescaled copy of the
# fixed vector $\nu_1 + \nu_2$ that reaches neither endpoint, so the intended formula is
# $\sin\phi\,\nu_1 + \cos\phi\,\nu_2$, which is what `ihdm_core.model.latents.slerp` implements.
#
# The paper then does the same for a DDPM (there: 200 steps on FFHQ), slerping both the
# initial Gaussian $\mathbf x_K$ and every per-step noise of ancestral sampling, and finds that its
# interpolations jump: the overall shape changes abruptly and intermediate frames show features
# present in neither endpoint (as Ho et al. noted). IHDM's interpolations change smoothly, which the
# paper attributes to its hierarchical latent space: $\mathbf u_K$ fixes the overall colour, early
# noises the coarse layout, late noises only the fine detail (that three-way breakdown is our
# reading; the paper says the latents are hierarchical). We add deterministic DDIM
# ($\eta = 0$, the output a function of $\mathbf x_K$ alone, slerp on $\mathbf x_K$ only) as a third
# row, since a deterministic sampler is the usual way to get smooth DDPM interpolations; the
# paper's project page reports IHDM interpolating more smoothly than DDIM too.

# %% tags=["parameters"]
profile = "quick"

# %% tags=["hide-input"]
import time

import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from ihdm_core.book import sampling_plots as plots
from ihdm_core.book.animate import show_animation
from ihdm_core.book.profiles import start
from ihdm_core.evaluation.dynamics import path_norms, smoothness
from ihdm_core.model.latents import interpolation, lerp_path
from ihdm_core.model.sampling import ddim_sample, sample
from ihdm_core.training.data import load_dataset
from ihdm_core.training.train import ensure_trained

# %%
P = start(profile)
ihdm = ensure_trained(P.config("ihdm"), device=P.device)
# Chapter 5 is the first to use the profile's DDPM: this trains it once (cached by config identity).
ddpm = ensure_trained(P.config("ddpm"), device=P.device)
train_images = load_dataset(ihdm.cfg.data)
C, H, W = ihdm.cfg.data.channels, ihdm.cfg.data.image_size, ihdm.cfg.data.image_size
print(f"profile {P.name}: IHDM K = {ihdm.process.K}, delta = {ihdm.process.delta}, sigma_B,max = "
      f"{ihdm.process.sigma_max};  DDPM K = {ddpm.process.K} ({ddpm.cfg.process.beta_schedule} "
      f"schedule);  device {P.device}")

# %% [markdown]
# ## Interpolating the latents
#
# Each endpoint is one full set of latents: for IHDM a KDE prior draw $\mathbf u_K$ (a blurred
# training image plus $\mathcal N(0, \delta^2)$) and $K$ noise images; for DDPM a Gaussian
# $\mathbf x_K$ and $K$ noise images. We take a few endpoint pairs and $N$ = `P.n_interp` frames per
# path, with $\alpha_i = i/(N-1)$ and $\phi_i = \frac{\pi}{2}\alpha_i$.

# %%
n_frames = P.n_interp
# a few endpoint pairs; the smoothness statistics average over them
n_pairs = max(2, P.n_grid // 16)
alpha = torch.linspace(0, 1, n_frames)
gen = P.generator()  # one stream: IHDM's endpoints first, then DDPM's
paths = {"IHDM": interpolation(ihdm.process, n_pairs, n_frames, images=train_images, generator=gen),
         "DDPM": interpolation(ddpm.process, n_pairs, n_frames, generator=gen)}
K, B = ihdm.process.K, n_pairs * n_frames
nu_end, nu_path = paths["IHDM"].noise_ends, paths["IHDM"].latents.noise.table

# %% [markdown]
# `interpolation` (in `ihdm_core.model.latents`) draws the $2 \times$ pairs endpoint latents from
# one generator, prior states first, and returns the paths flattened pair-major into one batch
# of pairs $\times N$ frames, so each sampler draws all frames of all pairs in one call. The
# first and last frame of each path are the endpoints' own latents (`tests/test_latents.py`
# checks this against the construction written out), so they are ordinary samples.

# %% [markdown]
# ## Why spherical: the norm of the noise along the path
#
# Measured on the actual noise sets (all $K$ steps of one endpoint form one vector of
# dimension $K \cdot C H W$): the slerp path keeps the norm of the endpoints, a straight line
# sags to $\sqrt{(1-\alpha)^2 + \alpha^2}$ of it, $1/\sqrt 2 \approx 0.71$ half-way.

# %%
norm_slerp = path_norms(nu_path, n_frames)
norm_lerp = path_norms(lerp_path(nu_end[:, :, 0], nu_end[:, :, 1], n_frames).flatten(-5, -4),
                       n_frames)
cos_end = torch.nn.functional.cosine_similarity(nu_end[:, :, 0].transpose(0, 1).flatten(1),
                                                nu_end[:, :, 1].transpose(0, 1).flatten(1), dim=1)
print(f"cosine between the two endpoint noise sets: {cos_end.abs().max():.2e} (max over pairs) - "
      "nearly orthogonal")
print(f"half-way norm / endpoint norm: slerp {norm_slerp[:, n_frames // 2].mean():.4f}, linear "
      f"{norm_lerp[:, n_frames // 2].mean():.4f}")
assert (norm_slerp - 1).abs().max() < 0.05           # slerp keeps the norm (to the small cosine)
assert norm_lerp[:, n_frames // 2].mean() < 0.75     # linear shrinks it to ~1/sqrt(2) half-way

# %% tags=["hide-input"]
fig = plots.noise_norm_figure(alpha, norm_slerp, norm_lerp)
P.savefig(fig, "fig07b_slerp_norm", runs=[ihdm], seed=P.seed, n=n_pairs,
          caption=f"Norm of the interpolated noise sets (K = {K} steps of {C}x{H}x{W} noise) along "
                  "the path, relative to the first endpoint: spherical interpolation keeps it, "
                  "linear interpolation sags to 1/sqrt(2) half-way (lines: theory for orthogonal "
                  "endpoints).")
plt.show()

# %% [markdown]
# The points are the measured norms (mean over the endpoint pairs), the lines the values for
# exactly orthogonal endpoints of equal norm, $1$ and $\sqrt{(1-\alpha)^2 + \alpha^2}$. The printed
# cosine is why the lines fit: independent draws of dimension $K \cdot CHW$ are orthogonal up to
# about $1/\sqrt{K \cdot CHW}$. In Alg. 2 the noise enters as $\delta\boldsymbol\nu_k$, so a path
# whose noise norm sags by a factor $s$ samples half-way with an effective $s\,\delta$.

# %% [markdown]
# ## Figure 7b: the three interpolations
#
# IHDM runs Alg. 2 with the interpolated prior states and noise tensor; DDPM runs ancestral
# sampling with its slerped $\mathbf x_K$ and noises, and DDIM ($\eta = 0$, all $K$ levels) with the
# slerped $\mathbf x_K$ only. Each frame is an independent sample; the batch holds all pairs and
# frames at once.

# %%
li, ld = paths["IHDM"].latents, paths["DDPM"].latents
samplers = {"IHDM": lambda: sample(ihdm.net, ihdm.process, li.x_K.to(P.device), noise=li.noise),
            "DDPM ancestral": lambda: sample(ddpm.net, ddpm.process, ld.x_K.to(P.device),
                                             noise=ld.noise),
            "DDPM DDIM": lambda: ddim_sample(ddpm.net, ddpm.process, ld.x_K.to(P.device), eta=0.0)}
rows, timings = {}, {}
for name, draw in samplers.items():  # one after the other, so each is timed alone
    t0 = time.perf_counter()
    rows[name] = draw().clamp(0, 1).cpu()
    timings[name] = time.perf_counter() - t0
    assert rows[name].shape == (B, C, H, W) and torch.isfinite(rows[name]).all()
print("sampling time: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
      + f"  ({B} images each)")

# %% tags=["hide-input"]
fig = plots.interpolation_figure(rows, n_frames, n_show=min(n_pairs, 3))
P.savefig(fig, "fig07b_interpolation", runs=[ihdm, ddpm], seed=P.seed, n=B,
          caption=f"Fig. 7b: interpolations between two sets of latents, {n_frames} frames. IHDM: "
                  "linear in u_K, spherical in the sampling noises; DDPM ancestral: spherical in "
                  "x_K and the noises; DDPM DDIM (eta = 0): spherical in x_K.")
plt.show()

# %% [markdown]
# **Reading the grid.** Within a pair, the first and last frames of each row are the samples of
# the two endpoint latent sets; everything in between is generated from the interpolated latents,
# so no frame is a blend of two images in pixel space. For IHDM the prior states are blends
# ($\mathbf u_K(\alpha)$ is linear in $\alpha$), but at $\sigma_{B,\max}$ they are nearly flat, so
# the rows differ mostly through the rotated noises $\boldsymbol\nu(\phi)$.

# %% [markdown]
# The same interpolations animated, the three samplers side by side, one grid tile per endpoint
# pair: frame $i$ shows every pair at $\alpha_i$, and the loop runs to the second endpoint and back.
# A smooth interpolation looks like a morph; a jumpy one flips between images.

# %% tags=["hide-input"]
# Pair-major (n_pairs * N, C, H, W) -> (N, n_pairs, C, H, W): frame i holds every pair at alpha_i.
frames = {name: x.view(n_pairs, n_frames, C, H, W).transpose(0, 1) for name, x in rows.items()}
gif = P.save_animation(frames, "anim07b_interpolation",
                       runs=[ihdm, ddpm], seed=P.seed, n=B, bounce=True, hold=4, fps=6, scale=3,
                       labels=[f"alpha = {a:.2f}" for a in alpha.tolist()],
                       caption=f"Fig. 7b animated: {n_frames} interpolation frames of {n_pairs} "
                               "endpoint pairs, IHDM, DDPM ancestral and DDPM DDIM side by side.")
display(show_animation(gif))

# %% [markdown]
# ## How smooth? Distances between consecutive frames
#
# A smooth interpolation moves a little at every frame; a jumpy one moves little, then a lot.
# We measure the $L_2$ distance $\|\mathbf x_{i+1} - \mathbf x_i\|_2$ between consecutive frames
# (pixels in $[0, 1]$), averaged over the endpoint pairs, and summarise each path by
#
# * the **jump ratio** $\max_i d_i / \operatorname{mean}_i d_i$ (1 for evenly spaced frames,
#   $N-1$ if all change happens in one step), and
# * the **detour** $\sum_i d_i / \|\mathbf x_{N-1} - \mathbf x_0\|$ (1 for a straight path in pixel
#   space; larger when the path passes through images that are in neither endpoint).

# %%
smooth = {name: smoothness(x, n_frames) for name, x in rows.items()}
stats = [{"sampler": name, "mean step (L2)": float(m["steps"].mean()),
          "jump ratio": float(m["jump"].mean()), "jump ratio (worst pair)": float(m["jump"].max()),
          "detour": float(m["detour"].mean()), "endpoint distance": float(m["ends"].mean()),
          "seconds": round(timings[name], 2)} for name, m in smooth.items()]

# %% tags=["hide-input"]
fig = plots.smoothness_figure(smooth, n_frames)
P.savefig(fig, "fig07b_smoothness", runs=[ihdm, ddpm], seed=P.seed, n=B,
          caption="L2 distance between consecutive interpolation frames (thick: mean over the "
                  f"{n_pairs} endpoint pairs, thin: each pair) for IHDM, DDPM ancestral sampling "
                  "and DDIM; right: the same relative to an evenly spaced straight path between "
                  "the endpoints.")
plt.show()
display(Markdown(P.save_table(stats, "tab07b_smoothness", runs=[ihdm, ddpm], seed=P.seed, n=B,
                              caption="Smoothness of the interpolations: mean L2 step between "
                                      "consecutive frames, jump ratio max/mean (1 = even), detour "
                                      "path length / endpoint distance (1 = straight).")))

# %%
by_jump = sorted(stats, key=lambda r: r["jump ratio"])
by_detour = sorted(stats, key=lambda r: r["detour"])
print("smoothest by jump ratio: " + " < ".join(f"{r['sampler']} ({r['jump ratio']:.2f})"
                                               for r in by_jump))
print("straightest by detour:   " + " < ".join(f"{r['sampler']} ({r['detour']:.2f})"
                                               for r in by_detour))

# %% [markdown]
# **Reading the result.** The paper's claim is qualitative (Fig. 7b and App. D.2 on FFHQ, AFHQ and
# LSUN): IHDM's frames change steadily, while DDPM's ancestral interpolations jump between
# unrelated images. In these measures that would be a jump ratio and detour near 1 for IHDM and
# clearly larger values for DDPM ancestral sampling; DDIM, deterministic given $\mathbf x_K$, is the
# usual remedy for diffusion models. The two lines above rank the three samplers in this run.
# Why IHDM should behave this way: its latents are ordered by scale. $\mathbf u_K$ is nearly flat
# (it mostly sets the mean intensity), the noise added at large $k$ survives the later reverse steps
# only through its coarse components, and noise added at small $k$ only moves fine detail, so a
# slow rotation of the noise moves the image slowly. In DDPM every step's noise acts on all
# frequencies at once, and the sampler can switch to a different mode of the data distribution
# when the latents cross a boundary between basins.
#
# Two things to keep in mind when reading the numbers. First, the measures are in pixel space: a
# path through blurry averages of two digits is "straight" there even if it is not a sequence of
# plausible digits, and a perfectly smooth morph of one stroke into another is not straight there
# (its detour is well above 1), so the jump ratio is the better smoothness measure and the figure
# matters as much as the table. Second, *small scale*: the quick profile's digits are 28 x 28 and
# its reference models trained for about an hour on two CPU cores, so both models produce
# imperfect digits and the contrast can be weaker than, or different from, the paper's FFHQ faces;
# with the smoke models (CI) the figures only show that the code runs. The latents, the frames and
# the metrics are computed the same way at every scale: the paper profile runs the same comparison
# with the paper profile's MNIST models (IHDM with K = 100 as in the paper, and a 1000-step DDPM
# of ours: the paper trained no MNIST DDPM; its DDPM comparison is on FFHQ with 200 steps).
