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
# # 2. Power spectra of natural images
#
# Sec. 3.3 of the paper connects IHDM to diffusion models through the frequency content of
# natural images. Their power spectral density (PSD) follows an approximate power law
# $1/f^\alpha$ with $\alpha \approx 2$: a straight line on log-log axes. Both forward processes
# destroy this spectrum from the high frequencies down, but in opposite ways:
#
# * **diffusion** adds white noise, whose PSD is flat. The noise floor rises and drowns the
#   frequencies one band at a time, highest first. Read backwards (generation), the PSD
#   approaches the $1/f^\alpha$ line **from above** as the floor sinks.
# * **heat dissipation** multiplies DCT coefficient $(n, m)$ by $e^{-\lambda_{nm} t}$ (Eq. 12),
#   i.e. the PSD by $e^{-2\lambda_{nm} t}$, which damps every frequency at once, the high ones
#   fastest. Read backwards, the PSD approaches the line **from below**.
#
# Both therefore generate coarse-to-fine. This chapter measures the power law on photographs that
# ship with scikit-image and scikit-learn (no downloads), shows how the 1-D PSD is made from the
# 2-D DCT (App. B.6, Fig. 10), draws Fig. 4, checks the closed-form expected PSDs of both
# processes against Monte Carlo, and looks at the spectrum of the MNIST digits the book's
# small-scale models train on. Nothing is trained here.

# %% tags=["parameters"]
profile = "quick"

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display

from ihdm_core import heat_forward, heat_times, to_float
from ihdm_core.book.figures import plot_power_law, save_table, savefig, show_images
from ihdm_core.book.photos import PHOTOS, load_photo, photograph
from ihdm_core.book.profiles import start
from ihdm_core.model.diffusion import linear_alpha_bars
from ihdm_core.model.spectra import (dct_power, diffusion_psd, fit_power_law, heat_psd, psd_z_scores, radial_average,
                                     radial_index, radial_psd)
from ihdm_core.training.data import load_dataset

P = start(profile)
cfg = P.config("ihdm")
K, sigma, s_min, s_max = cfg.process.K, cfg.process.sigma, cfg.process.sigma_min, cfg.process.sigma_max
SIZE = 128  # photographs: grayscale centre crops resized to SIZE x SIZE (cheap at any profile)
FIT = dict(fmin=4 / SIZE, fmax=0.5)  # fit range in cycles/pixel: skip scene layout and the corner bins

# %% [markdown]
# ## The photographs
#
# Natural scenes bundled with `skimage.data` and `sklearn.datasets.load_sample_images()`, in a
# fixed order (`ihdm_core.book.photos.PHOTOS`); the profile takes the first `P.psd_images`.
# `photograph` converts each to grayscale (luminance), crops the centre square and resizes it with
# anti-aliasing. Grayscale keeps one spectrum per picture; the anti-aliasing filter removes some
# power near the highest frequency of the new grid, one of the reasons why the measured exponents
# below come out steeper than 2.

# %%
if P.psd_images > len(PHOTOS):
    print(f"note: the profile asks for {P.psd_images} photographs; {len(PHOTOS)} ship offline, using all")
names = list(PHOTOS)[:P.psd_images]
raw = {n: load_photo(n) for n in names}
photos = torch.stack([photograph(raw[n], SIZE) for n in names])  # (N, SIZE, SIZE)
assert photos.shape == (len(names), SIZE, SIZE) and 0 <= photos.min() and photos.max() <= 1
example = photos[0]
print(f"profile {P.name}: {len(names)} photographs at {SIZE}x{SIZE} ({', '.join(names)}); IHDM K = {K}, "
      f"sigma = {sigma}, sigma_B in [{s_min}, {s_max}]")

