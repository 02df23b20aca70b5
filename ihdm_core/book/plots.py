"""Plotting detail of chapters 6-9 (what a trained model does: colour, input gradients, prior
overlap, the three processes) that would otherwise fill their cells: each function draws one
figure (or panel) from numbers a chapter computed and returns the matplotlib figure. No function
here computes a result; the chapters' measurements live in ``ihdm_core.evaluation``. Chapters 3-5
(training, sampling noise, interpolation) have theirs in :mod:`ihdm_core.book.sampling_plots`."""

from __future__ import annotations


import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import SymLogNorm

from .figures import show_images

__all__ = ["MARKERS", "show_state", "show_gradient", "symlog", "gradients_end_figure",
           "gradients_trajectory_figure", "locality_figure", "gradient_sign_figure",
           "prior_overlap_figure", "neighbours_figure", "distance_histogram",
           "forward_processes_figure", "samples_figure", "step_ratio_figure", "chains_figure",
           "data_and_prior_figure", "colour_grid_figure"]

MARKERS = ["#00e000", "#ff9900", "#00c8ff", "#ff44cc"]  # one outline colour per highlighted pixel


def _bare(ax, title=None):
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def show_state(ax, u, title=None, pix=None, colour=MARKERS[0]):
    """An image (C, H, W) in [0, 1], optionally with an outline around pixel ``pix``."""
    img = u.clamp(0, 1)
    ax.imshow(img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy(), cmap="gray",
              vmin=0, vmax=1, interpolation="nearest")
    if pix is not None:
        ax.plot(int(pix[1]), int(pix[0]), "s", ms=4.5, mfc="none", mec=colour, mew=1.2)
    _bare(ax, title)


def show_gradient(ax, g, norm, pix=None, colour="k", title=None):
    """A Jacobian row (H, W) in red (positive) and blue (negative), the pixel outlined."""
    im = ax.imshow(g.numpy(), cmap="RdBu_r", norm=norm, interpolation="nearest")
    if pix is not None:  # an outline leaves the pixel's own value visible
        ax.plot(int(pix[1]), int(pix[0]), "s", ms=7, mfc="none", mec=colour, mew=0.9)
    for sp in ax.spines.values():
        sp.set_visible(True)
        sp.set_color("0.75")
    _bare(ax, title)
    return im


def symlog(vmax: float, linthresh: float) -> SymLogNorm:
    return SymLogNorm(linthresh=linthresh, vmin=-vmax, vmax=vmax, base=10)


def gradients_end_figure(states, grads, pixels, k_end, ideal: dict):
    """Fig. 8 left/middle: per model (row) a state and one gradient per highlighted pixel; the
    bottom row shows the ideal reverse steps ``ideal`` {title: row} for the first pixel."""
    names, n_pix = list(states), len(pixels)
    fig, axes = plt.subplots(len(names) + 1, n_pix + 1,
                             figsize=(1.75 * (n_pix + 1) + 0.8, 1.85 * (len(names) + 1)))
    vmax = max([float(grads[n][0].abs().max()) for n in names]
               + [float(v.abs().max()) for v in ideal.values()])
    norm = symlog(vmax, 0.1)
    for r, name in enumerate(names):
        show_state(axes[r, 0], states[name], f"{name} state, k = {k_end[name]}")
        for p in range(n_pix):
            axes[r, 0].plot(int(pixels[p, 1]), int(pixels[p, 0]), "s", ms=4.5, mfc="none",
                            mec=MARKERS[p], mew=1.2)
            im = show_gradient(axes[r, p + 1], grads[name][p], norm, pixels[p], MARKERS[p],
                               f"{name}: pixel {tuple(pixels[p].tolist())}")
    axes[-1, 0].set_axis_off()
    for c in range(1, n_pix + 1):
        if c - 1 < len(ideal):
            title, row = list(ideal.items())[c - 1]
            show_gradient(axes[-1, c], row, norm, pixels[0], MARKERS[0], title)
        else:
            axes[-1, c].set_axis_off()
    fig.colorbar(im, ax=axes[:, -1], shrink=0.6,
                 label="d output / d input (symlog, linear within ±0.1)")
    return fig


