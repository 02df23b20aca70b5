"""Drawing of the explorers' views (chapter 11): one ``draw_*`` function per explorer, a PNG for
the widgets, and the kernel-free frame slider (matplotlib's ``Animation.to_jshtml``) that the HTML
book shows in place of a live widget.
"""

from __future__ import annotations

import io
import re

import numpy as np

__all__ = ["draw_forward", "draw_generation", "draw_colour", "draw_interpolation", "draw_gradients",
           "hex_of", "render_png", "slider_html"]


# --- drawing --------------------------------------------------------------------------------------
def _show(ax, img, title=None):
    ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)


def draw_forward(fig, v: dict) -> None:
    a0, a1, a2 = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.6]})
    _show(a0, v["u0"], f"u_0: {v['name']}")
    _show(a1, v["uk"], f"u_k, k = {v['k']}, sigma_B = {v['sigma_B']:.2f}")
    f = v["freqs"]
    a2.loglog(f[1:], v["psd0"][1:], color="0.6", lw=1, label="u_0")
    a2.loglog(f[1:], np.maximum(v["psd"][1:], 1e-20), color="C0", lw=1.5, label="u_k")
    a2.loglog(f[1:], v["line"][1:], "k--", lw=0.8, label=f"1/f^{v['alpha']:.2f} (fit to u_0)")
    a2.set_ylim(max(1e-12, np.nanmin(v["psd0"][1:]) * 1e-4), np.nanmax(v["psd0"]) * 3)
    a2.set_xlabel("frequency (cycles / pixel)", fontsize=8)
    a2.set_title(f"radial power spectrum; energy left {100 * v['energy_left']:.1f} %", fontsize=8)
    a2.legend(fontsize=7, frameon=False, loc="lower left")
    a2.tick_params(labelsize=7)
    # Few log ticks: a log axis labels every minor tick by default, which costs more to lay out
    # than the rest of the figure, and a widget redraws it on every slider move.
    from matplotlib.ticker import LogLocator, NullLocator

    for axis in (a2.xaxis, a2.yaxis):
        axis.set_major_locator(LogLocator(numticks=4))
        axis.set_minor_locator(NullLocator())


def draw_generation(fig, v: dict) -> None:
    n = len(v["strip"])
    gs = fig.add_gridspec(2, n, height_ratios=[3, 1])
    big = fig.add_subplot(gs[0, :])
    how = f"delta = {v['delta']:g}" if v["delta"] is not None else v["sampler"]
    _show(
        big,
        v["frame"],
        f"{v['role']}, seed {v['seed']}, {how}: step {v['step']} of "
        f"{v['n_steps'] - 1}, level {v['level']} of {v['K']}",
    )
    for i, (img, lv) in enumerate(zip(v["strip"], v["strip_levels"])):
        _show(fig.add_subplot(gs[1, i]), img, f"k={lv}")


def hex_of(rgb) -> str:
    return "#" + "".join(f"{int(round(255 * float(c))):02x}" for c in rgb)


def draw_colour(fig, v: dict) -> None:
    axes = fig.subplots(1, 3)
    prior = " on ".join(
        p
        for p in (
            v["colour"] and f"colour {v['colour']}",
            v["image"] is not None and f"image {v['image']}",
        )
        if p
    )
    _show(axes[0], v["u_K"], f"prior u_K ({prior})")
    _show(axes[1], v["sample"], f"sample, seed {v['seed']}\ncolour error {v['colour_error']:.3f}")
    _show(
        axes[2],
        v["reference_sample"],
        f"same seed, prior image {v['reference']}\nshape corr. {v['shape_correlation']:.2f}",
    )


def draw_interpolation(fig, v: dict) -> None:
    names = list(v["images"])
    gs = fig.add_gridspec(len(names), 2, width_ratios=[1, 3])
    for r, name in enumerate(names):
        _show(fig.add_subplot(gs[r, 0]), v["images"][name], f"{name}, alpha = {v['alpha']:.2f}")
        strip = np.concatenate(
            [
                np.pad(
                    im,
                    [(1, 1), (1, 1)] + [(0, 0)] * (im.ndim - 2),
                    constant_values=1.0 if i != v["frame"] else 0.0,
                )
                for i, im in enumerate(v["rows"][name])
            ],
            axis=1,
        )
        _show(fig.add_subplot(gs[r, 1]), strip, f"seeds {v['seeds'][0]} -> {v['seeds'][1]}")


def draw_gradients(fig, v: dict) -> None:
    names = list(v["states"])
    axes = fig.subplots(len(names), 2, squeeze=False)
    i, j = v["pixel"]
    for r, name in enumerate(names):
        _show(axes[r, 0], v["states"][name], f"{name} state, level {v['levels'][name]}")
        axes[r, 0].plot([j], [i], "r+", ms=8)
        g = v["gradients"][name]
        # The colour scale ignores the pixel itself, whose identity part (1 for IHDM) would
        # otherwise wash out the neighbourhood the network reads; the centre may saturate.
        off = np.abs(g).copy()
        off[i, j] = 0
        lim = float(off.max()) or float(np.abs(g).max()) or 1.0
        axes[r, 1].imshow(g, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        axes[r, 1].plot([j], [i], "k+", ms=8)
        axes[r, 1].set_axis_off()
        axes[r, 1].set_title(
            f"d estimate[{i},{j}] / d input\nat the pixel {g[i, j]:.2f}, scale +-{lim:.2g}",
            fontsize=8,
        )


def _figure(figsize):
    from matplotlib.figure import Figure

    # Fixed margins instead of a layout engine: constrained layout measures every text twice,
    # which was half of a redraw.
    fig = Figure(figsize=figsize)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.16, top=0.86, wspace=0.25, hspace=0.45)
    return fig


def render_png(draw, view: dict, figsize=(7, 2.6), dpi: int = 80) -> bytes:
    """One view drawn on a fresh figure (no pyplot state), as PNG bytes for a widget."""
    fig = _figure(figsize)
    draw(fig, view)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def slider_html(draw, views: list[dict], figsize=(7, 2.6), dpi: int = 75, fps: int = 4) -> str:
    """A kernel-free frame slider (matplotlib's ``Animation.to_jshtml``): every view is one
    embedded PNG frame; the page's slider and buttons switch between them in the browser."""
    import matplotlib.animation as animation
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not views:
        raise ValueError("a slider needs at least one view")
    fig = _figure(figsize)
    FigureCanvasAgg(fig)
    fig.set_dpi(dpi)

    def frame(i):
        fig.clear()
        draw(fig, views[i])
        return []

    anim = animation.FuncAnimation(
        fig, frame, frames=len(views), interval=1000 // fps, blit=False, repeat=False
    )
    import matplotlib as mpl

    # Animation.save draws its frames at rcParams["savefig.dpi"], not the figure's dpi.
    with mpl.rc_context({"savefig.dpi": dpi}):
        out = anim.to_jshtml(fps=fps, embed_frames=True, default_mode="once")
    # Its buttons' icon font comes from a CDN; the book opens offline, and Jupyter Book's theme
    # ships Font Awesome already (the buttons keep working without the icons either way).
    return re.sub(r'<link rel="stylesheet"[^>]*font-awesome[^>]*>', "", out)
