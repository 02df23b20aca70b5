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
# # 7. Input gradients
#
# IHDM's forward process is (almost) deterministic, so we know what function the network is
# asked to approximate: a small step back along the heat equation. On a pixel grid, one explicit
# Euler step of the *reverse* heat equation is a local convolution (paper Eq. 13),
#
# $$u(x, y, t - dt) \approx u(x, y, t) -
# \begin{pmatrix} 0 & 1 & 0 \\ 1 & -4 & 1 \\ 0 & 1 & 0 \end{pmatrix} * u(x, y, t)\, dt,$$
#
# a sharpening kernel: the output pixel depends only on itself and its four neighbours. The exact
# inverse step
# $F(t_{k-1} - t_k) = \mathbf V e^{-\boldsymbol\Lambda (t_k - t_{k-1})}\mathbf V^\top$ is a
# convolution too, with a kernel that is concentrated near the pixel as long as $t_k - t_{k-1}$ is
# small. A network made mostly of convolutions that learns such steps should therefore have
# **localised, circularly symmetric input gradients**. The paper shows this for IHDM and contrasts
# it with a diffusion model, whose input dependence is "more global and complex" (Fig. 8).
#
# What we differentiate:
#
# * **IHDM:** the network's mean prediction
#   $\boldsymbol\mu_\theta(\mathbf u_k, k) = \mathbf u_k + f_\theta(\mathbf u_k, k)$
#   (`process.predict`), the quantity Alg. 2 uses as the next state.
# * **DDPM:** the predicted clean image
#   $\hat{\mathbf x}_\theta(\mathbf z_k, k) =
#   (\mathbf z_k - \sigma_k \boldsymbol\epsilon_\theta(\mathbf z_k, k))/\alpha_k$
#   (for a $\mathbf v$-predicting network,
#   $\hat{\mathbf x}_\theta = \alpha_k \mathbf z_k - \sigma_k \mathbf v_\theta$, the same
#   quantity).
#
# Both are what every process exposes as `process.denoised(net, x, k)`, the estimate its reverse
# step moves towards; `ihdm_core.evaluation.probes` takes it without the sampler's clip (a clip
# has no gradient) and differentiates it with respect to the input in $[0, 1]$ data units. We
# choose $\hat{\mathbf x}$ over $\boldsymbol\epsilon_\theta$ because, like
# $\boldsymbol\mu_\theta$, it is an *image* predicted from an image, in the same units (the map
# $\mathbf z = 2\mathbf x - 1$ cancels in the Jacobian) and with the same structure "identity +
# network correction", so the two Jacobians can be compared directly. The identity part is a
# single pixel ($1$ for IHDM, $1/\alpha_k$ for an $\boldsymbol\epsilon$-predicting DDPM,
# $\alpha_k$ for a $\mathbf v$-predicting one); the rest, which we call the *correction*, is the
# network's own dependence on the input. For DDPM the correction is
# $-(\sigma_k/\alpha_k)\,\partial\boldsymbol\epsilon_\theta/\partial\mathbf z_k$, so its shape
# (everything that is scale-free below) is exactly that of the $\boldsymbol\epsilon$-gradient.
#
# We take the gradient of one output pixel (channel 0, as the paper's "first channel") with respect
# to the whole input image with `torch.autograd`, at states of real sampling trajectories. Because
# the estimate is affine in the network output, the identity part is found by probing with a network
# that outputs zeros (`probes.identity_rows`); the correction is the full row minus it.

# %% tags=["parameters"]
profile = "quick"

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from ihdm_core.book import plots
from ihdm_core.book.profiles import start
from ihdm_core.evaluation import probes
from ihdm_core.training.data import load_dataset
from ihdm_core.training.train import ensure_trained
from ihdm_core.training.runs import is_available, load_run

