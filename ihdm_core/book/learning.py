"""Chapter 3's record of training: the learning curve (sample quality against training images
seen), what its extrapolation would cost, and the recipe search's table."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["learning_curve_figure", "curve_table", "equal_images_table", "compute_at",
           "recipe_table", "load_recipe_search", "summarise_curve"]


def _extrapolation(ax, x_last: float, fit: dict | None, target: float, colour: str) -> None:
    """The dashed log-linear trend from the last point to where it reaches ``target``."""
    if not fit or not fit["images_at_target"]:
        return
    xs = np.geomspace(x_last, fit["images_at_target"], 20)
    ax.plot(xs, fit["intercept"] + fit["slope_per_decade"] * np.log10(xs), "--", color=colour, lw=1)
    ax.annotate(f"{fit['images_at_target']:.1e}", (fit["images_at_target"], target), fontsize=7,
                color=colour, ha="right", va="bottom")


def learning_curve_figure(curves: dict, fits: dict, *, target: float, real_recog: float | None,
                          real_fid: float | None, title: str):
    """Two panels over images seen (log scale): recognisability with +-1 SE bars and, dashed, its
    log-linear extrapolation to ``target``; FID. ``curves``: {label: rows of
    ihdm_core.evaluation.curves}; ``fits``: {label: extrapolate(...) result or None}."""
    fig, (ax_r, ax_f) = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, (label, rows) in enumerate(curves.items()):
        x = np.array([r["images_seen"] for r in rows], float)
        ax_r.errorbar(x, [r["recognisability"] for r in rows], fmt="o-", ms=4, capsize=2,
                      yerr=[r["recognisability_se"] for r in rows], color=f"C{i}", label=label)
        ax_f.plot(x, [r["fid"] for r in rows], "o-", ms=4, color=f"C{i}", label=label)
        _extrapolation(ax_r, x[-1], fits.get(label), target, f"C{i}")
    for ax, real, name in ((ax_r, real_recog, "real held-out digits"),
                           (ax_f, real_fid, "real-digit floor")):
        if real is not None:
            ax.axhline(real, color="grey", lw=0.8, ls=":", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("training images seen")
        ax.grid(alpha=0.3, which="both")
    ax_r.axhline(target, color="k", lw=0.6, alpha=0.5)
    ax_r.set(ylabel="recognisability", ylim=(0, 1))
    ax_f.set(ylabel="FID (lower is better)", yscale="log")
    ax_r.legend(fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _point_cells(r: dict) -> dict:
    """The cells every table of a curve point shows: CPU hours, recognisability (SE), FID and
    the rarest class's share of the digit labels."""
    cpu_h = r["cpu_seconds"] / 3600 if r.get("cpu_seconds") else None
    return {"CPU hours": None if cpu_h is None else round(cpu_h, 2),
            "recognisability": f"{r['recognisability']:.3f} ± {r['recognisability_se']:.3f}",
            "FID": None if r.get("fid") is None else round(r["fid"], 1),
            "rarest class": f"{r['min_class_share']:.1%}"}


def curve_table(rows: list[dict]) -> list[dict]:
    """The rows of a committed learning curve as the book's table: one line per snapshot."""
    return [{"step": r["step"], "images seen": r["images_seen"], **_point_cells(r),
             "held-out loss": None if r.get("eval_loss") is None else round(r["eval_loss"], 5)}
            for r in rows]


def equal_images_table(curves: dict) -> list[dict]:
    """Curves of several processes ({label: rows}, the first the one the others are read against)
    side by side at equal images seen: every point of the first curve that at least one other
    curve also scored, with each curve's recognisability (SE), FID and rarest class (empty where a
    curve has no point there). The CPU hours are the first curve's: the book's curves share one
    network, batch and speed, so a point costs the same in each."""
    by_images = {label: {r["images_seen"]: r for r in rows} for label, rows in curves.items()}
    first, *others = by_images.values()
    shown = [i for i in sorted(first) if any(i in points for points in others)]
    out = []
    for images in shown:
        row = {"images seen": images, "CPU hours": _point_cells(first[images])["CPU hours"]}
        for label, points in by_images.items():
            cells = _point_cells(points[images]) if images in points else {}
            row.update({f"{label}: {k}": cells.get(k)
                        for k in ("recognisability", "FID", "rarest class")})
        out.append(row)
    return out


