"""Plotting detail of chapters 6-9 that would otherwise fill their cells: each function draws one
figure (or panel) from numbers a chapter computed and returns the matplotlib figure. No function
here computes a result; the chapters' measurements live in ``ihdm_core.evaluation``."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import SymLogNorm

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


def markdown_table(rows: list[dict], digits: int = 4) -> str:
    """A Markdown table of ``rows`` for display only (not indexed as a book table)."""
    cols = list(rows[0])
    fmt = lambda v: f"{v:.{digits}f}" if isinstance(v, float) else str(v)  # noqa: E731
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
                     + ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows])


__all__ = ["MARKERS", "show_state", "show_gradient", "symlog", "gradients_end_figure", "gradients_trajectory_figure",
           "locality_figure", "gradient_sign_figure", "markdown_table"]
