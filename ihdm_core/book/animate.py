"""Animated GIFs of sampling trajectories and interpolations, for the book.

    rec = Recorder(frame_levels(process.K))   # ihdm_core.model.sampling's callback: <= 40 levels
    sample(net, process, u_K, callback=rec)
    path = save_animation(rec.frames(), "anim05_generation", profile=P.name, caption=...,
                          labels=[f"k = {k}" for k in rec.levels()], runs=[run], seed=0)
    display(show_animation(path))                       # an image/gif output: an <img> in the HTML
    book

A frame is a grid of several samples (``figures.image_grid``); ``save_animation`` can also put
several such grids side by side (a dict of panels, e.g. IHDM and DDPM interpolating the same
way). The GIF is written by matplotlib's ``PillowWriter``, so no system binary (ffmpeg) is
needed, and it is recorded in the figures index like the PNG figures, with kind "animation".

Every frame carries a label (the level k, or alpha); besides telling the reader where the
trajectory is, it keeps consecutive frames distinct: Pillow merges identical consecutive GIF
frames into one, which would otherwise make the frame count depend on the images.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .figures import _check_name, _record, figures_dir, image_grid, provenance

__all__ = ["frame_levels", "frame_order", "save_animation", "show_animation", "gif_info"]


def frame_levels(K: int, max_frames: int = 40) -> list[int]:
    """Levels K, ..., 0 to show: all of them if K + 1 <= max_frames, else ``max_frames`` evenly
    spaced.

    Both ends are always included: u_K (the prior draw) first, u_0 (the sample) last.
    """
    if int(K) != K or K < 0:
        raise ValueError(f"K must be a non-negative integer, got {K!r}")
    if int(max_frames) != max_frames or max_frames < 2:
        raise ValueError(f"max_frames must be an integer >= 2, got {max_frames!r}")
    if K + 1 <= max_frames:
        return list(range(int(K), -1, -1))
    levels = np.unique(np.round(np.linspace(0, K, int(max_frames))).astype(int))[::-1]
    return [int(k) for k in levels]


def frame_order(n_states: int, bounce: bool = False, hold: int = 0) -> list[int]:
    """Indices of the states in the order they are drawn: 0..T-1, then (bounce) back down to 1.

    ``hold`` extra copies of the last state (and, when bouncing, of the first) make it stay on
    screen longer; Pillow merges them into one GIF frame of longer duration, so the GIF has
    T frames (2T - 2 when bouncing, T >= 2) whatever ``hold`` is.
    """
    if n_states < 1:
        raise ValueError(f"an animation needs at least one state, got {n_states}")
    if hold < 0:
        raise ValueError(f"hold must be >= 0, got {hold}")
    last = n_states - 1
    order = ([0] * hold if bounce else []) + list(range(n_states)) + [last] * hold
    if bounce:
        order += list(range(last - 1, 0, -1))
    return order


def _as_frames(x):
    """A trajectory as a float tensor (T, B, C, H, W): a tensor of that shape, (T, B, H, W), or a
    list of T batches."""
    import torch

    if isinstance(x, (list, tuple)):
        x = torch.stack([torch.as_tensor(f) for f in x])
    x = torch.as_tensor(x).detach().float().cpu()
    if x.dim() == 4:
        x = x[:, :, None]
    if x.dim() != 5:
        raise ValueError(f"a trajectory is (T, B, C, H, W) or a list of T (B, C, H, W) batches, "
                         f"got shape {tuple(x.shape)}")
    return x


def _panels(frames, labels) -> tuple[dict, list[str]]:
    """{panel title (None for a single panel): (T, B, C, H, W) trajectory} and one label per state,
    checked."""
    panels = frames if isinstance(frames, dict) else {None: frames}
    if not panels:
        raise ValueError("no trajectory to animate")
    panels = {title: _as_frames(x) for title, x in panels.items()}
    lengths = {len(x) for x in panels.values()}
    if len(lengths) != 1:
        raise ValueError(f"the panels must have the same number of states, got {sorted(lengths)}")
    T = lengths.pop()
    if T < 1:
        raise ValueError("a trajectory needs at least one state")
    labels = list(labels) if labels is not None else [f"frame {i + 1}/{T}" for i in range(T)]
    if len(labels) != T or len(set(labels)) != T:
        raise ValueError(f"labels must be {T} distinct strings (one per state), got {len(labels)} "
                         f"({len(set(labels))} distinct)")
    return panels, labels


def _canvas(grids: dict, first_label: str, scale: int):
    """(figure, one image artist per panel, the frame label's text artist, dpi), showing the first
    state."""
    # A bare Figure, not pyplot: nothing is registered with the notebook's inline backend,
    # so the animation's canvas is never shown as a stray static image.
    from matplotlib.figure import Figure

    # Layout in pixels: a line for the frame label, a line per panel title, the grids side by side.
    dpi, gap, label_h = 100, 10, 22
    title_h = 16 if any(t is not None for t in grids) else 0
    sizes = [(g[0].shape[0] * scale, g[0].shape[1] * scale) for g in grids.values()]
    width = sum(w for _, w in sizes) + gap * (len(sizes) + 1)
    height = max(h for h, _ in sizes) + label_h + title_h + gap
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout="none")
    fig.patch.set_facecolor("white")
    images, x0 = [], gap
    for (title, g), (h, w) in zip(grids.items(), sizes):
        ax = fig.add_axes((x0 / width, (height - label_h - title_h - h) / height, w / width,
                           h / height))
        ax.set_axis_off()
        gray = g[0].ndim == 2
        images.append(ax.imshow(g[0], cmap="gray" if gray else None, vmin=0, vmax=1,
                                interpolation="nearest", aspect="auto"))
        if title is not None:
            fig.text((x0 + w / 2) / width, (height - label_h - title_h / 2) / height, title,
                     ha="center", va="center", fontsize=8)
        x0 += w + gap
    label = fig.text(0.5, 1 - label_h / 2 / height, first_label, ha="center", va="center",
                     fontsize=9)
    return fig, images, label, dpi


def save_animation(frames, name: str, *, caption: str, profile: str, labels=None,
                   nrow: int | None = None,
                   fps: float = 8, hold: int = 6, bounce: bool = False, scale: int = 2, runs=(),
                   seed: int | None = None, n: int | None = None, chapter: str | None = None,
                   **extra) -> Path:
    """Write a trajectory (or several side by side) as ``<figures dir>/<name>.gif``; return its
    path.

    frames: (T, B, C, H, W) in [0, 1] (a list of T batches works too), or a dict
            {panel title: trajectory} of trajectories with the same T, drawn side by side.
    labels: one string per state, drawn above the grids (default "frame i/T").
    nrow:   samples per row of each grid (default: about square).
    hold:   the last state (and the first, when bouncing) stays on screen ``hold + 1`` frame times.
    bounce: play forwards then backwards, so the loop has no jump (for interpolations).
    scale:  screen pixels per image pixel (nearest-neighbour).
    The GIF is recorded in the figures index (kind "animation") with the provenance, the number
    of states and the number of GIF frames.
    """
    from matplotlib.animation import FuncAnimation, PillowWriter

    _check_name(name)
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    panels, labels = _panels(frames, labels)
    T = len(labels)
    grids = {title: [image_grid(x[t], nrow=nrow or max(1, math.ceil(math.sqrt(x.shape[1]))))
                     for t in range(T)]
             for title, x in panels.items()}
    fig, images, label, dpi = _canvas(grids, labels[0], scale)

    def draw(t):
        for im, g in zip(images, grids.values()):
            im.set_data(g[t])
        label.set_text(labels[t])
        return images + [label]

    order = frame_order(T, bounce, hold)
    path = figures_dir(profile) / f"{name}.gif"
    tmp = path.with_name(f".{name}.tmp.gif")
    anim = FuncAnimation(fig, draw, frames=order, blit=False, repeat=False, cache_frame_data=False)
    anim.save(tmp, writer=PillowWriter(fps=fps), dpi=dpi)
    tmp.replace(path)
    n_frames = gif_info(path)["frames"]
    expected = len([i for j, i in enumerate(order) if j == 0 or order[j - 1] != i])
    if n_frames != expected:  # Pillow merged or dropped frames that should be distinct
        raise RuntimeError(f"{path} has {n_frames} frames, expected {expected} ({T} states"
                           f"{', bouncing' if bounce else ''})")
    prov = provenance(profile, runs, seed, n, states=T, gif_frames=n_frames, bounce=bounce, **extra)
    _record(path.parent, name, "animation", [path.name], caption, chapter, prov)
    return path


def gif_info(path) -> dict:
    """Frame count, per-frame durations (ms) and size of a GIF, read back with Pillow."""
    from PIL import Image

    with Image.open(path) as im:
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info.get("duration", 0))
        return {"frames": im.n_frames, "durations": durations, "size": im.size,
                "bytes": Path(path).stat().st_size}


def show_animation(path, width: int | None = None):
    """The GIF as a notebook output (image/gif): Jupyter shows it, and Jupyter Book writes it
    beside the page as an <img>, so the HTML book animates it too."""
    from IPython.display import Image

    return Image(data=Path(path).read_bytes(), format="gif", width=width)
