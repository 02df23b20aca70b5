"""Plotting detail of chapters 3-9 that would otherwise fill their cells: each function draws one
figure (or panel) from numbers a chapter computed and returns the matplotlib figure. No function
here computes a result; the chapters' measurements live in ``ihdm_core.evaluation``."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import SymLogNorm

from .figures import label_columns, label_rows, show_images

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
    fig, axes = plt.subplots(len(names) + 1, n_pix + 1, figsize=(1.75 * (n_pix + 1) + 0.8, 1.85 * (len(names) + 1)))
    vmax = max([float(grads[n][0].abs().max()) for n in names] + [float(v.abs().max()) for v in ideal.values()])
    norm = symlog(vmax, 0.1)
    for r, name in enumerate(names):
        show_state(axes[r, 0], states[name], f"{name} state, k = {k_end[name]}")
        for p in range(n_pix):
            axes[r, 0].plot(int(pixels[p, 1]), int(pixels[p, 0]), "s", ms=4.5, mfc="none", mec=MARKERS[p], mew=1.2)
            im = show_gradient(axes[r, p + 1], grads[name][p], norm, pixels[p], MARKERS[p],
                               f"{name}: pixel {tuple(pixels[p].tolist())}")
    axes[-1, 0].set_axis_off()
    for c in range(1, n_pix + 1):
        if c - 1 < len(ideal):
            title, row = list(ideal.items())[c - 1]
            show_gradient(axes[-1, c], row, norm, pixels[0], MARKERS[0], title)
        else:
            axes[-1, c].set_axis_off()
    fig.colorbar(im, ax=axes[:, -1], shrink=0.6, label="d output / d input (symlog, linear within ±0.1)")
    return fig


def gradients_trajectory_figure(states, grads, levels, centre):
    """Fig. 8 right: per model two rows (states, gradients of the centre pixel) over ``levels``."""
    names = list(states)
    n_lv = max(len(v) for v in levels.values())
    fig, axes = plt.subplots(2 * len(names), n_lv, figsize=(1.45 * n_lv + 1.1, 1.5 * 2 * len(names)))
    for r, name in enumerate(names):
        lv = levels[name]
        # One colour scale per model: DDPM's x_hat has an identity part 1/alpha_k that is huge at large k.
        norm = symlog(float(grads[name].abs().max()), 0.01)
        for c in range(n_lv):
            if c >= len(lv):
                axes[2 * r, c].set_axis_off()
                axes[2 * r + 1, c].set_axis_off()
                continue
            show_state(axes[2 * r, c], states[name][c], f"{name}, k = {lv[c]}", centre)
            im = show_gradient(axes[2 * r + 1, c], grads[name][c], norm, centre, MARKERS[0])
        fig.colorbar(im, ax=axes[2 * r + 1, -1], shrink=0.9, label=f"{name} gradient\n(symlog, ±0.01 linear)")
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
    ax.plot(*step_scale, color="0.4", lw=1, ls=":", label=r"IHDM step scale $\sqrt{2(t_k - t_{k-1})}$")
    ax.set(xlabel="level $k / K$ (generation runs right to left)", ylabel="radius holding 50% / 90% of the mass",
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


def prior_overlap_figure(overlap, thumbs, floor: float, log_nt: float, s_max: float, D: int, title: str):
    """Fig. 12: thumbnails ``thumbs`` {sigma_B,max: image (C, H, W)} on top; below, L_K of test and
    training images against sigma_B,max (mean and 10-90% band), in full and above the floor c."""
    s_grid = np.array([r[0] for r in overlap])
    fig = plt.figure(figsize=(10, 5.2))
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 4.2])
    for ax, (s_B, img) in zip(np.atleast_1d(top.subplots(1, len(thumbs))), thumbs.items()):
        ax.imshow(img.permute(1, 2, 0).squeeze(-1).clamp(0, 1).cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_axis_off()
        ax.set_title(f"$\\sigma_{{B,\\max}}$ = {s_B:g}", fontsize=7)
    ax_full, ax_zoom = bottom.subplots(1, 2, gridspec_kw={"width_ratios": [1.25, 1]})
    for label, col, c, mk in [("test images (held out)", 1, "C0", "o"), ("training images", 2, "C3", "s")]:
        vals = [r[col] for r in overlap]
        mean = np.array([float(v.mean()) for v in vals])
        lo, hi = (np.array([float(v.quantile(q)) for v in vals]) for q in (0.1, 0.9))
        for ax, off in [(ax_full, 0.0), (ax_zoom, floor)]:
            ax.fill_between(s_grid, lo - off, hi - off, color=c, alpha=0.15, lw=0)
            ax.plot(s_grid, mean - off, marker=mk, color=c, ms=4, label=f"{label}: mean, 10-90% band")
    for ax, off in [(ax_full, 0.0), (ax_zoom, floor)]:
        ax.axhline(floor + log_nt - off, color="0.4", ls="--", lw=0.8,
                   label=r"memorised: own centre only, $c + \log N_T$")
        ax.axvline(s_max, color="k", lw=0.8, alpha=0.4)
        ax.set_xscale("log")
        ax.set_xticks(s_grid, [f"{v:g}" for v in s_grid])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlabel(r"$\sigma_{B,\max}$ (pixels; grey line: the profile's model)")
    ax_full.axhline(floor, color="0.4", ls=":", lw=0.8,
                    label=r"floor $c = \frac{D}{2}(\frac{\sigma^2}{\delta^2} - 1 - \log\frac{\sigma^2}{\delta^2})$")
    ax_full.set(yscale="log", ylabel=r"$L_K$ upper bound (nats per image)", title="all of it (log scale)")
    ax_full.secondary_yaxis("right", functions=(lambda x: x / D, lambda x: x * D)).set_ylabel("nats per dimension")
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
            axes[r, j + 2].text(0.5, -0.04, f"{float(nn_d[r, j]):.2f}" + (" (seed)" if is_s else ""),
                                transform=axes[r, j + 2].transAxes, ha="center", va="top", fontsize=6.5,
                                color="C3" if is_s else "0.2")
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
    ax.set(xlabel="Euclidean distance to the nearest training image ([0, 1] pixels; dashed: medians)", ylabel="density")
    ax.legend(fontsize=7, frameon=False)
    return fig


def forward_processes_figure(runs: dict, x, ts, generator):
    """One row per process: its forward marginal q(. | x) at times t = k / K, in [0, 1] for display."""
    fig, axes = plt.subplots(len(runs), len(ts), figsize=(1.1 * len(ts), 1.2 * len(runs)), squeeze=False)
    for i, (name, run) in enumerate(runs.items()):
        proc = run.process
        to_data = getattr(proc, "to_data", lambda u: u)
        for j, t in enumerate(ts):
            k = round(t * proc.K)
            u = x if k == 0 else to_data(proc.marginal(x, k, generator=generator))
            show_images(axes[i, j], u.clamp(0, 1), title=f"t = {t:.2f}" if i == 0 else None)
        axes[i, 0].text(-0.15, 0.5, name, transform=axes[i, 0].transAxes, rotation=90, ha="right", va="center",
                        fontsize=8)
    return fig


def samples_figure(panels: dict):
    """Side-by-side sample grids, ``panels`` = {title: images}."""
    fig, axes = plt.subplots(1, len(panels), figsize=(10 / 3 * len(panels), 3.7))
    for ax, (title, imgs) in zip(np.atleast_1d(axes), panels.items()):
        show_images(ax, imgs, title=title)
    return fig


def step_ratio_figure(curves):
    """Per-step smallest ratio alpha_t / alpha_s along the sampling grid, ``curves`` =
    [(process, style, label)] with style a matplotlib format string or a colour."""
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    for proc, style, label in curves:
        fmt, kw = (style, {}) if "-" in style else ("-", {"color": style})
        ax.plot(proc.times[1:].cpu(), proc.step_ratios().cpu(), fmt, label=label, **kw)
    ax.set(xlabel="time t of the step's end", ylabel=r"min over frequencies of $\alpha_t / \alpha_s$", ylim=(0, 1.02))
    ax.legend(fontsize=7, loc="lower left")
    return fig


def chains_figure(traces: dict):
    """High-frequency RMS of each chain per step against the forward process's sigma_t, one panel
    per number of steps: ``traces`` = {T: (t, rms (n, L), sigma)}."""
    fig, axes = plt.subplots(1, len(traces), figsize=(5 * len(traces), 3.2), sharey=True, squeeze=False)
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
    axes[0].text(-0.01, 0.5, r"$\mathbf{u}_0$", transform=axes[0].transAxes, ha="right", va="center")
    axes[1].text(-0.01, 0.5, r"$F(t_K)\mathbf{u}_0$", transform=axes[1].transAxes, ha="right", va="center")
    return fig


def colour_grid_figure(centres, samples, masks):
    """Fig. 7a: left, each row's prior centre then its samples (one column per noise set); right,
    the samples' foreground masks. ``samples`` (P, N, C, H, W), ``masks`` (P N, H, W)."""
    P, N, C, H, W = samples.shape
    panel = torch.cat([centres[:, None].clamp(0, 1), samples], dim=1).reshape(-1, C, H, W)
    fig, axes = plt.subplots(1, 2, figsize=(2 * 0.55 * (N + 1) + 0.8, 0.55 * P + 0.7),
                             gridspec_kw={"width_ratios": [N + 1, N]})
    show_images(axes[0], panel, nrow=N + 1)
    axes[0].set_title(r"left: prior centre $F(t_K)\mathbf{u}_0$; then one column per noise set", fontsize=8)
    show_images(axes[1], masks.reshape(-1, 1, H, W).float(), nrow=N)
    axes[1].set_title("foreground masks of the samples (Otsu)", fontsize=8)
    return fig



