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
# # 11. Explore: turn the knobs yourself
#
# The chapters before this one fix every setting to reproduce a figure. Here the settings are
# yours. Opened in JupyterLab (`make lab`, then double-click this file), each explorer below is a
# row of controls over a live model: pick an image and blur it, sample a seed at another
# $\delta$, move along an interpolation, give a digit another prior colour, or ask which input
# pixels an output pixel depends on. In the HTML book the same explorers come precomputed: a
# frame slider under each one switches between stored pictures in the browser, without a kernel.
#
# The computation lives in `ihdm_core.book.explore` (one class per explorer, tested against the
# package functions it calls) and the controls in `ihdm_core.book.explore_widgets`; the cells
# here only connect them. Every result is cached by what determines it (model, seed, $\delta$,
# $T$, sampler, image), so moving a slider over a trajectory already sampled only redraws it;
# `benchmarks/bench_explore.py` measures how long each update takes.

# %% tags=["parameters"]
profile = "quick"

# %%
from IPython.display import HTML, display

from ihdm_core.book import explore as E

from ihdm_core.book import explore_compare as C

from ihdm_core.book import explore_draw as D
from ihdm_core.book import explore_widgets as ui
from ihdm_core.book.figures import savefig
from ihdm_core.book.photos import photograph
from ihdm_core.book.profiles import start

P = start(profile)
models = E.Models(profile)
ihdm = models.run("ihdm")
K = ihdm.process.K
T = min(50, P.grid_steps)  # steps of the continuous-time diffusions here: the DDPM runs on T levels
print(f"profile {P.name}: IHDM {ihdm.cfg.name} (K = {K}, delta = {ihdm.process.delta}), "
      f"diffusions sampled on T = {T} steps, device {models.device}")

# %% [markdown]
# ## 1. The forward process
#
# Choose a training digit, one of the photographs of chapter 2, or your own image file (the
# upload button adds it to the menu as a 64 x 64 luminance image), then move $k$. The left
# panel is $\mathbf u_0$, the middle one $\mathbf u_k = \mathbf F(t_k)\mathbf u_0$ with its
# $\sigma_B$, and the right one the radial power spectrum of $\mathbf u_k$ (blue) over that of
# $\mathbf u_0$ (grey) and the power law fitted to $\mathbf u_0$ (dashed). The title gives the share
# of the energy around the mean that is left. What to look for: the spectrum of $\mathbf u_k$
# bends down from the highest frequencies first, $e^{-\lambda t_k}$ per coefficient, so the
# energy share stays near 1 for the first levels although fine detail is already gone.

# %%
forward = E.ForwardExplorer(K, ihdm.process.sigma_max, ihdm.process.sigma_min)
train_images = models.images("ihdm")
for i in range(3):
    forward.add_image(f"digit {i}", train_images[i])
for name in ("camera", "astronaut", "grass"):
    forward.add_image(name, photograph(name, 64))

# %% tags=["remove-output"]
ui.forward(forward)

# %% [markdown]
# Precomputed: the photograph `camera` at eleven levels from $k = 0$ to $K$.

# %% tags=["remove-input"]
levels = sorted({round(i * K / 10) for i in range(11)})
display(HTML(D.slider_html(D.draw_forward, [forward.view("camera", k) for k in levels])))

# %% [markdown]
# ## 2. Generation
#
# Choose a model, a seed, and how to sample: $\delta$ for IHDM (the sampling noise of Alg. 2; the
# KDE prior uses it too), the number of steps $T$ and the sampler for DDPM and Blurring Diffusion
# (ancestral, or DDIM with $\eta = 0$). The large panel is the state at the chosen step, the strip
# below the whole trajectory at evenly spaced levels. What to look for: IHDM at $\delta = 0$ only
# sharpens its blurred prior state into a smooth blob; at the model's $\delta$ the same seed grows
# strokes. The diffusions instead start from pure noise, and the digit appears only in the last
# tenth of the steps.

# %%
generation = E.GenerationExplorer(models)

# %% tags=["remove-output"]
ui.generation(generation, steps_options=tuple(sorted({10, 20, T, 100, 250})))

# %% [markdown]
# Precomputed: seed 0 of the longest-trained IHDM model at its own $\delta$, every step (left: the
# state; the strip under it is the whole trajectory). The menu offers it and the main IHDM model,
# which shares its training budget with the two diffusions.

# %% tags=["remove-input"]
n_gen = len(generation.trajectory("long", 0)["levels"])
steps_shown = sorted({round(i * (n_gen - 1) / 10) for i in range(11)})
display(HTML(D.slider_html(D.draw_generation, [generation.view("long", 0, s) for s in steps_shown],
                           figsize=(7, 4))))