def gradients_trajectory_figure(states, grads, levels, centre):
    """Fig. 8 right: per model two rows (states, gradients of the centre pixel) over ``levels``."""
    names = list(states)
    n_lv = max(len(v) for v in levels.values())
    fig, axes = plt.subplots(2 * len(names), n_lv,
                             figsize=(1.45 * n_lv + 1.1, 1.5 * 2 * len(names)))
    for r, name in enumerate(names):
        lv = levels[name]
        # One colour scale per model: DDPM's x_hat has an identity part 1/alpha_k that is huge at
        # large k.
        norm = symlog(float(grads[name].abs().max()), 0.01)
        for c in range(n_lv):
            if c >= len(lv):
                axes[2 * r, c].set_axis_off()
                axes[2 * r + 1, c].set_axis_off()
                continue
            show_state(axes[2 * r, c], states[name][c], f"{name}, k = {lv[c]}", centre)
            im = show_gradient(axes[2 * r + 1, c], grads[name][c], norm, centre, MARKERS[0])
        fig.colorbar(im, ax=axes[2 * r + 1, -1], shrink=0.9,
                     label=f"{name} gradient\n(symlog, ±0.01 linear)")
    return fig


LOCALITY_STYLES = {"IHDM": dict(color="C0", lw=2), "DDPM": dict(color="C1", lw=2),
                   "Euler step (Eq. 13)": dict(color="0.3", lw=1, ls="--"),
                   "exact inverse F(-dt)": dict(color="0.3", lw=1, ls=":")}


def locality_figure(radii, shares, profiles, trajectory, step_scale, title_end):
    """Three panels: mass share within r (``shares`` {name: (R,)}), radial profiles (``profiles``
    {name: (distances, mean profile)}), and r50 / r90 along the trajectory (``trajectory``
    {name: {"k/K", "r50", "r90"}}) with the IHDM step scale ``step_scale`` = (k/K, scale)."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.3))
    ax = axes[0]
    for name, sh in shares.items():
        ax.plot(radii, sh, label=name, **LOCALITY_STYLES[name])
    ax.set(xlabel="radius $r$ around the pixel (pixels)", ylabel="share of |correction| within $r$",
           title=title_end, ylim=(0, 1.02))
    ax.legend(fontsize=7)
    ax = axes[1]
    for name, (dist, prof) in profiles.items():
        ok = np.isfinite(prof) & (prof > 1e-12)
        ax.semilogy(dist[ok], prof[ok], marker=".", ms=3, label=name, **LOCALITY_STYLES[name])
    ax.set(xlabel="distance from the pixel (pixels)", ylabel="mean |correction| at that distance",
           title="Radial profile near the end")
    ax.legend(fontsize=7)
    ax = axes[2]
    for name, ts in trajectory.items():
        c = LOCALITY_STYLES[name]["color"]
        ax.plot(ts["k/K"], ts["r50"], "o-", ms=4, color=c, label=f"{name} $r_{{50}}$")
        ax.plot(ts["k/K"], ts["r90"], "s--", ms=3, color=c, alpha=0.6, label=f"{name} $r_{{90}}$")
    ax.plot(*step_scale, color="0.4", lw=1, ls=":",
            label=r"IHDM step scale $\sqrt{2(t_k - t_{k-1})}$")
    ax.set(xlabel="level $k / K$ (generation runs right to left)",
           ylabel="radius holding 50% / 90% of the mass",
           title="Spread of the centre pixel's gradient")
    ax.legend(fontsize=6.5, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    return fig


def gradient_sign_figure(state, centre, rows: dict):
    """Fig. 13b's comparison: a state and the correction rows {title: (H, W)} of several models."""
    fig, axes = plt.subplots(1, len(rows) + 1, figsize=(2.1 * (len(rows) + 1), 2.2))
    norm = symlog(max(float(v.abs().max()) for v in rows.values()), 0.002)
    show_state(axes[0], state, "state", centre)
    for ax, (title, row) in zip(axes[1:], rows.items()):
        im = show_gradient(ax, row, norm, centre, MARKERS[0], title)
    fig.colorbar(im, ax=axes[-1], shrink=0.8, label="correction (symlog, ±0.002)")
    return fig


