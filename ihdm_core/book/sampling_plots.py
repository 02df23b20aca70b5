"""Plotting detail of chapters 3-5 (training and generation, the sampling noise delta and
sigma = 0, interpolation) that would otherwise fill their cells: each function draws one figure
from numbers a chapter computed and returns the matplotlib figure; the measurements live in
``ihdm_core.evaluation``."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from .figures import label_columns, label_rows, show_images

__all__ = ["training_loss_figure", "loss_per_level_figure", "sequence_figure", "branching_figure",
           "shared_start_figure", "delta_sweep_figure", "elbo_terms_figure",
           "delta_metrics_figure", "sigma0_figure", "sigma0_diagnostics_figure",
           "noise_norm_figure", "interpolation_figure", "smoothness_figure"]


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
    ax.set(yscale="log", xlabel="training step",
           ylabel=r"$\|\mu_\theta(\hat{\mathbf{u}}_k, k) - \mathbf{u}_{k-1}\|^2$", title=title)
    ax.text(warmup, ax.get_ylim()[1], " end of warm-up", fontsize=7, color="0.4", va="top")
    ax.legend(fontsize=7, loc="upper right")
    return fig


def loss_per_level_figure(mse, skip, floor: float, sigma_B, title: str):
    """Alg. 1's error per level k = 1..K (``mse``) beside the skip connection's (``skip``), with
    sigma_B,k on a second axis on top (``sigma_B`` indexed by k, entry 0 unused)."""
    K = len(mse)
    levels = np.arange(1, K + 1)
    fig, ax = plt.subplots(figsize=(6.2, 3.1))
    ax.plot(levels, skip, ".-", ms=3, color="0.55",
            label=r"skip connection only, $\mu = \hat{\mathbf{u}}_k$")
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
    """Generation sequences: ``seq`` (samples, levels, C, H, W), one column per level in
    ``levels``."""
    n, L, H = seq.shape[0], seq.shape[1], seq.shape[-1]
    fig, ax = plt.subplots(figsize=(0.75 * L + 0.6, 0.75 * n + 0.6))
    show_images(ax, seq.flatten(0, 1), nrow=L)
    label_columns(ax,
                  [f"k={k}\n" + (rf"$\sigma_B$={sigma_B[k]:.2g}" if k else "sample")
                   for k in levels], H)
    ax.set_title(title, pad=22)
    return fig


def branching_figure(traj, branches: dict, show_levels, spread: dict, k_coarse: int, sigma_B,
                     title: str):
    """Fig. 5b. Left, for each split level in ``show_levels``: the state ``traj[k]`` of the first
    source and its continuations ``branches[k]["x"][0]``. Right: the coarse and fine spread against
    the split level, ``spread`` = {"levels", "coarse", "fine"}, each relative to the first split."""
    n_branch, H = branches[show_levels[0]]["x"].shape[1], traj[show_levels[0]].shape[-1]
    fig = plt.figure(figsize=(9.2, 0.85 * len(show_levels) + 1.0))
    gs = fig.add_gridspec(len(show_levels), 2, width_ratios=[1.25, 1])
    for i, kb in enumerate(show_levels):
        ax = fig.add_subplot(gs[i, 0])
        show_images(ax, torch.cat([traj[kb][:1].cpu(), branches[kb]["x"][0].cpu()]),
                    nrow=n_branch + 1)
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
        ax.set_title(f"{d:g}"
                     + ("\n= σ" if d == sigma else ("\npaper" if d == delta_paper else "\n")),
                     fontsize=8, color="C3" if d == delta_paper else "k")
    fig.suptitle(title, fontsize=9)
    return fig


def elbo_terms_figure(terms: dict, floors: dict, dd, no_mse, with_mse, sigma: float,
                      delta_star: float):
    """Left: the KL terms L_1..L_{K-1} per transition, ``terms`` = {delta: (K+1,) L_0..L_K}, with
    their delta-only part ``floors`` {delta: value}. Right: one transition's term against ``dd``
    without and with the mean squared error (App. C.1), sigma and delta_star marked."""
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.3))
    ax = axes[0]
    for (d, t), c in zip(terms.items(), ("C0", "C3")):
        K = len(t) - 1
        ax.plot(np.arange(2, K + 1), t[1:K], ".-", ms=3, color=c,
                label=rf"$L_{{k-1}}$, $\delta$ = {d:g}")
        if floors[d] > 0:
            ax.axhline(floors[d], color=c, ls="--", lw=1,
                       label=rf"MSE-free part at $\delta$ = {d:g}")
    ax.set(yscale="log", xlabel="transition $k \\to k-1$", ylabel="nats per image")
    ax.set_title("Per-level ELBO terms (held-out digits)", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    ax.plot(dd, no_mse, color="0.4", ls="--", label="without the MSE term (min at σ)")
    ax.plot(dd, with_mse, color="C2", label=r"with the mean MSE $\bar m$ (min at $\delta_\ast$)")
    ax.axvline(sigma, color="0.4", ls=":", lw=1)
    ax.axvline(delta_star, color="C2", ls=":", lw=1)
    ax.set(ylim=(0, 1.15 * max(no_mse.max(), 3 * with_mse.min())),
           xlabel=r"sampling noise $\delta$", ylabel="nats per image, one transition")
    ax.set_title(rf"App. C.1: $\delta_\ast$ = {delta_star:.4f} vs $\sigma$ = {sigma}", fontsize=9)
    ax.legend(fontsize=7)
    return fig


def delta_metrics_figure(quality: dict, real_recog: float, curve: tuple, nll_at: dict,
                         direct: tuple, sigma: float, delta_paper: float, labels: dict):
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
        axes[i].plot([best[i]], [quality[best[i]][i]], "*", ms=13, color="C1",
                     label=f"best: δ = {best[i]:g}")
        axes[i].set_ylabel(ylabel)
    axes[0].axhline(real_recog, color="k", ls="--", lw=1,
                    label=f"real held-out digits ({real_recog:.2f})")
    ax, (d_grid, vals) = axes[2], curve
    best_nll = min(nll_at, key=nll_at.get)
    ax.plot(d_grid, vals, color="C0", lw=1.2, label="closed form in δ")
    ax.plot(list(nll_at), list(nll_at.values()), "o", ms=4, color="C0")
    ax.plot([direct[0]], [direct[1]], "s", mfc="none", ms=8, color="k", label="direct evaluation")
    ax.plot([best_nll], [nll_at[best_nll]], "*", ms=13, color="C1",
            label=f"best of the sweep: δ = {best_nll:g}")
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
        show_images(fig.add_subplot(gs[0, j]), x.clamp(0, 1), nrow=ncol,
                    title=f"(a) samples, {name}, δ = {delta:g}")
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
    ax.plot(lv, 10 ** np.minimum(log10_exact, 30), color="0.6", ls="--", lw=1,
            label="exact inverse heat step")
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
    ax.plot(alpha, norm_slerp.mean(0), "o", color="C0", ms=4,
            label=r"slerp: $\sin\phi\,\nu^{(2)} + \cos\phi\,\nu^{(1)}$")
    ax.plot(alpha, norm_lerp.mean(0), "s", color="C3", ms=4,
            label=r"linear: $(1-\alpha)\nu^{(1)} + \alpha\nu^{(2)}$")
    ax.set(xlabel=r"position along the path $\alpha = 2\phi/\pi$",
           ylabel=r"$\|\nu(\alpha)\| \,/\, \|\nu^{(1)}\|$",
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
            ax.text(-0.01, 0.5, name.replace(" ", "\n"), transform=ax.transAxes, ha="right",
                    va="center", fontsize=7.5, color=f"C{r}")
            if r == 0:
                ax.set_title(f"pair {p + 1}"
                             + ("   (left: endpoint 1, right: endpoint 2)" if p == 0 else ""),
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
    axes[0].set(ylabel=r"$d_i = \|\mathbf{x}_{i+1} - \mathbf{x}_i\|_2$",
                title="Step between consecutive frames")
    axes[1].axhline(1, color="0.5", lw=0.8, ls=":")
    axes[1].set(ylabel=r"$d_i \,/\, (\|\mathbf{x}_{N-1} - \mathbf{x}_0\|_2 / (N-1))$",
                title="Relative to an evenly spaced straight path (= 1)")
    for ax in axes:
        ax.set(xticks=np.arange(n_frames), xlim=(-0.2, n_frames - 0.8), ylim=(0, None),
               xlabel=r"frame index (step $i \to i+1$ plotted at $i + \frac{1}{2}$)")
    axes[0].legend(fontsize=7)
    return fig
