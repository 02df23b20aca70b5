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

# %% tags=["parameters"]
profile = "quick"

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import scipy.fft
import scipy.ndimage
import torch
from skimage import data as skdata
from skimage.transform import resize

from ihdm_core import HeatDissipation, blur_sigmas, heat_forward, heat_times
from ihdm_core.training.data import load_dataset, to_float
from ihdm_core.book.figures import savefig, show_images
from ihdm_core.book.profiles import start
from ihdm_core.model.spectra import dct_power, radial_average

P = start(profile)
cfg = P.config("ihdm")
K, sigma, s_min, s_max = cfg.process.K, cfg.process.sigma, cfg.process.sigma_min, cfg.process.sigma_max
print(f"profile {P.name}: K = {K}, sigma = {sigma}, sigma_B in [{s_min}, {s_max}]")

# %% [markdown]
# ## Algorithm 3, verbatim, against the package
#
# The paper's Alg. 3 does the DCT with `scipy.fftpack` in float64. `ihdm_core.heat_forward`
# applies the same operator as two precomputed float32 matrices (one per image axis). On a real
# photograph and a range of times the two agree to float32 round-off:

# %%
def heat_eq_forward_alg3(u, t):
    """The paper's Alg. 3 (square image, scipy DCT-II with orthonormal scaling)."""
    n = u.shape[0]
    freqs = np.pi * np.linspace(0, n - 1, n) / n
    frequencies_squared = freqs[:, None] ** 2 + freqs[None, :] ** 2
    u_proj = scipy.fft.dct(scipy.fft.dct(u, axis=0, norm="ortho"), axis=1, norm="ortho")
    u_proj = np.exp(-frequencies_squared * t) * u_proj
    return scipy.fft.idct(scipy.fft.idct(u_proj, axis=0, norm="ortho"), axis=1, norm="ortho")


photo = resize(skdata.camera().astype(np.float64) / 255.0, (64, 64), anti_aliasing=True)
rows = []
for t in [0.125, 1.0, 8.0, 50.0, 200.0]:
    ref = heat_eq_forward_alg3(photo, t)
    ours = heat_forward(torch.from_numpy(photo).float(), t).double().numpy()
    rows.append((t, math.sqrt(2 * t), np.abs(ours - ref).max()))
    print(f"t = {t:7.3f}  (sigma_B = {math.sqrt(2 * t):5.2f})   max |ours - Alg. 3| = {rows[-1][2]:.2e}")
assert max(r[2] for r in rows) < 1e-5

# %% [markdown]
# ## The Gaussian-blur duality, $\sigma_B^2 = 2t$
#
# On an infinite plane the heat kernel at time $t$ is a Gaussian of variance $2t$. On the image,
# Neumann boundaries are mirror reflections about the pixel edges, which is
# `scipy.ndimage.gaussian_filter(mode="reflect")`. The two differ only through the sampled
# (truncated) Gaussian kernel for sub-pixel $\sigma_B$, and agree closely beyond that:

# %%
sig = np.geomspace(0.3, 16, 25)
err = []
for s in sig:
    heat = heat_forward(torch.from_numpy(photo).float(), s ** 2 / 2).double().numpy()
    gauss = scipy.ndimage.gaussian_filter(photo, s, mode="reflect", truncate=8.0)
    err.append(np.abs(heat - gauss).max())
fig, ax = plt.subplots(figsize=(4.6, 3))
ax.loglog(sig, err, "o-", ms=3)
ax.set_xlabel(r"$\sigma_B = \sqrt{2t}$ (pixels)")
ax.set_ylabel(r"max $|F(t)u - G_{\sigma_B} * u|$")
ax.set_title("Heat equation vs. Gaussian blur (reflecting borders)")
ax.axhline(1 / 255, color="0.5", ls=":", lw=1)
ax.text(sig[0], 1 / 255 * 1.2, "one 8-bit level", fontsize=7, color="0.4")
savefig(fig, "fig01b_gaussian_duality", profile=P.name,
        caption="Heat equation solved in the DCT basis vs. scipy's Gaussian filter with sigma_B = sqrt(2t), "
                "on a 64x64 photograph (skimage 'camera').")
plt.show()

# %% [markdown]
# ## The schedule of App. B.5
#
# $\sigma_{B,k} = \exp\left(\log\sigma_{B,\min}\frac{K-k}{K-1} + \log\sigma_{B,\max}\frac{k-1}{K-1}\right)$,
# $t_k = \sigma_{B,k}^2/2$, and $t_0 = 0$ (the data). The ratio $\sigma_{B,k+1}/\sigma_{B,k}$ is
# constant: a constant rate of resolution loss.

# %%
sB = blur_sigmas(K, s_min, s_max).double()
t_k = heat_times(K, s_min, s_max).double()
ratio = (sB[2:] / sB[1:-1]).numpy()
print(f"sigma_B,k+1 / sigma_B,k = {ratio.mean():.5f} +- {ratio.std():.1e} (constant); t_K = {t_k[-1]:.1f}")
assert np.allclose(t_k.numpy(), sB.numpy() ** 2 / 2, rtol=1e-6)

fig, axes = plt.subplots(1, 2, figsize=(7.5, 2.8))
k = np.arange(K + 1)
axes[0].plot(k[1:], sB[1:], ".-", ms=3)
axes[0].set_yscale("log")
axes[0].set_xlabel("level $k$")
axes[0].set_ylabel(r"$\sigma_{B,k}$ (pixels)")
axes[1].plot(k[1:], t_k[1:], ".-", ms=3, color="C1")
axes[1].set_yscale("log")
axes[1].set_xlabel("level $k$")
axes[1].set_ylabel("$t_k$")
fig.suptitle(f"Log-spaced blur schedule, K = {K}, sigma_B,max = {s_max}")
savefig(fig, "fig01c_schedule", profile=P.name, runs=[cfg],
        caption="The blur schedule of App. B.5 for the profile's IHDM model.")