def prior_overlap_figure(overlap, thumbs, floor: float, log_nt: float, s_max: float, D: int,
                         title: str):
    """Fig. 12: thumbnails ``thumbs`` {sigma_B,max: image (C, H, W)} on top; below, L_K of test and
    training images against sigma_B,max (mean and 10-90% band), in full and above the floor c."""
    s_grid = np.array([r[0] for r in overlap])
    fig = plt.figure(figsize=(10, 5.2))
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 4.2])
    for ax, (s_B, img) in zip(np.atleast_1d(top.subplots(1, len(thumbs))), thumbs.items()):
        ax.imshow(img.permute(1, 2, 0).squeeze(-1).clamp(0, 1).cpu().numpy(), cmap="gray", vmin=0,
                  vmax=1)
        ax.set_axis_off()
        ax.set_title(f"$\\sigma_{{B,\\max}}$ = {s_B:g}", fontsize=7)
    ax_full, ax_zoom = bottom.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1]})
    for label, col, c, mk in [("test images (held out)", 1, "C0", "o"),
                              ("training images", 2, "C3", "s")]:
        vals = [r[col] for r in overlap]
        mean = np.array([float(v.mean()) for v in vals])
        lo, hi = (np.array([float(v.quantile(q)) for v in vals]) for q in (0.1, 0.9))
        for ax, off in [(ax_full, 0.0), (ax_zoom, floor)]:
            ax.fill_between(s_grid, lo - off, hi - off, color=c, alpha=0.15, lw=0)
            ax.plot(s_grid, mean - off, marker=mk, color=c, ms=4,
                    label=f"{label}: mean, 10-90% band")
    for ax, off in [(ax_full, 0.0), (ax_zoom, floor)]:
        ax.axhline(floor + log_nt - off, color="0.4", ls="--", lw=0.8,
                   label=r"memorised: own centre only, $c + \log N_T$")
        ax.axvline(s_max, color="k", lw=0.8, alpha=0.4)
        ax.set_xscale("log")
        ax.set_xticks(s_grid, [f"{v:g}" for v in s_grid])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel(r"$\sigma_{B,\max}$ (pixels; grey line: the profile's model)")
    ax_full.axhline(floor, color="0.4", ls=":", lw=0.8,
                    label=r"floor $c = \frac{D}{2}(\frac{\sigma^2}{\delta^2} - 1 - "
                    r"\log\frac{\sigma^2}{\delta^2})$")
    ax_full.set(yscale="log", ylabel=r"$L_K$ upper bound (nats per image)",
                title="all of it (log scale)")
    right = ax_full.secondary_yaxis("right", functions=(lambda x: x / D, lambda x: x * D))
    right.set_ylabel("nats per dimension")
    ax_full.legend(fontsize=6.5, frameon=False, loc="upper right")
    ax_zoom.set(ylim=(0, 3 * log_nt), ylabel=r"$L_K - c$ (nats per image)",
                title=r"zoom on large $\sigma_{B,\max}$: $L_K$ above the floor $c$")
    fig.suptitle(title, fontsize=9)
    return fig


def neighbours_figure(samples, train_images, nn_d, nn_i, seed_idx):
    """App. D.4: each sample (row) beside its nearest training images, distances below, the chain's
    seed image marked."""
    n_show, n_nb = len(samples), nn_i.shape[1]
    fig, axes = plt.subplots(n_show, n_nb + 2, figsize=(1.0 * (n_nb + 2), 1.12 * n_show),
                             gridspec_kw={"width_ratios": [1, 0.25] + [1] * n_nb})
    axes = np.atleast_2d(axes)
    for r in range(n_show):
        show_images(axes[r, 0], samples[r:r + 1].cpu(), nrow=1)
        axes[r, 1].set_axis_off()
        for j in range(n_nb):
            is_s = int(nn_i[r, j]) == int(seed_idx[r])
            show_images(axes[r, j + 2], train_images[int(nn_i[r, j])][None], nrow=1)
            axes[r, j + 2].text(0.5, -0.04,
                                f"{float(nn_d[r, j]):.2f}" + (" (seed)" if is_s else ""),
                                transform=axes[r, j + 2].transAxes, ha="center", va="top",
                                fontsize=6.5, color="C3" if is_s else "0.2")
    axes[0, 0].set_title("sample", fontsize=8)
    for j in range(n_nb):
        axes[0, j + 2].set_title(f"NN {j + 1}", fontsize=8)
    fig.suptitle("Samples and their Euclidean nearest training images (distance below)", fontsize=9)
    return fig


def distance_histogram(curves):
    """Overlaid histograms of nearest-neighbour distances, ``curves`` = [(values, label, colour)];
    the last is drawn as an outline, the references filled; dashed lines at the medians."""
    fig, ax = plt.subplots(figsize=(6.2, 3.2))
    bins = np.linspace(0, max(float(v.max()) for v, _, _ in curves) * 1.05, 30)
    for i, (vals, label, c) in enumerate(curves):
        filled = i < len(curves) - 1
        ax.hist(vals.numpy(), bins=bins, density=True, histtype="stepfilled" if filled else "step",
                alpha=0.35 if filled else 1, lw=1.6, color=c, label=label)
        ax.axvline(float(vals.median()), color=c, ls="--", lw=0.9)
    ax.set(xlabel="Euclidean distance to the nearest training image ([0, 1] pixels; dashed: "
           "medians)", ylabel="density")
    ax.legend(fontsize=7, frameon=False)
    return fig