def compute_at(fit: dict | None, *, batch: int, steps_per_cpu_second: float | None) -> dict:
    """What reaching ``fit['target']`` would take along an extrapolated trend: images, steps at
    ``batch``, CPU hours at the measured throughput (None where the trend does not rise)."""
    images = fit["images_at_target"] if fit else None
    if images is None:
        return {"images": None, "steps": None, "cpu_hours": None}
    steps = images / batch
    hours = steps / steps_per_cpu_second / 3600 if steps_per_cpu_second else None
    return {"images": images, "steps": steps, "cpu_hours": hours}


def recipe_table(rows: list[dict]) -> list[dict]:
    """The recipe search's arms (``scripts/recipe_search.py`` rows), best first, each with its
    difference to the base arm in units of the two arms' combined standard error."""
    base = next((r for r in rows if r["arm"] == "base"), None)
    out = []
    for r in sorted(rows, key=lambda r: -r["recognisability"]):
        z = None
        if base is not None and r is not base:
            se = (r["se"] ** 2 + base["se"] ** 2) ** 0.5
            z = round((r["recognisability"] - base["recognisability"]) / se, 1) if se else None
        out.append({"arm": r["arm"], "question": r["question"], "steps": r["steps"],
                    "batch": r["batch"], "images seen": r["images_seen"],
                    "recognisability": f"{r['recognisability']:.3f} ± {r['se']:.3f}",
                    "vs base (SE)": z, "rarest class": f"{r['min_class_share']:.1%}", "n": r["n"]})
    return out


def load_recipe_search(path: Path | None = None) -> dict | None:
    """The committed recipe search (``docs/recipe-search.json``: base, budget_s, threads, rows),
    or None where none is committed."""
    from ..training.paths import project_root

    if path is None:
        root = project_root()
        if root is None:
            return None
        path = root / "docs" / "recipe-search.json"
    return json.loads(Path(path).read_text()) if Path(path).exists() else None


def summarise_curve(curve: dict, *, targets=(0.6, 0.8), gpu=None) -> tuple[dict, list[str]]:
    """Fits of a committed curve's recognisability to each target (``extrapolate`` over its last
    four points) and the lines the book prints: what each target would cost if the trend held,
    and, given the ``gpu`` preset, the images its budget buys on which network."""
    from ..evaluation.curves import extrapolate
    from ..training.presets import get_preset

    rows = curve["rows"]
    images = [r["images_seen"] for r in rows]
    ours = get_preset(rows[-1]["config"])
    fits, lines = {}, []
    for q in targets:
        fits[q] = extrapolate(images, [r["recognisability"] for r in rows], q)
        need = compute_at(fits[q], batch=ours.train.batch_size,
                          steps_per_cpu_second=curve.get("steps_per_cpu_second"))
        if need["images"] is None:
            lines.append(f"recognisability {q}: the trend of the last points does not rise")
            continue
        hours = "" if need["cpu_hours"] is None else f"; {need['cpu_hours']:.1f} CPU hours"
        lines.append(f"recognisability {q}: {need['images']:.2g} images if the trend held "
                     f"({need['images'] / images[-1]:.1f}x the last point{hours})")
    if gpu is not None:
        t, m = gpu.train, gpu.model
        lines.append(f"the {gpu.name} budget: {t.steps * t.batch_size:.2g} images ({t.steps:,} "
                     f"steps x batch {t.batch_size}) on a larger U-Net (base {m.base_channels} "
                     f"channels, {m.num_res_blocks} residual blocks per level; "
                     f"{ours.name}: {ours.model.base_channels} and {ours.model.num_res_blocks})")
    return fits, lines
