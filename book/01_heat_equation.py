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
# # 1. The heat equation as a forward process
#
# IHDM destroys information not by adding noise but by running the heat equation
# $\partial_t u = \Delta u$ over the image plane, with Neumann boundaries (zero derivative at
# the image border, so the image averages out to its mean as $t \to \infty$). This chapter
# checks, numerically, the three facts the rest of the book builds on (paper Sec. 3.1,
# App. A.1, B.5):
#
# 1. The solution is diagonal in the cosine basis: $\mathbf u(t) = \mathbf V e^{\mathbf\Lambda t} \mathbf V^\top \mathbf u(0)$,
#    i.e. DCT, decay every coefficient by $e^{-\lambda_{nm} t}$, inverse DCT (Alg. 3).
# 2. It is a Gaussian blur with $\sigma_B^2 = 2t$ (with reflecting borders).
# 3. The levels $t_k = \sigma_{B,k}^2 / 2$ are spaced so that $\sigma_{B,k}$ is log-uniform
#    from $\sigma_{B,\min} = 0.5$ to $\sigma_{B,\max}$; the information (DCT coefficients above
#    the noise floor $\sigma^2$) then drains at a roughly constant rate (Fig. 9).
#
# Nothing is trained here. The profile only supplies the schedule of its IHDM model: the number
# of levels $K$, the blur range $[\sigma_{B,\min}, \sigma_{B,\max}]$ and the training noise $\sigma$.
#
# Why the cosine basis (App. A.1): the eigenfunctions of $-\Delta$ on a rectangle with Neumann
# boundaries are $\cos(\pi n x / W)\cos(\pi m y / H)$ with eigenvalues
# $\lambda_{nm} = \pi^2 (n^2/W^2 + m^2/H^2)$. A pixel grid has a cut-off frequency, so the basis is
# finite and the projection onto it is the discrete cosine transform, $\tilde{\mathbf u} = \mathbf V^\top \mathbf u$.
# In that basis the PDE decouples into one scalar equation per coefficient,
# $\partial_t \tilde u_{nm} = -\lambda_{nm}\tilde u_{nm}$, solved by $\tilde u_{nm}(t) = e^{-\lambda_{nm} t}\tilde u_{nm}(0)$
# (Eq. 2). High frequencies have large $\lambda_{nm}$ and decay first; the constant image
# ($n = m = 0$, $\lambda_{00} = 0$) never decays.

# %% tags=["parameters"]
profile = "quick"

# %%
import matplotlib.pyplot as plt
import numpy as np
import scipy.fft
import scipy.ndimage
import torch

from ihdm_core import HeatDissipation, blur_sigmas, heat_forward, heat_times
from ihdm_core.book.figures import savefig, show_images
from ihdm_core.book.photos import photograph
from ihdm_core.book.profiles import start
from ihdm_core.model.spectra import dct_power, heat_psd, radial_average, share_above
from ihdm_core.training.data import load_dataset
from ihdm_core.model.images import to_float

P = start(profile)
cfg = P.config("ihdm")
K, sigma, s_min, s_max = cfg.process.K, cfg.process.sigma, cfg.process.sigma_min, cfg.process.sigma_max
print(f"profile {P.name}: K = {K}, sigma = {sigma}, sigma_B in [{s_min}, {s_max}]")

# %% [markdown]
# ## Algorithm 3, verbatim, against the package
#
# The paper's Alg. 3 projects a square image onto the cosine basis with two 1-D DCTs, multiplies
# coefficient $(n, m)$ by $e^{-\lambda_{nm} t}$ with $\lambda_{nm} = \pi^2 (n^2 + m^2) / N^2$ (Eq. 21,
# for an $N \times N$ image), and projects back. It does this with `scipy` in float64 and is copied
# below as printed, apart from the function name. `ihdm_core.heat_forward` applies the same
# operator as two precomputed float32 matrices, one per image axis, which is faster on small images
# and runs on a GPU. On a real photograph and a range of times the two agree to float32 round-off:

# %%
def heat_eq_forward_alg3(u, t):
    """The paper's Alg. 3 (square image, scipy DCT-II with orthonormal scaling)."""
    n = u.shape[0]
    freqs = np.pi * np.linspace(0, n - 1, n) / n
    frequencies_squared = freqs[:, None] ** 2 + freqs[None, :] ** 2
    u_proj = scipy.fft.dct(scipy.fft.dct(u, axis=0, norm="ortho"), axis=1, norm="ortho")
    u_proj = np.exp(-frequencies_squared * t) * u_proj
    return scipy.fft.idct(scipy.fft.idct(u_proj, axis=0, norm="ortho"), axis=1, norm="ortho")


photo = photograph("camera", 64)
errors = {t: np.abs(heat_forward(photo, t).double().numpy() - heat_eq_forward_alg3(photo.double().numpy(), t)).max()
          for t in [0.125, 1.0, 8.0, 50.0, 200.0]}
print("\n".join(f"t = {t:7.3f}  (sigma_B = {np.sqrt(2 * t):5.2f})   max |ours - Alg. 3| = {e:.2e}" for t, e in errors.items()))
assert max(errors.values()) < 1e-5

# %% [markdown]
# ## The Gaussian-blur duality, $\sigma_B^2 = 2t$
#
# On an infinite plane the heat kernel at time $t$ is a Gaussian of variance $2t$ (Sec. 3.1), so
# running the heat equation to $t$ is a Gaussian blur of width $\sigma_B = \sqrt{2t}$. On the image,
# Neumann boundaries are mirror reflections about the pixel edges, which is
# `scipy.ndimage.gaussian_filter(mode="reflect")`. Below, the largest pixel difference between the
# two on the same photograph, for blur widths from a third of a pixel to a quarter of the image.
# The two can differ only through the sampled, truncated Gaussian kernel, which matters for
# sub-pixel $\sigma_B$; the dotted line is one 8-bit grey level.
# Blurring an image with Gaussians of growing width is the Gaussian scale space of classical
# image processing; the paper works with the heat equation because it exposes that structure
# (and the frequency picture of chapter 2) directly.

# %%
sig = np.geomspace(0.3, 16, 25)
err = [np.abs(heat_forward(photo, s ** 2 / 2).double().numpy()
              - scipy.ndimage.gaussian_filter(photo.double().numpy(), s, mode="reflect", truncate=8.0)).max() for s in sig]

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(4.6, 3))
ax.loglog(sig, err, "o-", ms=3)
ax.axhline(1 / 255, color="0.5", ls=":", lw=1)
ax.text(sig[0], 1 / 255 * 1.2, "one 8-bit level", fontsize=7, color="0.4")
ax.set(xlabel=r"$\sigma_B = \sqrt{2t}$ (pixels)", ylabel=r"max $|F(t)u - G_{\sigma_B} * u|$",
       title="Heat equation vs. Gaussian blur (reflecting borders)")
savefig(fig, "fig01b_gaussian_duality", profile=P.name,
        caption="Heat equation solved in the DCT basis vs. scipy's Gaussian filter with sigma_B = sqrt(2t), "
                "on a 64x64 photograph (skimage 'camera').")
plt.show()

# %% [markdown]
# ## The schedule of App. B.5
#
# $\sigma_{B,k} = \exp\left(\log\sigma_{B,\min}\frac{K-k}{K-1} + \log\sigma_{B,\max}\frac{k-1}{K-1}\right)$,
# $t_k = \sigma_{B,k}^2/2$, and $t_0 = 0$ (the data). The paper sets $\sigma_{B,\min} = 0.5$ (a
# sub-pixel blur at the first level) and $\sigma_{B,\max}$ to about half the image width. The ratio
# $\sigma_{B,k+1}/\sigma_{B,k}$ is constant: every level removes the same fraction of the remaining
# resolution. The cell checks the constant ratio and $t_k = \sigma_{B,k}^2/2$ for the profile's schedule.
#
# Table 2 of the paper uses $\sigma_{B,\max} = 20$ for $28\times28$ MNIST and 24 for $32\times32$
# CIFAR-10, slightly more than half the width. App. B.4 reports that blurring to half the width
# gave better samples than blurring to the whole width, although the two final images carry
# about the same information; App. C.2 adds that the overlap between the blurred training and
# test sets, which the prior relies on, changes little beyond that point.