# %% [markdown]
# ## Figure 10: from the 2-D DCT to a 1-D PSD
#
# The PSD of an image is taken in the orthonormal 2-D DCT basis, the eigenbasis of the heat
# equation: coefficient $(n, m)$ has power $|\tilde u_{nm}|^2$ and oscillates at
# $f = \sqrt{(n/2H)^2 + (m/2W)^2}$ cycles per pixel. The 1-D PSD averages the power over
# equal-frequency contours, the quarter circles $n^2 + m^2 \approx b^2$ (App. B.6).
# `ihdm_core.model.spectra.radial_index` assigns each coefficient its contour $b$; left, the partition
# on a small grid; right, the DCT power of the example photograph with some of the contours
# drawn.
#
# On a square $N\times N$ image, contour $b$ sits at $f = b / 2N$ cycles per pixel, and the heat
# equation's eigenvalue there is $\lambda = \pi^2 b^2 / N^2 = (2\pi f)^2$: every coefficient on a
# contour decays at the same rate, which is why averaging along contours loses nothing the heat
# equation cares about. The contours reach $f = \sqrt 2 / 2$ in the far corner of the square.

# %%
n_small = 12
idx_small, _ = radial_index(n_small, n_small)
idx_big, _ = radial_index(SIZE, SIZE)
power_ex = dct_power(example)
# the lowest contour is the constant image, the highest the far corner of the DCT square
assert idx_big.shape == power_ex.shape and int(idx_big[0, 0]) == 0 and int(idx_big[-1, -1]) == round((SIZE - 1) * 2 ** 0.5)

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(8.6, 3.9))
axes[0].imshow(idx_small % 10, cmap="tab10", vmin=0, vmax=10, alpha=0.55, origin="upper")
for (n, m), b in np.ndenumerate(idx_small.numpy()):
    axes[0].text(m, n, str(b), fontsize=6.5, ha="center", va="center")
axes[0].set(title=f"Equal-frequency contours b of a {n_small}x{n_small} DCT\n"
                  r"($b = \mathrm{round}\sqrt{n^2 + m^2}$, written in each coefficient)",
            xlabel="horizontal frequency index m", ylabel="vertical frequency index n")
im1 = axes[1].imshow(np.log10(power_ex.numpy() + 1e-12), cmap="magma", origin="upper", vmin=-8)
axes[1].contour(idx_big.numpy(), levels=np.arange(SIZE // 10, int(idx_big.max()), SIZE // 10) - 0.5, colors="w",
                linewidths=0.5, alpha=0.8)
axes[1].set(title=f"$\\log_{{10}}$ DCT power of '{names[0]}' ({SIZE}x{SIZE})\nwith every {SIZE // 10}th contour",
            xlabel="m", ylabel="n")
fig.colorbar(im1, ax=axes[1], shrink=0.85, label=r"$\log_{10}|\tilde u_{nm}|^2$")
savefig(fig, "fig10_dct_partition", profile=P.name, n=1,
        caption="Fig. 10: left, the partition of 2-D DCT frequencies into equal-frequency contours; right, the "
                f"DCT power of an example photograph ('{names[0]}', grayscale {SIZE}x{SIZE}) with the contours. "
                "The 1-D PSD averages the power along each contour.")
plt.show()

# %% [markdown]
# ## The $1/f^\alpha$ law
#
# The radially averaged PSD of each photograph on log-log axes, with a least-squares line
# $\log \mathrm{PSD} = \log A - \alpha \log f$ fitted over $4/\text{size} \le f \le 0.5$ cycles/pixel
# (`fit_power_law`; the lowest bins describe the scene layout of one picture, and beyond
# $f = 0.5$ only the corner of the DCT square contributes).
#
# A power law has no preferred scale: magnifying the image by a factor $s$ multiplies the PSD by a
# constant and leaves its shape unchanged, which is the usual reading of the $1/f^\alpha$ law for
# natural scenes. For this chapter the point is simpler: the power per coefficient falls by orders of
# magnitude from the lowest to the highest frequencies, so noise of a fixed power hides the high
# frequencies long before the low ones, and a blur damps the high frequencies first.

# %%
freqs, psds = radial_average(torch.stack([dct_power(p) for p in photos]))  # (N, n_bins)
fits = [fit_power_law(freqs, psds[i], **FIT) for i in range(len(names))]
rows = [{"image": n, "alpha": f["alpha"], "R^2": f["r2"], "fit f_min": f["fmin"], "fit f_max": f["fmax"]}
        for n, f in zip(names, fits)]
alphas = np.array([f["alpha"] for f in fits])
md = save_table(rows, "tab02_power_law", profile=P.name, n=len(names),
                caption=f"Power-law fits PSD ~ A / f^alpha of {len(names)} grayscale photographs at {SIZE}x{SIZE} "
                        f"(mean alpha {alphas.mean():.2f}, sd {alphas.std():.2f}).")
display(Markdown(md))

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.9), gridspec_kw={"width_ratios": [1, 1.5]})
show_images(axes[0], photos[:, None], nrow=int(np.ceil(np.sqrt(len(names)))), title="grayscale photographs")
for i, (n, f) in enumerate(zip(names, fits)):
    axes[1].loglog(freqs[1:], psds[i, 1:], color=f"C{i % 10}", lw=1, label=f"{n}: $\\alpha$ = {f['alpha']:.2f}")
    plot_power_law(axes[1], f, color=f"C{i % 10}", ls="--", lw=0.8)
