"""Figures and tables of the book: stable file names, provenance on every one, one index.

``savefig(fig, "fig05_generation", caption=..., runs=[run], seed=0, n=64)`` writes
``<figures dir>/fig05_generation.png`` and ``.pdf``, prints the provenance line under the
figure itself, and records the figure in ``<figures dir>/index.json`` (file names, caption,
chapter, profile, config identities, seed, sample count). ``save_table`` does the same for a
table (``.csv`` and ``.md``). The pipeline points ``$IHDM_FIGURES`` at the profile's figure
folder; outside it figures go to ``<checkout>/figures/<profile>``.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

from ..training.paths import project_root

__all__ = ["figures_dir", "provenance", "savefig", "save_table", "markdown_table", "read_index",
           "image_grid", "show_images", "label_rows",
           "label_columns", "describe_config", "plot_power_law", "INDEX"]

INDEX = "index.json"


def figures_dir(profile: str = "interactive") -> Path:
    if os.environ.get("IHDM_FIGURES"):
        path = Path(os.environ["IHDM_FIGURES"]).expanduser()
    else:
        root = project_root()
        base = root / "figures" if root else Path.home() / ".cache" / "ihdm" / "figures"
        path = base / profile
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run_info(run) -> dict:
    """Name, identity and step of a loaded run (``train.Run``) or a Config."""
    cfg = getattr(run, "cfg", run)
    info = {"config": cfg.name, "identity": cfg.identity()}
    if hasattr(run, "step"):
        info["step"] = run.step
    # shipped reference weights or trained in this run, steps, hardware
    if hasattr(run, "provenance"):
        info["weights"] = run.provenance
    return info


def provenance(profile: str, runs=(), seed: int | None = None, n: int | None = None,
               **extra) -> dict:
    """What made a figure: profile, runs (config name, identity, training step), seed, sample
    count."""
    rec = {"profile": profile, "runs": [_run_info(r) for r in runs]}
    if seed is not None:
        rec["seed"] = seed
    if n is not None:
        rec["n"] = n
    rec.update({k: v for k, v in extra.items() if v is not None})
    return rec


def _stamp(prov: dict) -> str:
    parts = [f"profile {prov['profile']}"]
    parts += [r["weights"] + f" [{r['identity']}]" if "weights" in r else
              f"{r['config']} [{r['identity']}]" + (f" step {r['step']}" if "step" in r else "")
              for r in prov["runs"]]
    parts += [f"{k} {v}" for k, v in prov.items() if k not in ("profile", "runs")]
    return " · ".join(parts)


def read_index(directory: str | Path | None = None) -> dict:
    path = Path(directory or figures_dir()) / INDEX
    return json.loads(path.read_text()) if path.exists() else {}


def _record(directory: Path, name: str, kind: str, files: list[str], caption: str,
            chapter: str | None, prov: dict) -> dict:
    entry = {"kind": kind, "files": files, "caption": caption,
             "chapter": chapter or os.environ.get("IHDM_CHAPTER"),
             "provenance": prov, "written": time.strftime("%Y-%m-%dT%H:%M:%S")}
    index = read_index(directory)
    index[name] = entry
    tmp = directory / f"{INDEX}.tmp{os.getpid()}"
    tmp.write_text(json.dumps(index, indent=2, sort_keys=True, default=str))
    os.replace(tmp, directory / INDEX)
    return entry


def _check_name(name: str) -> None:
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"figure names are stable file stems of letters, digits, '-' and '_'; "
                         f"got {name!r}")


def savefig(fig, name: str, *, caption: str, profile: str, runs=(), seed: int | None = None,
            n: int | None = None, chapter: str | None = None, stamp: bool = True, **extra) -> dict:
    """Write ``fig`` as PNG and PDF under a stable name and record it in the index.

    The provenance (profile, config identities, seed, sample count and ``extra``) is printed
    in small type at the bottom of the figure, so it travels with the image.
    """
    _check_name(name)
    directory = figures_dir(profile)
    prov = provenance(profile, runs, seed, n, **extra)
    if stamp:
        fig.text(0.5, 0.0, _stamp(prov), ha="center", va="top", fontsize=6.5, color="0.35",
                 wrap=True)
    files = []
    for ext in ("png", "pdf"):
        path = directory / f"{name}.{ext}"
        fig.savefig(path, dpi=150, bbox_inches="tight")
        files.append(path.name)
    return _record(directory, name, "figure", files, caption, chapter, prov)


def save_table(rows: list[dict], name: str, *, caption: str, profile: str, runs=(),
               seed: int | None = None,
               n: int | None = None, chapter: str | None = None, floatfmt: str = ".4g",
               **extra) -> str:
    """Write a table (a list of dicts with the same keys) as CSV and Markdown; return the Markdown.

    The Markdown ends with the caption and the provenance line, for display in the notebook.
    """
    _check_name(name)
    if not rows:
        raise ValueError(f"table {name!r} has no rows")
    directory = figures_dir(profile)
    cols = list(rows[0])
    with open(directory / f"{name}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols)
        writer.writeheader()
        writer.writerows(rows)

    prov = provenance(profile, runs, seed, n, **extra)
    md = markdown_table(rows, floatfmt) + f"\n\n*{caption}* <small>({_stamp(prov)})</small>\n"
    (directory / f"{name}.md").write_text(md)
    _record(directory, name, "table", [f"{name}.csv", f"{name}.md"], caption, chapter, prov)
    return md


def markdown_table(rows: list[dict], floatfmt: str = ".4g") -> str:
    """``rows`` (dicts with the keys of the first) as a Markdown table; floats as ``floatfmt``,
    None empty.
    :func:`save_table` writes the same with a caption; alone it is for display only (not
    indexed)."""
    cols = list(rows[0])

    def fmt(v):
        if isinstance(v, float):
            return format(v, floatfmt)
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    return "\n".join(lines + ["| " + " | ".join(fmt(r.get(c)) for c in cols) + " |" for r in rows])


def image_grid(images, nrow: int | None = None, padding: int = 1, pad_value: float = 1.0):
    """A batch (B, C, H, W) in [0, 1] as one array for ``imshow`` (H', W') or (H', W', 3)."""
    import torch
    from torchvision.utils import make_grid

    x = torch.as_tensor(images).detach().float().cpu().clamp(0, 1)
    if x.dim() == 3:
        x = x[:, None]
    nrow = nrow or max(1, int(round(len(x) ** 0.5)))
    grid = make_grid(x, nrow=nrow, padding=padding, pad_value=pad_value)
    return grid[0].numpy() if x.shape[1] == 1 else grid.permute(1, 2, 0).numpy()


def show_images(ax, images, nrow: int | None = None, title: str | None = None, **kw):
    """Draw a batch of [0, 1] images as a grid on ``ax`` (grayscale without interpolation)."""
    ax.imshow(image_grid(images, nrow, **kw), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def label_rows(ax, labels, size: int, pad: int = 1, **kw) -> None:
    """Write ``labels`` left of the rows of an :func:`image_grid` of ``size``-pixel tiles."""
    for i, text in enumerate(labels):
        ax.text(-1.5, pad + i * (size + pad) + size / 2, text, ha="right", va="center", fontsize=7,
                **kw)


def label_columns(ax, labels, size: int, pad: int = 1, **kw) -> None:
    """Write ``labels`` above the columns of an :func:`image_grid` of ``size``-pixel tiles."""
    for j, text in enumerate(labels):
        ax.text(pad + j * (size + pad) + size / 2, -1.5, text, ha="center", va="bottom", fontsize=7,
                **kw)


def describe_config(cfg) -> dict:
    """The quantities of Tables 1-2 for an IHDM config, as display strings (the parameter count
    builds the network once)."""
    from ..training.build import build_model

    m, p, t = cfg.model, cfg.process, cfg.train
    n_params = sum(q.numel() for q in build_model(cfg).parameters())
    return {
        "network": f"U-Net, {m.base_channels} base channels x {tuple(m.channel_mult)}, "
        f"{m.num_res_blocks} res-blocks, "
                   f"attention at {tuple(m.attn_resolutions)}, dropout {m.dropout}",
        "parameters": f"{n_params / 1e6:.2f} M",
        "K": str(p.K),
        "sigma_B,min .. sigma_B,max": f"{p.sigma_min} .. {p.sigma_max}",
        "sigma (training noise)": str(p.sigma),
        "delta (sampling noise)": str(p.delta),
        "learning rate": f"{t.lr:g} (warm-up {t.warmup} steps, {t.lr_schedule})",
        "EMA": str(t.ema),
        "batch size": str(t.batch_size),
        "training steps": f"{t.steps:,}",
        "data": f"{cfg.data.dataset} {cfg.data.image_size}x{cfg.data.image_size}",
    }


def plot_power_law(ax, fit: dict, scale: float = 1.0, **kw):
    """Draw the line scale * A / f^alpha of :func:`ihdm_core.model.spectra.fit_power_law` over its
    fit range
    (a straight line on log-log axes)."""
    f = [fit["fmin"], fit["fmax"]]
    return ax.loglog(f, [scale * fit["A"] * x ** -fit["alpha"] for x in f], **kw)