# %%
P = start(profile)
# No new training: the IHDM model comes from chapter 3, the DDPM model from chapter 5 (cached).
ihdm = ensure_trained(P.config("ihdm"), device=P.device)
ddpm = ensure_trained(P.config("ddpm"), device=P.device)
models = {"IHDM": ihdm, "DDPM": ddpm}
images = load_dataset(ihdm.cfg.data)
C, H, W = ihdm.cfg.data.channels, ihdm.cfg.data.image_size, ihdm.cfg.data.image_size
print(f"profile {P.name}: IHDM K = {ihdm.process.K}, DDPM K = {ddpm.process.K}, images {C}x{H}x{W}")

# %% [markdown]
# ## States along sampling trajectories
#
# We sample a few images with each model and keep the states at a set of levels: one level near
# the end of the generative process, $k_{\text{end}} = \max(1, \operatorname{round}(K/10))$, and a
# handful spread over the trajectory for the centre pixel. Levels are the same *fractions* of $K$
# for both models, since their $K$ may differ. The sampler's callback hands over each state
# $\mathbf u_k$ (IHDM) or $\mathbf z_k$ (DDPM) as it passes level $k$; `probes.trajectory_states`
# keeps the requested ones, mapped to $[0, 1]$.

# %%
n_states = max(2, P.n_neighbours // 2)
fractions = (0.02, 0.1, 0.25, 0.5, 0.75, 1.0)
levels = {n: sorted({max(1, round(f * r.process.K)) for f in fractions}, reverse=True)
          for n, r in models.items()}
k_end = {n: max(1, round(r.process.K / 10)) for n, r in models.items()}
gen = P.generator()
x_K = {"IHDM": ihdm.process.prior_sample(n_states, images, generator=gen),
       "DDPM": ddpm.process.prior_sample(n_states, generator=gen)}
states = {n: probes.trajectory_states(r, x_K[n], set(levels[n]) | {k_end[n]}, P.seed)[0]
          for n, r in models.items()}
print(f"sampled {n_states} trajectories per model; levels: IHDM {levels['IHDM']} (k_end "
      f"{k_end['IHDM']}), DDPM {levels['DDPM']} (k_end {k_end['DDPM']})")

# %% [markdown]
# ## The gradients
#
# Four highlighted pixels, the centre first. Near the end of the process we take every trajectory
# at $k_{\text{end}}$ and every highlighted pixel; along the trajectory, every level of `levels` and
# the centre pixel. `probes.correction_rows` returns both the full Jacobian rows and the
# corrections, one backward pass per level.

# %%
pixels = torch.tensor([[round(fy * (H - 1)), round(fx * (W - 1))]
                       for fy, fx in [(0.5, 0.5), (0.3, 0.35), (0.62, 0.72), (0.28, 0.72)]])
centre, n_pix = pixels[0], len(pixels)
grads_end, grads_traj = {}, {}
for name, run in models.items():
    x = states[name][k_end[name]].repeat_interleave(n_pix, 0)
    grads_end[name] = probes.correction_rows(run.process, run.net, x,
                                             torch.full((len(x),), k_end[name]),
                                             pixels.repeat(n_states, 1))
    x = torch.cat([states[name][k] for k in levels[name]])
    k_traj = torch.tensor(levels[name]).repeat_interleave(n_states)
    grads_traj[name] = probes.correction_rows(run.process, run.net, x, k_traj,
                                              centre.repeat(len(x), 1))
    assert all(torch.isfinite(g).all() for g in grads_end[name] + grads_traj[name])

# %% [markdown]
# ## The ideal reverse heat step, for reference
#
# At the IHDM level $k_{\text{end}}$, with $dt = t_k - t_{k-1}$, the Jacobian row of one Euler
# step of Eq. 13 is $1 + 4\,dt$ at the pixel and $-dt$ at its four neighbours (the reflecting
# border only matters at the edge). The exact inverse step $F(-dt)$ is separable: the row for
# pixel $(i, j)$ is the outer product of row $i$ of $A_H(-dt)$ and row $j$ of $A_W(-dt)$ (chapter
# 1's 1-D heat matrices at negative time). Both are local convolutions: that is the structure a
# learned IHDM step can inherit. (`tests/test_chapters_b.py` checks that the exact row inverts the
# forward step, $F(-dt)F(dt) = \mathbf I$.)

# %%
ke = k_end["IHDM"]
dt = float(ihdm.process.t[ke] - ihdm.process.t[ke - 1])
euler, exact = probes.euler_row(H, W, centre, dt), probes.exact_inverse_row(H, W, centre, dt)
ci, cj = centre.tolist()
print(f"IHDM level k_end = {ke}: t_k = {float(ihdm.process.t[ke]):.4f}, dt = t_k - t_(k-1) = "
      f"{dt:.4f}; Euler centre {1 + 4 * dt:.3f}, neighbours {-dt:.4f}; exact inverse centre "
      f"{exact[ci, cj]:.3f}, neighbours {exact[ci + 1, cj]:.4f}, diagonal "
      f"{exact[ci + 1, cj + 1]:.5f}")

# %% [markdown]
# ## Figure 8 (left, middle): input gradients near the end of the process
#
# One state per model (the first trajectory) at level $k_{\text{end}}$, with the highlighted
# pixels marked; then the gradient of each highlighted output pixel with respect to the input
# image, on a symmetric-log colour scale with a linear range of $\pm 0.1$ (as in the paper's
# caption). Red is positive, blue negative. The bottom row shows the two ideal reverse heat steps
# for the centre pixel on the same scale.

# %% tags=["hide-input"]
fig = plots.gradients_end_figure({n: states[n][k_end[n]][0] for n in models},
                                 {n: grads_end[n][0][:n_pix, 0] for n in models}, pixels, k_end,
                                 {"ideal: Euler step (Eq. 13)": euler,
                                  "ideal: exact $F(-dt)$": exact})
P.savefig(fig, "fig08_input_gradients", runs=[ihdm, ddpm], seed=P.seed, n=1,
          caption="Fig. 8 (left, middle): input gradients of single output pixels (marked) near "
                  f"the end of the generative process (IHDM k = {k_end['IHDM']} of "
                  f"{ihdm.process.K}: d mu_theta / d u_k; DDPM k = {k_end['DDPM']} of "
                  f"{ddpm.process.K}: d x_hat / d z_k), symlog colours with linear cut-off 0.1; "
                  "bottom: the ideal reverse heat step (Euler, Eq. 13, and exact) at IHDM's level.")
plt.show()

# %% [markdown]
# ## Figure 8 (right): along the trajectory
#
# The gradient of the centre pixel at several levels of the same trajectory (generation runs left
# to right, from $k = K$ to small $k$), with a linear range of $\pm 0.01$ as in the paper. Each
# model gets its own colour scale: DDPM's identity part $1/\alpha_k$ is large at large $k$.

# %% tags=["hide-input"]
fig = plots.gradients_trajectory_figure(
    {n: [states[n][k][0] for k in levels[n]] for n in models},
    {n: grads_traj[n][0].view(len(levels[n]), n_states, C, H, W)[:, 0, 0]
     for n in models}, levels, centre)
P.savefig(fig, "fig08_gradients_trajectory", runs=[ihdm, ddpm], seed=P.seed, n=1,
          caption="Fig. 8 (right): the input gradient of the centre pixel along one sampling "
                  "trajectory per model (rows 1 and 3: the state the gradient is taken at), symlog "
                  "colours with linear cut-off 0.01.")
plt.show()

# %% [markdown]
# ## Locality and circular symmetry, measured
#
# For a Jacobian row $g$ around pixel $c$ we use the **correction** (the row minus its identity
# part), since the identity is trivially local and would dominate every measure:
#
# * the *share of gradient mass within radius $r$*: $\sum_{\|p-c\|\le r}|g_p| \,/\, \sum_p |g_p|$,
#   and the radii $r_{50}, r_{90}$ that hold 50% and 90% of it. A faint floor spread over the
#   whole image weighs a lot in this sum (there are hundreds of far pixels), so the table also gives
#   $r_{90}$ of the *energy* $g_p^2$, which measures where the bulk of the dependence sits;
# * the *radial profile*: mean $|g_p|$ over pixels at the same (rounded) distance $\|p-c\|$;
# * the *anisotropy*: $\sum_{p\ne c}(g_p - \bar g_{\text{ring}(p)})^2 / \sum_{p\ne c} g_p^2$,
#   where the rings group pixels at exactly the same distance from $c$. It is 0 for a circularly
#   symmetric pattern (the Euler stencil and the exact inverse step are) and near 1 when the
#   values at equal distance share no common level (e.g. a random pattern).
#
# Statistics average over all trajectories and highlighted pixels at $k_{\text{end}}$, and over
# trajectories for the centre pixel at the other levels. The ideal steps' corrections are their
# rows minus 1 at the pixel.

# %%
unit = torch.zeros(H, W)
unit[ci, cj] = 1
refs = {"Euler step (Eq. 13)": (euler - unit)[None], "exact inverse F(-dt)": (exact - unit)[None]}
corr = {n: grads_end[n][1][:, 0] for n in models} | refs
pix = {n: pixels.repeat(n_states, 1) for n in models} | {n: centre[None] for n in refs}
level = {n: (k_end[n], models[n].process.K) for n in models} | {n: (ke, ihdm.process.K)
                                                                for n in refs}
loc_rows = [{"model": n, "level k": level[n][0], "k / K": round(level[n][0] / level[n][1], 3),
             **probes.locality_stats(corr[n], pix[n])} for n in corr]
traj = {}
for n in models:
    g = grads_traj[n][1][:, 0].view(len(levels[n]), n_states, H, W)
    st = [probes.locality_stats(g[i], centre.repeat(n_states, 1)) for i in range(len(levels[n]))]
    traj[n] = {"k/K": np.array(levels[n]) / models[n].process.K} | {
        key: np.array([s[key] for s in st]) for key in ("r50", "r90", "anisotropy")}

# %% tags=["hide-input"]
t_ih = ihdm.process.t.double().cpu()
step_scale = ((torch.arange(1, ihdm.process.K + 1) / ihdm.process.K).numpy(),
              (2 * t_ih.diff()).sqrt().numpy())
fig = plots.locality_figure(
    probes.r_grid(H, W).numpy(), {n: probes.mass_share(corr[n], pix[n]).mean(0).numpy()
                                  for n in corr},
    {n: (lambda d, p: (d.numpy(), torch.nanmean(p, 0).numpy()))(
        *probes.radial_profile(corr[n], pix[n])) for n in corr},
    traj, step_scale, f"Locality near the end (k/K = {ke / ihdm.process.K:.2f})")
P.savefig(fig, "fig08_locality", runs=[ihdm, ddpm], seed=P.seed, n=n_states,
          caption="Locality of the learned steps: share of the gradient correction's mass within "
                  "radius r of the pixel (with the ideal reverse heat steps), its radial profile, "
                  "and the radii holding 50% / 90% of it along the trajectory. Averages over "
                  f"{n_states} trajectories and {n_pix} pixels.")
plt.show()
display(Markdown(P.save_table(loc_rows, "tab08_locality", runs=[ihdm, ddpm], seed=P.seed,
                              n=n_states,
                              caption="Locality and circular symmetry of the input-gradient "
                                      "correction near the end of the process: r50 / r90 (pixels), "
                                      "share of mass within 2 pixels, anisotropy (0 = circular), "
                                      "and the sign pattern at the pixel and its 4 neighbours.")))
for n in models:
    print(f"{n} anisotropy along the trajectory (k/K: value): "
          + ", ".join(f"{a:.2f}: {b:.2f}" for a, b in zip(traj[n]["k/K"], traj[n]["anisotropy"])))

# %% [markdown]
# ## The sign of the correction (Fig. 13b)
#
# The paper's App. C.3 notes that a model trained with $\sigma = 0$ has input gradients of the
# same shape as the regular model but with **opposite signs**: it learns a generic sharpening
# filter, i.e. literally the ill-posed inverse heat equation, whose Euler step has a positive
# correction at the pixel and negative ones at its neighbours (row "Euler step" above). With
# training noise $\sigma > 0$ the model must also denoise its input, which pulls the correction
# the other way (negative at the pixel, positive around it: a local smoothing). The table above
# gives the signs of the learned correction at $k_{\text{end}}$; if this profile's $\sigma = 0$
# model has already been trained (chapter 4 trains it), we probe it at the regular model's states,
# as in the paper's comparison, and compare the two.

# %%
cfg0 = P.config("sigma0")
run0 = load_run(cfg0, device=P.device) if is_available(cfg0) else None
signs = ("correction at pixel", "correction, 4 neighbours")
sign_rows = [{k: r[k] for k in ("model",) + signs} for r in loc_rows if r["model"] != "DDPM"]
if run0 is not None:
    x = states["IHDM"][ke].repeat_interleave(n_pix, 0)
    c0 = probes.correction_rows(run0.process, run0.net, x, torch.full((len(x),), ke),
                                pixels.repeat(n_states, 1))[1][:, 0]
    stats0 = probes.locality_stats(c0, pixels.repeat(n_states, 1))
    sign_rows.insert(1, {"model": "IHDM sigma=0"} | {k: stats0[k] for k in signs})
else:
    print(f"the sigma = 0 model ({cfg0.name}) is not trained in this run folder; only the regular "
          "model is shown")
for r in sign_rows:
    print(f"{r['model']:>22s}: correction at pixel {r[signs[0]]:+.4f}, 4 neighbours "
          f"{r[signs[1]]:+.4f}")

# %% tags=["hide-input"]
if run0 is not None:
    fig = plots.gradient_sign_figure(states["IHDM"][ke][0], centre,
                                     {f"sigma = {ihdm.process.sigma}": grads_end["IHDM"][1][0, 0],
                                      "sigma = 0": c0[0]})
    P.savefig(fig, "fig13b_gradient_sign", runs=[ihdm, run0], seed=P.seed, n=1,
              caption="Fig. 13b's remark: the input-gradient correction of the centre pixel for "
                      "the regular IHDM model and the model trained with sigma = 0, at the same "
                      "state (symlog, linear cut-off 0.002).")
    plt.show()

# %% [markdown]
# **Reading the result.** The paper's observation (Fig. 8) is visual: IHDM's gradients are blobs
# centred on the pixel, roughly circular and confined to a neighbourhood whose size grows with the
# blur scale of the level, while DDPM's reach across the image and have no simple shape. In the
# measures above that would be a small $r_{50}$/$r_{90}$ and low anisotropy for IHDM near the end
# of the process, against larger radii and anisotropy for DDPM; along the trajectory IHDM's radius
# should grow with $k$, as the inverse heat step at level $k$ spans about $\sqrt{t_k - t_{k-1}}$
# pixels, a growing length on the log-spaced schedule (dotted line in the right panel). The ideal
# steps set the scale: the Euler stencil holds all its mass within one pixel; the exact inverse
# step is an oscillating sharpening kernel (it multiplies frequency $\lambda$ by
# $e^{\lambda\,dt}$) that is concentrated near the pixel for small $dt$ but spreads quickly as
# $dt$ grows.
#
# *A floor everywhere.* Neither network is strictly local: GroupNorm normalises each feature map
# with statistics of the whole image, and self-attention mixes all positions of the coarsest
# feature maps, so every output pixel depends weakly on every input pixel. This shows as the flat
# tail of the radial profiles and inflates the mass-based $r_{90}$; the energy-based $r_{90}$ and
# the symlog maps separate the local core from that floor.
#
# *Small-scale caveats.* The quick models are the shipped reference U-Nets (1 M parameters, trained
# for about an hour on two CPU cores), far smaller than the paper's. The quick DDPM is a
# continuous-time cosine-schedule model sampled on $K = 250$ steps, so at $k/K = 0.1$ its state is
# still somewhat noisy ($\sigma_k \approx 0.16$). The gradients are those of the EMA networks in
# eval mode, exactly what sampling uses. With the smoke profile's untrained models the figures only
# show that the code runs.