# %%
sB = blur_sigmas(K, s_min, s_max).double()
t_k = heat_times(K, s_min, s_max).double()
ratio = (sB[2:] / sB[1:-1]).numpy()
print(f"sigma_B,k+1 / sigma_B,k = {ratio.mean():.5f} +- {ratio.std():.1e} (constant); t_K = {t_k[-1]:.1f}")
assert np.allclose(t_k.numpy(), sB.numpy() ** 2 / 2, rtol=1e-6)

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(7.5, 2.8))
axes[0].plot(np.arange(1, K + 1), sB[1:], ".-", ms=3)
axes[1].plot(np.arange(1, K + 1), t_k[1:], ".-", ms=3, color="C1")
axes[0].set(yscale="log", xlabel="level $k$", ylabel=r"$\sigma_{B,k}$ (pixels)")
axes[1].set(yscale="log", xlabel="level $k$", ylabel="$t_k$")
fig.suptitle(f"Log-spaced blur schedule, K = {K}, sigma_B,max = {s_max}")
savefig(fig, "fig01c_schedule", profile=P.name, runs=[cfg],
        caption="The blur schedule of App. B.5 for the profile's IHDM model.")
plt.show()

# %% [markdown]
# ## Figure 1: the forward process
#
# Digits from the training set and a natural photograph, blurred to evenly spaced levels $k$ of the
# schedule, $\mathbf u_k = \mathbf F(t_k)\mathbf u_0$ (the noise $\sigma$ of $q(\mathbf u_k \mid \mathbf u_0)$
# is left out: at $\sigma = 0.01$ it is invisible). The digits use the profile's schedule; the
# $64\times64$ photograph uses $\sigma_{B,\max} = 32$, half its width, as the paper does for its
# data sets. Colour mass is redistributed, never lost: the DC coefficient has $\lambda_{00} = 0$,
# so every level keeps the image mean, which the cell asserts.

# %%
proc = HeatDissipation(28, K=K, sigma_max=s_max, sigma_min=s_min, sigma=sigma)
proc64 = HeatDissipation(64, K=K, sigma_max=32.0, sigma_min=s_min, sigma=sigma)
digits = to_float(load_dataset("mnist5k")[[0, 700, 1400, 2100]])
astro = photograph("astronaut", 64, gray=False)
levels = np.unique(np.round(np.linspace(0, K, 8)).astype(int))
traj = torch.stack([proc.blur(digits, int(kk)) for kk in levels], 1)  # (B, L, 1, H, W)
astro_traj = torch.stack([proc64.blur(astro[None], int(kk))[0] for kk in levels])
assert torch.allclose(traj.mean((-1, -2)), digits.mean((-1, -2))[:, None], atol=1e-5)

# %% tags=["hide-input"]
fig, axes = plt.subplots(len(digits) + 1, 1, figsize=(1.0 * len(levels), 1.05 * (len(digits) + 1)))
for ax, row in zip(axes, list(traj) + [astro_traj.clamp(0, 1)]):
    show_images(ax, row, nrow=len(levels))
axes[0].set_title("  ".join(f"k={kk}" for kk in levels), fontsize=8)
savefig(fig, "fig01_forward_process", profile=P.name, runs=[cfg],
        caption="Fig. 1: the heat-dissipation forward process u_k = F(t_k) u_0 at evenly spaced levels "
                f"(K = {K}; the photograph uses sigma_B,max = 32, half its width).")
plt.show()