axes[1].axvspan(FIT["fmin"], FIT["fmax"], color="0.93", zorder=0)
axes[1].set(xlabel="frequency f (cycles / pixel)", ylabel="PSD (mean power on the contour)",
            title=r"Radially averaged PSD and $A/f^\alpha$ fits (shaded: fit range)")
axes[1].legend(fontsize=7, ncol=2 if len(names) > 6 else 1, frameon=False)
savefig(fig, "fig02_psd_natural_images", profile=P.name, n=len(names),
        caption=f"1-D PSD of {len(names)} grayscale photographs ({SIZE}x{SIZE}, skimage/sklearn sample images) "
                "with fitted 1/f^alpha lines (dashed).")
plt.show()
print(f"alpha = {alphas.mean():.2f} +- {alphas.std():.2f} (mean +- sd over {len(names)} photographs), "
      f"R^2 from {min(f['r2'] for f in fits):.3f} to {max(f['r2'] for f in fits):.3f}")

# %% [markdown]
# Every photograph is close to a straight line ($R^2$ near 1 over more than a decade of
# frequency), so the power law holds. The exponent is steeper than the textbook $\alpha \approx 2$,
# mostly between 2.5 and 3.3 (table above): these are single, mostly object-centred pictures with
# smooth, out-of-focus backgrounds, some JPEG-compressed (which removes fine detail), all
# downsampled with an anti-aliasing filter, and each of these takes power away from the high
# frequencies. The value 2 is an average over large ensembles of natural scenes (van der Schaaf and
# van Hateren, 1996, report $1.88 \pm 0.43$), and single images scatter around it; texture-like
# photographs (grass, gravel, used by the larger profiles) come out flatter. None of the arguments
# below depend on the exact exponent, only on the PSD falling steeply with frequency.

# %% [markdown]
# ## Figure 4: the two forward processes in frequency space
#
# The expected PSD of a forward state has a closed form (`ihdm_core.model.spectra`). For an orthonormal
# DCT, white noise of variance $s^2$ puts power $s^2$ in every coefficient, so
#
# * diffusion (DDPM, on $\mathbf z_0 = 2\mathbf u_0 - 1$):
#   $\mathbb E|\widetilde{\mathbf z}_k|^2 = \bar\alpha_k |\widetilde{\mathbf z}_0|^2 + (1 - \bar\alpha_k)$;
# * heat dissipation: $\mathbb E|\widetilde{\mathbf u}_k|^2 = e^{-2\lambda t_k}|\widetilde{\mathbf u}_0|^2 + \sigma^2$.
#
# Red: Ho et al.'s linear schedule, $K = 1000$ (`linear_alpha_bars(1000)`; the book's DDPM
# baselines discretise the same process with fewer levels). Blue: the heat times $t_k$ of this
# profile's IHDM model at evenly spaced levels $k$, with its training noise $\sigma$. The example
# photograph is shown at the same levels, drawn with one shared noise image $\boldsymbol\epsilon$.
# Dashed: its fitted $A/f^\alpha$ line (times 4 in the diffusion's $[-1, 1]$ space, since
# $\mathbf z_0 = 2\mathbf u_0 - 1$ multiplies every non-constant coefficient by 2).