# --- chapter 3: training and generation ----------------------------------------------------

def training_loss_figure(steps, losses, smooth: tuple, floor: float, warmup: int, title: str):
    """The per-step training loss, its moving average ``smooth`` = (steps, values, window) and the
    reference level ``floor`` (N sigma^2), with the end of the learning-rate warm-up marked."""
    s_steps, s_vals, win = smooth
    fig, ax = plt.subplots(figsize=(6.2, 3.0))
    ax.plot(steps, losses, lw=0.5, alpha=0.35 if win > 1 else 1.0, color="C0", label="per step")
    if win > 1:
        ax.plot(s_steps, s_vals, lw=1.6, color="C0", label=f"moving average ({win} steps)")
    ax.axhline(floor, color="k", ls="--", lw=1, label=r"$N\sigma^2$")
    ax.axvline(warmup, color="0.6", ls=":", lw=1)
    ax.set(yscale="log", xlabel="training step", ylabel=r"$\|\mu_\theta(\hat{\mathbf{u}}_k, k) - \mathbf{u}_{k-1}\|^2$",
           title=title)
    ax.text(warmup, ax.get_ylim()[1], " end of warm-up", fontsize=7, color="0.4", va="top")
    ax.legend(fontsize=7, loc="upper right")
    return fig


def loss_per_level_figure(mse, skip, floor: float, sigma_B, title: str):
    """Alg. 1's error per level k = 1..K (``mse``) beside the skip connection's (``skip``), with
    sigma_B,k on a second axis on top (``sigma_B`` indexed by k, entry 0 unused)."""
    K = len(mse)
    levels = np.arange(1, K + 1)
    fig, ax = plt.subplots(figsize=(6.2, 3.1))
    ax.plot(levels, skip, ".-", ms=3, color="0.55", label=r"skip connection only, $\mu = \hat{\mathbf{u}}_k$")
    ax.plot(levels, mse, ".-", ms=3, color="C0", label=r"trained $\mu_\theta$ (EMA)")
    ax.axhline(floor, color="k", ls="--", lw=1, label=r"$N\sigma^2$")
    ax.set(yscale="log", xlabel="level $k$", ylabel="squared error per image")
    ax.set_title(title, fontsize=9)
    ticks = np.unique(np.round(np.linspace(1, K, 6)).astype(int))
    top = ax.secondary_xaxis("top")
    top.set_xticks(ticks, [f"{sigma_B[t]:.2g}" for t in ticks], fontsize=7)
    top.set_xlabel(r"$\sigma_{B,k}$ (pixels)", fontsize=8)
    ax.legend(fontsize=7)
    return fig