# %% [markdown]
# ## Figure 9: how fast information drains
#
# In the cosine basis the heat equation multiplies coefficient $(n, m)$ by $e^{-\lambda_{nm} t}$, so
# its power becomes $e^{-2\lambda_{nm} t}|\tilde u_{nm}|^2$ (`heat_psd`). Below, for the photograph,
# that power averaged over equal-frequency contours (App. B.6; chapter 2 shows the contours) as
# $\sigma_B = \sqrt{2t}$ grows. The forward process $q(\mathbf u_k\mid\mathbf u_0)$ adds noise of
# variance $\sigma^2$ to every coefficient, so a coefficient whose power falls well below $\sigma^2$
# can no longer be told apart from noise: it is lost. Left: the 1-D PSD at a few blur widths;
# middle: all blur widths, with the $\sigma^2$ contour in white; right: the share of coefficients
# still above $\sigma^2$ (`share_above`). App. B.5 reports that with the log schedule this share
# falls at a roughly constant rate, slowing down towards the end.

# %%
power = dct_power(photo)
sig_axis = np.geomspace(0.5, 32, 120)
freqs, psd_t = radial_average(heat_psd(power, sig_axis ** 2 / 2))  # (n_sigma, n_bins)
alive = share_above(power, sig_axis ** 2 / 2, sigma ** 2)
psd_few = {s: radial_average(heat_psd(power, s ** 2 / 2))[1][0] for s in [0.0, 1.0, 4.0, 16.0]}

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 3, figsize=(11, 3.1), gridspec_kw={"width_ratios": [1, 1.3, 1]})
for s, p in psd_few.items():
    axes[0].loglog(freqs[1:], p[1:], label=rf"$\sigma_B = {s:g}$")
axes[0].axhline(sigma ** 2, color="k", ls="--", lw=1, label=r"$\sigma^2$")
axes[0].set(ylim=(1e-12, None), xlabel="frequency (cycles / pixel)", ylabel="PSD")
axes[0].legend(fontsize=7)
log_psd = np.log10(np.maximum(psd_t[:, 1:].T, 1e-12))
im = axes[1].pcolormesh(sig_axis, freqs[1:], log_psd, shading="auto", cmap="viridis", vmin=-12)
axes[1].contour(sig_axis, freqs[1:], log_psd, levels=[np.log10(sigma ** 2)], colors="w", linewidths=1)
axes[1].set(xscale="log", yscale="log", xlabel=r"$\sigma_B$", ylabel="frequency")
fig.colorbar(im, ax=axes[1], label=r"$\log_{10}$ PSD (white: $\sigma^2$)")
axes[2].semilogx(sig_axis, alive)
axes[2].set(xlabel=r"$\sigma_B$", ylabel=r"share of DCT coefficients above $\sigma^2$")
savefig(fig, "fig09_frequency_decay", profile=P.name,
        caption="Fig. 9: DCT power of a 64x64 photograph under the heat equation as sigma_B grows, against the "
                "training-noise floor sigma^2; right: share of coefficients still above it.")
plt.show()

# %% [markdown]
# Reversing this is the generative model's task, and it cannot be done exactly: the inverse step
# multiplies coefficient $(n, m)$ by $e^{+\lambda_{nm}(t_k - t_{k-1})}$, so any error in a coefficient
# that has sunk below $\sigma^2$ is amplified enormously (the inverse heat equation is ill-posed,
# Sec. 3.1). Information below the noise floor has to be generated, not recovered, which is where
# the sampling noise $\delta$ of chapter 4 comes in. Sec. 3.1 also puts this in terms of entropy:
# diffusion spreads the data over all $N$ pixel dimensions, whereas the heat equation shrinks it
# towards a one-dimensional set (the image mean; three dimensions for RGB).
#
# **What to take away.** The forward process is exact and cheap (two small matrix products per
# level), it is the Gaussian scale space of classical vision, and the log schedule removes
# resolution at a steady rate. The next chapter asks what this looks like in frequency space
# and how it relates to the noise of diffusion models.