# %%
abar = linear_alpha_bars(1000)
diff_levels = [0, 2, 10, 50, 150, 400, 1000]
heat_levels = np.unique(np.round(np.linspace(0, K, len(diff_levels))).astype(int)).tolist()
t_k = heat_times(K, s_min, s_max).double()
z0 = 2 * example - 1
power_z0 = dct_power(z0)
_, rad_diff = radial_average(diffusion_psd(power_z0, abar[diff_levels]))  # (L, n_bins)
_, rad_heat = radial_average(heat_psd(power_ex, t_k[heat_levels], sigma))
eps = torch.randn(example.shape, generator=torch.Generator().manual_seed(P.seed))
thumb_diff = [((abar[k].sqrt() * z0 + (1 - abar[k]).sqrt() * eps + 1) / 2).clamp(0, 1).float() for k in diff_levels]
thumb_heat = [(heat_forward(example, float(t_k[k])) + sigma * eps).clamp(0, 1) for k in heat_levels]

# %% tags=["hide-input"]
fig = plt.figure(figsize=(11, 5.6))
panels = [("Diffusion (DDPM): noise floor sinks, PSD comes from above", diff_levels, rad_diff, thumb_diff, plt.cm.Reds,
           4.0, lambda k: f"k={k}, $1-\\bar\\alpha$={1 - float(abar[k]):.1g}", r"PSD of $\mathbf{z}_k$ ($[-1, 1]$ space)"),
          ("Heat dissipation (IHDM): damping lifts, PSD comes from below", heat_levels, rad_heat, thumb_heat, plt.cm.Blues,
           1.0, lambda k: f"k={k}, $\\sigma_B$={float(np.sqrt(2 * t_k[k])):.2g}", r"PSD of $\mathbf{u}_k$ ($[0, 1]$ space)")]
for sf, (title, levels, rad, thumbs, cmap, scale, label, ylabel) in zip(fig.subfigures(1, 2, wspace=0.03), panels):
    gs = sf.add_gridspec(2, len(levels), height_ratios=[1, 4.2])
    shades = cmap(np.linspace(0.45, 1.0, len(levels)))[::-1]
    ax = sf.add_subplot(gs[1, :])
    for j, (k, th) in enumerate(zip(levels, thumbs)):
        show_images(sf.add_subplot(gs[0, j]), th[None, None]).set_title(f"k={k}", fontsize=7, color=shades[j])
        ax.loglog(freqs[1:], rad[j, 1:], color=shades[j], lw=1.3, label=label(k))
    plot_power_law(ax, fits[0], scale, color="k", ls="--", lw=1, label=f"$A/f^{{\\alpha}}$ fit, $\\alpha$ = {fits[0]['alpha']:.2f}")
    ax.set(xlabel="frequency f (cycles / pixel)", ylabel=ylabel, ylim=(0.2 * rad[:, 1:].min(), None))
    ax.legend(fontsize=6.5, frameon=False, loc="lower left")
    sf.suptitle(title, fontsize=9)
savefig(fig, "fig04_psd_trajectories", profile=P.name, runs=[cfg], n=1, seed=P.seed,
        caption=f"Fig. 4: expected PSD of the forward states of '{names[0]}' ({SIZE}x{SIZE} grayscale). Red: "
                "DDPM with Ho et al.'s linear schedule (K = 1000); blue: heat dissipation at levels of the profile's "
                f"IHDM schedule (K = {K}, sigma_B,max = {s_max}, sigma = {sigma}). Dashed: the image's 1/f^alpha fit.")
plt.show()