def forward_processes_figure(runs: dict, x, ts, generator):
    """One row per process: its forward marginal q(. | x) at times t = k / K, in [0, 1] for
    display."""
    fig, axes = plt.subplots(len(runs), len(ts), figsize=(1.1 * len(ts), 1.2 * len(runs)),
                             squeeze=False)
    for i, (name, run) in enumerate(runs.items()):
        proc = run.process
        to_data = getattr(proc, "to_data", lambda u: u)
        for j, t in enumerate(ts):
            k = round(t * proc.K)
            u = x if k == 0 else to_data(proc.marginal(x, k, generator=generator))
            show_images(axes[i, j], u.clamp(0, 1), title=f"t = {t:.2f}" if i == 0 else None)
        axes[i, 0].text(-0.15, 0.5, name, transform=axes[i, 0].transAxes, rotation=90, ha="right",
                        va="center", fontsize=8)
    return fig


def samples_figure(panels: dict, nrow: int | None = None):
    """Side-by-side sample grids, ``panels`` = {title: images}, ``nrow`` images per row (default:
    a square grid)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(10 / 3 * len(panels), 3.7))
    for ax, (title, imgs) in zip(np.atleast_1d(axes), panels.items()):
        show_images(ax, imgs, nrow=nrow, title=title)
    return fig


def step_ratio_figure(curves):
    """Per-step smallest ratio alpha_t / alpha_s along the sampling grid, ``curves`` =
    [(process, style, label)] with style a matplotlib format string or a colour."""
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    for proc, style, label in curves:
        fmt, kw = (style, {}) if "-" in style else ("-", {"color": style})
        ax.plot(proc.times[1:].cpu(), proc.step_ratios().cpu(), fmt, label=label, **kw)
    ax.set(xlabel="time t of the step's end",
           ylabel=r"min over frequencies of $\alpha_t / \alpha_s$", ylim=(0, 1.02))
    ax.legend(fontsize=7, loc="lower left")
    return fig


def chains_figure(traces: dict):
    """High-frequency RMS of each chain per step against the forward process's sigma_t, one panel
    per number of steps: ``traces`` = {T: (t, rms (n, L), sigma)}."""
    fig, axes = plt.subplots(1, len(traces), figsize=(5 * len(traces), 3.2), sharey=True,
                             squeeze=False)
    for ax, (T, (t, rms, sig)) in zip(axes[0], traces.items()):
        ax.semilogy(t, rms.T, color="C0", alpha=0.5, lw=0.8)
        ax.semilogy(t, sig, "k--", lw=1.5, label=r"forward process: $\sigma_t$")
        ax.invert_xaxis()
        ax.set(title=f"{T} steps", xlabel="t (sampling runs right to left)")
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("RMS of the highest frequencies")
    return fig


def data_and_prior_figure(x0, centres, n_show: int = 12):
    """Training images u_0 (top) and their prior centres F(t_K) u_0 (bottom)."""
    fig, axes = plt.subplots(2, 1, figsize=(0.62 * n_show + 0.4, 1.6))
    show_images(axes[0], x0[:n_show], nrow=n_show)
    show_images(axes[1], centres[:n_show].clamp(0, 1), nrow=n_show)
    axes[0].text(-0.01, 0.5, r"$\mathbf{u}_0$", transform=axes[0].transAxes, ha="right",
                 va="center")
    axes[1].text(-0.01, 0.5, r"$F(t_K)\mathbf{u}_0$", transform=axes[1].transAxes, ha="right",
                 va="center")
    return fig


def colour_grid_figure(centres, samples, masks):
    """Fig. 7a: left, each row's prior centre then its samples (one column per noise set); right,
    the samples' foreground masks. ``samples`` (P, N, C, H, W), ``masks`` (P N, H, W)."""
    P, N, C, H, W = samples.shape
    panel = torch.cat([centres[:, None].clamp(0, 1), samples], dim=1).reshape(-1, C, H, W)
    fig, axes = plt.subplots(1, 2, figsize=(2 * 0.55 * (N + 1) + 0.8, 0.55 * P + 0.7),
                             gridspec_kw={"width_ratios": [N + 1, N]})
    show_images(axes[0], panel, nrow=N + 1)
    axes[0].set_title(r"left: prior centre $F(t_K)\mathbf{u}_0$; then one column per noise set",
                      fontsize=8)
    show_images(axes[1], masks.reshape(-1, 1, H, W).float(), nrow=N)
    axes[1].set_title("foreground masks of the samples (Otsu)", fontsize=8)
    return fig