# %% [markdown]
# ## 3. Colour and shape
#
# The colour model (chapter 6) is IHDM on coloured digits with $\sigma_{B,\max}$ large enough
# that its prior state $\mathbf u_K$ is almost a flat colour. Keep the noise seed, choose the
# training image whose blurred state is the prior, and either keep its own colour or give it
# the colour you pick (its mean colour is replaced; the faint layout left at $\sigma_{B,\max}$
# stays). The sample follows. The left panel is the prior state, the middle one the sample
# with its colour error $\|\bar{\mathbf x} - \bar{\mathbf u}_K\|$ (the mean colours), the right
# one the same seed under a reference prior, with the correlation of the two samples' shape
# maps (1: the same shape, whatever the colours). What to look for: the colour error stays
# small for any colour, because the heat equation keeps the mean; the shape correlation says
# how much of the shape the noise alone decides. (The model is the profile's colour model
# trained longest, chapter 6's; in the quick profile `mnist-colour-long`, at the paper's
# $\sigma_{B,\max}$ = image size. Chapter 6 measures how far its shapes follow the noise: samples
# that share it look about as alike as two real digits of one class, far from the paper's faces.)

# %%
colour = E.ColourExplorer(models)

# %% tags=["remove-output"]
ui.colour(colour)

# %% [markdown]
# Precomputed: noise seed 0, the prior of training image 1 in six colours.

# %% tags=["remove-input"]
palette = ["#d03030", "#e0a020", "#40a040", "#3070d0", "#9040c0", "#808080"]
colour_views = [colour.view(0, colour=c, image=1) for c in palette]
display(HTML(D.slider_html(D.draw_colour, colour_views)))

# %% [markdown]
# ## 4. Interpolation
#
# Two seeds give two full sets of latents; the slider moves along the path between them, for
# IHDM, DDPM ancestral sampling and DDIM side by side (the construction of chapter 5). The strip
# on the right is the whole path, the dark frame the current one. What to look for: IHDM and DDIM
# morph smoothly; DDPM's ancestral path can jump between digits because its noise enters at
# every step.

# %%
interp = C.InterpolationExplorer(models, n_frames=P.n_interp, ddpm_steps=T)

# %% tags=["remove-output"]
ui.interpolation(interp)

# %% [markdown]
# Precomputed: seeds 0 and 1, every frame.

# %% tags=["remove-input"]
interp_views = [interp.view(0, 1, i) for i in range(interp.n_frames)]
display(HTML(D.slider_html(D.draw_interpolation, interp_views, figsize=(7, 4))))

# %% [markdown]
# ## 5. Input gradients
#
# Pick an output pixel and a level $k$: the maps are the gradients of the model's estimate at that
# pixel with respect to its input state (chapter 7's probe), for IHDM and DDPM on the same seed's
# trajectories. DDPM is sampled on IHDM's $K$ levels here, so level $k$ is the same $t = k/K$ for
# both. What to look for: IHDM's map is a smooth blob whose width follows the blur of the level;
# DDPM's is concentrated on the pixel itself plus a correction.

# %%
grads = C.GradientExplorer(models, generation)

# %% tags=["remove-output"]
ui.gradients(grads)

# %% [markdown]
# Precomputed: seed 0, the centre pixel, eight levels from $K$ down to 1.

# %% tags=["remove-input"]
H, W = ihdm.process.image_size
grad_levels = sorted({max(1, round(K - i * (K - 1) / 7)) for i in range(8)}, reverse=True)
grad_views = [grads.view(0, (H // 2, W // 2), k) for k in grad_levels]
display(HTML(D.slider_html(D.draw_gradients, grad_views, figsize=(5, 5))))

# %% [markdown]
# ## One picture of each explorer
#
# For the figure index and for readers of the PDF: the middle frame of each precomputed slider.

# %% tags=["hide-input"]
import matplotlib.pyplot as plt

fig = plt.figure(figsize=(8, 11))
parts = fig.subfigures(5, 1, height_ratios=[2.6, 4, 2.6, 4, 5])
D.draw_forward(parts[0], forward.view("camera", levels[len(levels) // 2]))
D.draw_generation(parts[1], generation.view("long", 0, steps_shown[len(steps_shown) // 2]))
D.draw_colour(parts[2], colour_views[0])
D.draw_interpolation(parts[3], interp_views[len(interp_views) // 2])
D.draw_gradients(parts[4], grad_views[len(grad_views) // 2])
savefig(fig, "fig_explorers", profile=P.name,
        runs=[models.run("long"), models.run("ddpm"), models.run("colour_long")],
        seed=0, n=1,
        caption="One view of each explorer of chapter 11: forward process, generation, "
                f"colour and shape, interpolation, input gradients. {P.caption}")
plt.show()
