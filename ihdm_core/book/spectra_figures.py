"""Chapter 2's two figures of power spectra (Fig. 10 and Fig. 4), drawn from precomputed data."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .figures import plot_power_law, show_images

__all__ = ["dct_partition_figure", "psd_trajectories_figure"]


def dct_partition_figure(idx_small, idx_big, power, name: str, size: int):
    """Fig. 10: left, the contour index b of a small DCT grid written in each coefficient;
    right, log10 DCT ``power`` of the photograph ``name`` with every (size // 10)-th contour."""
    n_small = idx_small.shape[0]
    fig, axes = plt.subplots(1, 2, figsize=(8.6, 3.9))
    axes[0].imshow(idx_small % 10, cmap="tab10", vmin=0, vmax=10, alpha=0.55, origin="upper")
    for (n, m), b in np.ndenumerate(idx_small.numpy()):
        axes[0].text(m, n, str(b), fontsize=6.5, ha="center", va="center")
    axes[0].set(title=f"Equal-frequency contours b of a {n_small}x{n_small} DCT\n"
                      r"($b = \mathrm{round}\sqrt{n^2 + m^2}$, written in each coefficient)",
                xlabel="horizontal frequency index m", ylabel="vertical frequency index n")
    im1 = axes[1].imshow(np.log10(power.numpy() + 1e-12), cmap="magma", origin="upper", vmin=-8)
    axes[1].contour(idx_big.numpy(), levels=np.arange(size // 10, int(idx_big.max()),
                                                      size // 10) - 0.5,
                    colors="w", linewidths=0.5, alpha=0.8)
    axes[1].set(title=f"$\\log_{{10}}$ DCT power of '{name}' ({size}x{size})\n"
                      f"with every {size // 10}th contour", xlabel="m", ylabel="n")
    fig.colorbar(im1, ax=axes[1], shrink=0.85, label=r"$\log_{10}|\tilde u_{nm}|^2$")
    return fig


def psd_trajectories_figure(freqs, panels, fit):
    """Fig. 4: per panel (title, levels, radial PSDs (L, bins), thumbnails, colour map, scale of
    the power-law ``fit``, legend label of a level, y label), thumbnails above their PSDs."""
    fig = plt.figure(figsize=(11, 5.6))
    for sf, (title, levels, rad, thumbs, cmap, scale, label, ylabel) in zip(
            fig.subfigures(1, 2, wspace=0.03), panels):
        gs = sf.add_gridspec(2, len(levels), height_ratios=[1, 4.2])
        shades = cmap(np.linspace(0.45, 1.0, len(levels)))[::-1]
        ax = sf.add_subplot(gs[1, :])
        for j, (k, th) in enumerate(zip(levels, thumbs)):
            show_images(sf.add_subplot(gs[0, j]), th[None, None]).set_title(
                f"k={k}", fontsize=7, color=shades[j])
            ax.loglog(freqs[1:], rad[j, 1:], color=shades[j], lw=1.3, label=label(k))
        plot_power_law(ax, fit, scale, color="k", ls="--", lw=1,
                       label=f"$A/f^{{\\alpha}}$ fit, $\\alpha$ = {fit['alpha']:.2f}")
        ax.set(xlabel="frequency f (cycles / pixel)", ylabel=ylabel,
               ylim=(0.2 * rad[:, 1:].min(), None))
        ax.legend(fontsize=6.5, frameon=False, loc="lower left")
        sf.suptitle(title, fontsize=9)
    return fig