def sequence_figure(seq, levels, sigma_B, title: str):
    """Generation sequences: ``seq`` (samples, levels, C, H, W), one column per level in ``levels``."""
    n, L, H = seq.shape[0], seq.shape[1], seq.shape[-1]
    fig, ax = plt.subplots(figsize=(0.75 * L + 0.6, 0.75 * n + 0.6))
    show_images(ax, seq.flatten(0, 1), nrow=L)
    label_columns(ax, [f"k={k}\n" + (rf"$\sigma_B$={sigma_B[k]:.2g}" if k else "sample") for k in levels], H)
    ax.set_title(title, pad=22)
    return fig


def branching_figure(traj, branches: dict, show_levels, spread: dict, k_coarse: int, sigma_B, title: str):
    """Fig. 5b. Left, for each split level in ``show_levels``: the state ``traj[k]`` of the first
    source and its continuations ``branches[k]["x"][0]``. Right: the coarse and fine spread against
    the split level, ``spread`` = {"levels", "coarse", "fine"}, each relative to the first split."""
    n_branch, H = branches[show_levels[0]]["x"].shape[1], traj[show_levels[0]].shape[-1]
    fig = plt.figure(figsize=(9.2, 0.85 * len(show_levels) + 1.0))
    gs = fig.add_gridspec(len(show_levels), 2, width_ratios=[1.25, 1])
    for i, kb in enumerate(show_levels):
        ax = fig.add_subplot(gs[i, 0])
        show_images(ax, torch.cat([traj[kb][:1].cpu(), branches[kb]["x"][0].cpu()]), nrow=n_branch + 1)
        label_rows(ax, [f"split at k={kb}\n" + rf"($\sigma_B$={sigma_B[kb]:.2g})"], H)
        if i == 0:
            label_columns(ax, [r"$u_k$"] + [f"cont. {j + 1}" for j in range(n_branch)], H)
    ax = fig.add_subplot(gs[:, 1])
    lv, coarse, fine = spread["levels"], np.asarray(spread["coarse"]), np.asarray(spread["fine"])
    ax.plot(lv, coarse / coarse[0], "o-", ms=3, label=f"coarse (blurred to k={k_coarse})")
    ax.plot(lv, fine / fine[0], "s-", ms=3, label="fine (remainder)")
    ax.set(ylim=(0, None), xlabel="split level $k$ (generation runs right to left)",
           ylabel=f"spread between continuations\n(relative to a split at k={lv[0]})")
    ax.invert_xaxis()
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=8)
    return fig