# %% [markdown]
# On the right, the damping factor of the power is $e^{-2\lambda t} = e^{-(2\pi f)^2 \cdot 2t} = e^{-(2\pi f \sigma_B)^2}$,
# a Gaussian in frequency whose width $1/(2\pi\sigma_B)$ shrinks as the blur grows: frequencies
# well below it pass almost unchanged, those well above it are gone.
#
# Read from the bottom up, as generation runs. On the left, the first reverse steps remove noise
# that sits far above the image's power at every frequency except the lowest; as the floor sinks,
# each band of frequencies emerges in turn, and the finest details last. On the right, all
# frequencies are present from the start but damped: $e^{-(2\pi f \sigma_B)^2}$ leaves the lowest
# bands nearly untouched and drops the high ones below the noise floor $\sigma^2$. Generation
# lifts them together, the high frequencies lagging. Both are coarse-to-fine; the difference is
# that a diffusion step changes the whole image through global frequency components, while heat
# dissipation changes everything a little, locally. (The schedule is the one the profile's model
# uses on 28-pixel digits; on this larger photograph its $\sigma_{B,\max}$ still leaves the
# lowest bands, whereas a model for images of this size would blur up to about half the width,
# App. B.4.)
#
# A note on the paper's wording: Sec. 3.3 says that a little noise drowns "the lowest frequencies"
# while "the higher frequencies stay intact". The left panel shows the ordering the rest of that
# paragraph relies on: the bands that sink below the flat noise floor first are those with the
# least power, which under a $1/f^\alpha$ law are the *highest* frequencies, and generation ends
# with the high-frequency details.
#
# The paper draws a design lesson from the left panel (Sec. 3.3): because natural images have
# little power at high frequencies, white noise hides those first, so a diffusion model is
# implicitly a coarse-to-fine generator too, an inductive bias that comes from the data's spectrum
# and not from the model. Heat dissipation makes the same ordering explicit in the forward process.

# %% [markdown]
# ## A check of both closed forms by Monte Carlo
#
# Draw the forward states $\mathbf F(t)\mathbf u + \sigma\boldsymbol\epsilon$ and
# $\sqrt{\bar\alpha}\mathbf z_0 + \sqrt{1-\bar\alpha}\boldsymbol\epsilon$ in pixel space, take
# their DCT power, average over draws and over each contour, and compare with `heat_psd` and
# `diffusion_psd`. A coefficient with mean $a$ and noise variance $s^2$ has
# $\operatorname{Var}|a + s\epsilon|^2 = 4a^2s^2 + 2s^4$, which gives the standard error of every
# bin (`psd_z_scores`); the check asserts that no bin is off by more than 6 standard errors.
# Level 0 of the diffusion has no noise and nothing to check. A bound in standard errors rather
# than a fixed tolerance adapts to the size of each contour: the lowest contours hold one or two
# coefficients, the long ones in the middle hundreds.

# %%
n_draws = 32
gen = torch.Generator().manual_seed(P.seed + 1)
check = []
for k in heat_levels:
    mc = dct_power(heat_forward(example, float(t_k[k])) + sigma * torch.randn((n_draws, SIZE, SIZE), generator=gen))
    check.append(("heat", k, *psd_z_scores(mc, heat_psd(power_ex, t_k[k], sigma)[0], sigma ** 2, n_draws)))
for k in diff_levels[1:]:
    noise = torch.randn((n_draws, SIZE, SIZE), generator=gen).double()
    mc = dct_power(abar[k].sqrt() * z0.double() + (1 - abar[k]).sqrt() * noise)
    check.append(("diffusion", k, *psd_z_scores(mc, diffusion_psd(power_z0, abar[k])[0], float(1 - abar[k]), n_draws)))
for proc, k, z, rel in check:
    print(f"{proc:9s} k = {k:4d}: max |z| over {len(z)} contours = {np.abs(z).max():4.2f}, max relative deviation {rel:.3f}")
assert max(np.abs(c[2]).max() for c in check) < 6, "Monte Carlo PSD disagrees with the closed form"

# %% [markdown]
# ## And MNIST?
#
# The book's small-scale models are trained on MNIST digits, not natural images. Digits are
# white strokes of nearly constant width on a black background: most of their power sits at the
# frequency of the stroke width and below, and the spectrum bends over instead of following a
# straight line. Below, the mean PSD of the training digits (`radial_psd` averages the DCT power
# over all digits before the contours) next to the photographs resized to the same grid, each with
# a power-law fit over all non-zero frequencies up to 0.5 cycles/pixel, and in grey the spectra
# of eight single digits. The dotted line is the training-noise power $\sigma^2$.