plt.show()

# %% [markdown]
# ## Figure 1: the forward process
#
# Digits from the training set and a natural photograph, blurred to a few levels of the
# schedule. Colour mass is redistributed, never lost: every level keeps the mean.

# %%
proc = HeatDissipation(28, K=K, sigma_max=s_max, sigma_min=s_min, sigma=sigma)
digits = to_float(load_dataset("mnist5k")[[0, 700, 1400, 2100]])
levels = np.unique(np.round(np.linspace(0, K, 8)).astype(int))
traj = torch.stack([proc.blur(digits, int(kk)) for kk in levels], 1)  # (B, L, 1, H, W)
astro = torch.from_numpy(resize(skdata.astronaut() / 255.0, (64, 64, 3), anti_aliasing=True)).permute(2, 0, 1).float()
proc64 = HeatDissipation(64, K=K, sigma_max=32.0, sigma_min=s_min, sigma=sigma)
astro_traj = torch.stack([proc64.blur(astro[None], int(kk))[0] for kk in levels])
assert torch.allclose(traj.mean((-1, -2)), digits.mean((-1, -2))[:, None], atol=1e-5)

fig, axes = plt.subplots(len(digits) + 1, 1, figsize=(1.0 * len(levels), 1.05 * (len(digits) + 1)))
for i in range(len(digits)):
    show_images(axes[i], traj[i], nrow=len(levels))
show_images(axes[-1], astro_traj.clamp(0, 1), nrow=len(levels))
axes[0].set_title("  ".join(f"k={kk}" for kk in levels), fontsize=8)
savefig(fig, "fig01_forward_process", profile=P.name, runs=[cfg],
        caption="Fig. 1: the heat-dissipation forward process u_k = F(t_k) u_0 at evenly spaced levels "
                f"(K = {K}; the photograph uses sigma_B,max = 32, half its width).")
plt.show()

# %% [markdown]
# ## Figure 9: how fast information drains
#
# For one image, the squared DCT coefficients $e^{-2\lambda t}|\tilde u|^2$ averaged over
# equal-frequency contours (App. B.6), as a function of $\sigma_B$. Coefficients that fall
# well below the training-noise power $\sigma^2$ can no longer be told apart from noise in
# $q(\mathbf u_k\mid\mathbf u_0)$. With the log schedule, the count of surviving frequencies
# falls at a roughly constant rate per level.

# %%
gray = torch.from_numpy(photo).float()
power = dct_power(gray)
lam = (math.pi * torch.arange(64, dtype=torch.float64) / 64) ** 2
lam2 = lam[:, None] + lam[None, :]
sig_axis = np.geomspace(0.5, 32, 120)
decayed = torch.exp(-2 * lam2[None] * torch.tensor(sig_axis ** 2 / 2)[:, None, None]) * power
freqs, psd_t = radial_average(decayed)  # (n_sigma, n_bins)
alive = (decayed > sigma ** 2).double().mean((1, 2)).numpy()

fig, axes = plt.subplots(1, 3, figsize=(11, 3.1), gridspec_kw={"width_ratios": [1, 1.3, 1]})
f0, psd0 = radial_average(power[None])
axes[0].loglog(f0[1:], psd0[0, 1:], label=r"$\sigma_B = 0$")
for s in [1.0, 4.0, 16.0]:
    d = torch.exp(-2 * lam2 * s ** 2 / 2) * power
    fs, ps = radial_average(d[None])
    axes[0].loglog(fs[1:], ps[0, 1:], label=rf"$\sigma_B = {s:g}$")
axes[0].axhline(sigma ** 2, color="k", ls="--", lw=1, label=r"$\sigma^2$")
axes[0].set_ylim(1e-12, None)
axes[0].set_xlabel("frequency (cycles / pixel)")
axes[0].set_ylabel("PSD")
axes[0].legend(fontsize=7)
im = axes[1].pcolormesh(sig_axis, freqs[1:], np.log10(np.maximum(psd_t[:, 1:].T, 1e-12)), shading="auto",
                        cmap="viridis", vmin=-12)
axes[1].contour(sig_axis, freqs[1:], np.log10(np.maximum(psd_t[:, 1:].T, 1e-12)), levels=[math.log10(sigma ** 2)],
                colors="w", linewidths=1)
axes[1].set_xscale("log")
axes[1].set_yscale("log")
axes[1].set_xlabel(r"$\sigma_B$")
axes[1].set_ylabel("frequency")
fig.colorbar(im, ax=axes[1], label=r"$\log_{10}$ PSD (white: $\sigma^2$)")
axes[2].semilogx(sig_axis, alive)
axes[2].set_xlabel(r"$\sigma_B$")
axes[2].set_ylabel(r"share of DCT coefficients above $\sigma^2$")
savefig(fig, "fig09_frequency_decay", profile=P.name,
        caption="Fig. 9: DCT power of a 64x64 photograph under the heat equation as sigma_B grows, against the "
                "training-noise floor sigma^2; right: share of coefficients still above it.")
plt.show()

# %% [markdown]
# **What to take away.** The forward process is exact and cheap (two small matrix products per
# level), it is the Gaussian scale space of classical vision, and the log schedule removes
# resolution at a steady rate. The next chapter asks what this looks like in frequency space
# and how it relates to the noise of diffusion models.