def shared_start_figure(tiles, title: str):
    """Figs. 15/17: ``tiles`` (rows, 1 + samples, C, H, W), each row's prior state u_K first, then
    its samples; a line separates the two."""
    n_rows, n_cols, H = tiles.shape[0], tiles.shape[1] - 1, tiles.shape[-1]
    fig, ax = plt.subplots(figsize=(0.62 * (n_cols + 1) + 0.4, 0.62 * n_rows + 0.6))
    show_images(ax, tiles.flatten(0, 1), nrow=n_cols + 1)
    ax.axvline(1 + H + 0.5, color="C3", lw=1.2)
    label_columns(ax, ["$u_K$"] + [""] * n_cols, H)
    ax.set_title(title, pad=12)
    return fig


# --- chapter 4: sampling noise delta and sigma = 0 -----------------------------------------

def delta_sweep_figure(sweep: dict, sigma: float, delta_paper: float, title: str):
    """Fig. 6: one column of samples per delta, ``sweep`` = {delta: images}; sigma and the paper's
    delta are marked in the column titles."""
    fig, axes = plt.subplots(1, len(sweep), figsize=(0.78 * len(sweep) + 0.4,
                                                     0.75 * len(next(iter(sweep.values()))) + 0.8))
    for ax, (d, x) in zip(np.atleast_1d(axes), sweep.items()):
        show_images(ax, x, nrow=1)
        ax.set_title(f"{d:g}" + ("\n= σ" if d == sigma else ("\npaper" if d == delta_paper else "\n")),
                     fontsize=8, color="C3" if d == delta_paper else "k")
    fig.suptitle(title, fontsize=9)
    return fig