# %%
digits = to_float(load_dataset(cfg.data, split="train"))
dsize = cfg.data.image_size
f_d, psd_digits = radial_psd(digits)
_, psd_photos_small = radial_psd(torch.stack([photograph(raw[n], dsize) for n in names]))
fits_d = {"digits": fit_power_law(f_d, psd_digits, fmax=0.5), "photos": fit_power_law(f_d, psd_photos_small, fmax=0.5)}
some = np.random.default_rng(P.seed).choice(len(digits), size=min(8, len(digits)), replace=False)
_, psd_some = radial_average(torch.stack([dct_power(digits[i]) for i in some]))
print(f"digits: alpha = {fits_d['digits']['alpha']:.2f}, R^2 = {fits_d['digits']['r2']:.3f};  "
      f"photographs at {dsize}x{dsize}: alpha = {fits_d['photos']['alpha']:.2f}, R^2 = {fits_d['photos']['r2']:.3f}")

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6), gridspec_kw={"width_ratios": [1, 1.6]})
show_images(axes[0], digits[some], nrow=4, title=f"{cfg.data.dataset} training digits")
axes[1].loglog(f_d[1:], psd_some[:, 1:].T, color="0.75", lw=0.6)
for (key, fit), psd, c, what in zip(fits_d.items(), (psd_digits, psd_photos_small), ("C3", "C0"),
                                    (f"{cfg.data.dataset} mean ({len(digits)} digits)", f"photographs at {dsize}x{dsize}")):
    axes[1].loglog(f_d[1:], psd[1:], color=c, lw=1.8, label=f"{what}: $\\alpha$ = {fit['alpha']:.2f}, $R^2$ = {fit['r2']:.2f}")
    plot_power_law(axes[1], fit, color=c, ls="--", lw=0.9)
axes[1].axhline(sigma ** 2, color="k", ls=":", lw=0.8, label=r"training noise $\sigma^2$")
ticks = [t for t in (0.03, 0.05, 0.1, 0.2, 0.5) if f_d[1] <= t <= f_d[-1]]
axes[1].set_xticks(ticks, [f"{t:g}" for t in ticks])
axes[1].xaxis.set_minor_formatter(plt.NullFormatter())
axes[1].set(xlabel="frequency f (cycles / pixel)", ylabel="PSD", title="Digits do not follow a power law (grey: single digits)")
axes[1].legend(fontsize=7, frameon=False, loc="upper right")
savefig(fig, "fig02b_psd_mnist", profile=P.name, runs=[cfg], n=len(digits), seed=P.seed,
        caption=f"1-D PSD of the {cfg.data.dataset} training digits (mean and 8 single digits) against the "
                f"photographs resized to {dsize}x{dsize}, with power-law fits (dashed). {P.caption}")
plt.show()

# %% [markdown]
# The digits' spectrum is band-pass rather than a power law: it *rises* from the lowest frequency
# to a peak at one of the lowest non-zero frequencies (about 0.04 cycles/pixel, a period comparable
# to the size of a whole digit), stays high up to about 0.1 (strokes and loops), then falls
# steeply, and levels off at the highest frequencies, where the sharp stroke edges on the coarse
# pixel grid leave some power. The photographs, shrunk to the same grid, fall nearly
# monotonically, and a straight line fits them much better (compare the $R^2$ above). So on MNIST
# the "approach the line from below" picture is only qualitative: the heat equation still removes
# the high frequencies first, but most of a digit's information sits in a narrow band of low
# frequencies, which $\sigma_{B,k}$ sweeps through within a fraction of the levels. That, and not
# the spectrum of natural images, is what the book's small-scale models see.
#
# **What to take away.** Natural photographs have power-law spectra (here $\alpha$ of about 2.5
# to 3.3), and under that law both diffusion and heat dissipation generate coarse-to-fine: diffusion
# approaches the spectrum from above, one frequency band after another, heat dissipation from
# below, all bands at once. The closed-form expected PSDs used for Fig. 4 agree with Monte Carlo.