def elbo_terms_figure(terms: dict, floors: dict, dd, no_mse, with_mse, sigma: float, delta_star: float):
    """Left: the KL terms L_1..L_{K-1} per transition, ``terms`` = {delta: (K+1,) L_0..L_K}, with
    their delta-only part ``floors`` {delta: value}. Right: one transition's term against ``dd``
    without and with the mean squared error (App. C.1), sigma and delta_star marked."""
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.3))
    ax = axes[0]
    for (d, t), c in zip(terms.items(), ("C0", "C3")):
        K = len(t) - 1
        ax.plot(np.arange(2, K + 1), t[1:K], ".-", ms=3, color=c, label=rf"$L_{{k-1}}$, $\delta$ = {d:g}")
        if floors[d] > 0:
            ax.axhline(floors[d], color=c, ls="--", lw=1, label=rf"MSE-free part at $\delta$ = {d:g}")
    ax.set(yscale="log", xlabel="transition $k \\to k-1$", ylabel="nats per image")
    ax.set_title("Per-level ELBO terms (held-out digits)", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.plot(dd, no_mse, color="0.4", ls="--", label="without the MSE term (min at σ)")
    ax.plot(dd, with_mse, color="C2", label=r"with the mean MSE $\bar m$ (min at $\delta_\ast$)")
    ax.axvline(sigma, color="0.4", ls=":", lw=1)
    ax.axvline(delta_star, color="C2", ls=":", lw=1)
    ax.set(ylim=(0, 1.15 * max(no_mse.max(), 3 * with_mse.min())), xlabel=r"sampling noise $\delta$",
           ylabel="nats per image, one transition")
    ax.set_title(rf"App. C.1: $\delta_\ast$ = {delta_star:.4f} vs $\sigma$ = {sigma}", fontsize=9)
    ax.legend(fontsize=7)
    return fig


def delta_metrics_figure(quality: dict, real_recog: float, curve: tuple, nll_at: dict, direct: tuple,
                         sigma: float, delta_paper: float, labels: dict):
    """Fig. 11: recognisability and FID at the deltas of ``quality`` {delta: (recog, fid)} with the
    real-digit recognisability, and the negative ELBO: the closed form ``curve`` = (deltas, values),
    the sweep's values ``nll_at`` {delta: value} and the ``direct`` = (delta, value) evaluation.
    The best value of each measure is starred; ``labels`` names the y axes {"fid", "nll"}."""
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    ev = list(quality)
    best = {0: max(ev, key=lambda d: quality[d][0]), 1: min(ev, key=lambda d: quality[d][1])}
    for i, ylabel in ((0, "recognisability (share, conf. ≥ 0.9)"), (1, labels["fid"])):
        vals = [quality[d][i] for d in ev]
        axes[i].plot(ev, vals, "o-", ms=4)
        axes[i].plot([best[i]], [quality[best[i]][i]], "*", ms=13, color="C1", label=f"best: δ = {best[i]:g}")
        axes[i].set_ylabel(ylabel)
    axes[0].axhline(real_recog, color="k", ls="--", lw=1, label=f"real held-out digits ({real_recog:.2f})")
    ax, (d_grid, vals) = axes[2], curve
    best_nll = min(nll_at, key=nll_at.get)
    ax.plot(d_grid, vals, color="C0", lw=1.2, label="closed form in δ")
    ax.plot(list(nll_at), list(nll_at.values()), "o", ms=4, color="C0")
    ax.plot([direct[0]], [direct[1]], "s", mfc="none", ms=8, color="k", label="direct evaluation")
    ax.plot([best_nll], [nll_at[best_nll]], "*", ms=13, color="C1", label=f"best of the sweep: δ = {best_nll:g}")
    shown = vals[d_grid >= sigma / 1.5]
    ax.set_ylim(vals.min() - 0.1 * np.ptp(shown), shown.max())
    ax.set_ylabel(labels["nll"])
    d_max = max(max(ev), max(nll_at))
    for ax in axes:
        ax.axvline(sigma, color="0.5", ls=":", lw=1)
        ax.axvline(delta_paper, color="C3", ls="--", lw=0.8)
        ax.set(xlim=(-0.04 * d_max, 1.17 * d_max), xlabel="sampling noise δ")
        ax.xaxis.set_major_locator(plt.MaxNLocator(5))
        ax.legend(fontsize=7)
    fig.suptitle("Fig. 11: sample quality and likelihood against the sampling noise δ "
                 "(dotted: σ, dashed: the paper's δ)", fontsize=9)
    return fig


def sigma0_figure(samples: dict, trajs, labels, levels, delta: float):
    """Fig. 13: (a) one grid of samples per model, ``samples`` = {name: images}; (b) trajectories
    ``trajs`` (rows, levels, C, H, W), one row per entry of ``labels``, one column per level."""
    n, H = len(next(iter(samples.values()))), trajs.shape[-1]
    ncol = max(2, math.isqrt(2 * n))
    nrow_a = math.ceil(n / ncol)
    fig = plt.figure(figsize=(max(1.3 * ncol + 0.8, 7.5), 0.65 * nrow_a + 0.8 * len(trajs) + 1.4))
    gs = fig.add_gridspec(2, 2, height_ratios=[nrow_a, 1.15 * len(trajs)])
    for j, (name, x) in enumerate(samples.items()):
        show_images(fig.add_subplot(gs[0, j]), x.clamp(0, 1), nrow=ncol, title=f"(a) samples, {name}, δ = {delta:g}")
    ax = fig.add_subplot(gs[1, :])
    show_images(ax, trajs.flatten(0, 1), nrow=len(levels))
    label_rows(ax, labels, H)
    label_columns(ax, [f"k={k}" for k in levels], H)
    ax.set_title("(b) trajectories from the same $u_K$ with the same noise", fontsize=9, pad=12)
    return fig


def sigma0_diagnostics_figure(curves: dict, gain: dict, log10_exact, delta: float):
    """Left: smoothed training losses ``curves`` {name: (steps, values)}. Right: the noise gain of
    one reverse step per level, ``gain`` {name: (K,)}, beside the exact inverse heat step's
    (``log10_exact``, capped at 1e30 for display)."""
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.2))
    ax = axes[0]
    for (name, (s, v)), c in zip(curves.items(), ("C0", "C3")):
        ax.plot(s, v, color=c, label=name)
    ax.set(yscale="log", xlabel="training step", ylabel="training loss (moving average)")
    ax.set_title("Alg. 1 loss", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    lv = np.arange(1, len(log10_exact) + 1)
    for (name, gk), c in zip(gain.items(), ("C0", "C3")):
        ax.plot(lv, gk, ".-", ms=3, color=c, label=name)
    ax.plot(lv, 10 ** np.minimum(log10_exact, 30), color="0.6", ls="--", lw=1, label="exact inverse heat step")
    ax.axhline(1, color="k", lw=0.8, ls=":")
    lo, hi = min(g.min() for g in gain.values()), max(g.max() for g in gain.values())
    ax.set(yscale="log", ylim=(min(lo / 2, 0.5), max(hi * 5, 2.0)), xlabel="level $k$",
           ylabel=r"$\|\Delta\mu_\theta\| / \|\eta\|$")
    ax.set_title(f"Noise gain of one reverse step (η ~ N(0, {delta:g}²))", fontsize=9)
    ax.legend(fontsize=7)
    return fig


# --- chapter 5: interpolation ---------------------------------------------------------------

def noise_norm_figure(alpha, norm_slerp, norm_lerp):
    """The norm of the interpolated noise along the path (``norm_*`` (pairs, frames), relative to
    the first endpoint), with the curves for orthogonal endpoints of equal norm as lines."""
    a = np.linspace(0, 1, 200)
    fig, ax = plt.subplots(figsize=(4.6, 3))
    ax.plot(a, np.ones_like(a), color="C0", lw=1, alpha=0.5)
    ax.plot(a, np.sqrt((1 - a) ** 2 + a ** 2), color="C3", lw=1, alpha=0.5)
    ax.plot(alpha, norm_slerp.mean(0), "o", color="C0", ms=4, label=r"slerp: $\sin\phi\,\nu^{(2)} + \cos\phi\,\nu^{(1)}$")
    ax.plot(alpha, norm_lerp.mean(0), "s", color="C3", ms=4, label=r"linear: $(1-\alpha)\nu^{(1)} + \alpha\nu^{(2)}$")
    ax.set(xlabel=r"position along the path $\alpha = 2\phi/\pi$", ylabel=r"$\|\nu(\alpha)\| \,/\, \|\nu^{(1)}\|$",
           ylim=(0.6, 1.08), title="Norm of the interpolated sampling noise")
    ax.legend(fontsize=7, loc="lower center")
    return fig


def interpolation_figure(rows: dict, n_frames: int, n_show: int):
    """Fig. 7b: for each of the first ``n_show`` endpoint pairs, one row of frames per sampler,
    ``rows`` = {name: (pairs * n_frames, C, H, W) pair-major}."""
    R = len(rows)
    fig, axes = plt.subplots(R * n_show, 1, figsize=(0.85 * n_frames + 1.2, 0.92 * R * n_show),
                             gridspec_kw={"hspace": 0.06}, squeeze=False)
    for p in range(n_show):
        for r, (name, x) in enumerate(rows.items()):
            ax = axes[R * p + r, 0]
            show_images(ax, x[p * n_frames:(p + 1) * n_frames], nrow=n_frames)
            ax.text(-0.01, 0.5, name.replace(" ", "\n"), transform=ax.transAxes, ha="right", va="center",
                    fontsize=7.5, color=f"C{r}")
            if r == 0:
                ax.set_title(f"pair {p + 1}" + ("   (left: endpoint 1, right: endpoint 2)" if p == 0 else ""),
                             fontsize=8, loc="left")
    return fig


def smoothness_figure(smooth: dict, n_frames: int):
    """Distances between consecutive frames per sampler, ``smooth`` = {name:
    :func:`ihdm_core.evaluation.dynamics.smoothness`}: left as they are, right relative to an
    evenly spaced straight path (the endpoint distance / (n_frames - 1)); thin lines per pair."""
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.1))
    mid = np.arange(n_frames - 1) + 0.5
    for r, (name, m) in enumerate(smooth.items()):
        d, even = m["steps"], (m["ends"] / (n_frames - 1)).clamp_min(1e-12)[:, None]
        for ax, dd in zip(axes, (d, d / even)):
            for dp in dd:
                ax.plot(mid, dp, color=f"C{r}", lw=0.6, alpha=0.3)
            ax.plot(mid, dd.mean(0), "o-", color=f"C{r}", ms=4, label=name)
    axes[0].set(ylabel=r"$d_i = \|\mathbf{x}_{i+1} - \mathbf{x}_i\|_2$", title="Step between consecutive frames")
    axes[1].axhline(1, color="0.5", lw=0.8, ls=":")
    axes[1].set(ylabel=r"$d_i \,/\, (\|\mathbf{x}_{N-1} - \mathbf{x}_0\|_2 / (N-1))$",
                title="Relative to an evenly spaced straight path (= 1)")
    for ax in axes:
        ax.set(xticks=np.arange(n_frames), xlim=(-0.2, n_frames - 0.8), ylim=(0, None),
               xlabel=r"frame index (step $i \to i+1$ plotted at $i + \frac{1}{2}$)")
    axes[0].legend(fontsize=7)
    return fig


__all__ = ["MARKERS", "show_state", "show_gradient", "symlog", "gradients_end_figure", "gradients_trajectory_figure",
           "locality_figure", "gradient_sign_figure", "prior_overlap_figure", "neighbours_figure",
           "distance_histogram", "forward_processes_figure", "samples_figure", "step_ratio_figure",
           "chains_figure", "data_and_prior_figure", "colour_grid_figure",
           "training_loss_figure", "loss_per_level_figure", "sequence_figure", "branching_figure", "shared_start_figure",
           "delta_sweep_figure", "elbo_terms_figure", "delta_metrics_figure", "sigma0_figure",
           "sigma0_diagnostics_figure", "noise_norm_figure", "interpolation_figure", "smoothness_figure"]
