"""Regenerate the whole book: execute every chapter with papermill, then build the HTML.

    python -m ihdm_core book --profile quick          # the default main job (2 CPU cores, ~30 min
    first run) python -m ihdm_core book --profile smoke          # seconds per chapter (CI)
    python -m ihdm_core book --profile paper          # GPU, real data sets
    python -m ihdm_core book --profile smoke --chapters 01_heat_equation --no-html

Steps, for each chapter of ``_toc.yml`` in order (the training chapter comes before the ones
that load its checkpoints; every chapter trains what it uses through the run cache, so a
re-run reuses checkpoints keyed by config identity):

1. the jupytext source ``book/<chapter>.py`` becomes a notebook;
2. papermill executes it with ``profile`` injected into its ``parameters`` cell and writes the
   executed notebook to ``<out>/site/book/<chapter>.ipynb``;
3. its wall time and status go to ``<out>/pipeline.json`` (chapter 10 reports them).

A failing cell stops the pipeline with exit status 1 and a message naming the chapter and the
cell. Finally Jupyter Book 1.x builds ``<out>/site`` (the root ``_config.yml`` and
``_toc.yml``, executing nothing) into ``<out>/site/_build/html``. Figures are written to
``figures/<profile>/`` with an ``index.json`` listing them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .profiles import profile_names

__all__ = ["ROOT", "chapters", "convert", "execute_chapter", "build_html", "run_pipeline",
           "ChapterFailed"]

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
STATS = "pipeline.json"


class ChapterFailed(RuntimeError):
    """A cell of a chapter raised; the message names the chapter and the cell."""


def _read_toc(root: Path = ROOT) -> dict:
    import yaml

    path = root / "_toc.yml"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the pipeline takes the chapter order from it")
    try:
        toc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"{path} cannot be read as YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(toc, dict) or "root" not in toc:
        raise ValueError(f"{path} must be a Jupyter Book table of contents with a 'root' entry")
    return toc


def _toc_files(toc: dict) -> list[str]:
    files = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                files.append(e["file"])
            walk(e.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return files


def chapters(root: Path = ROOT) -> list[str]:
    """Chapter names (``book/<name>.py`` sources) in the order of ``_toc.yml``."""
    out = []
    for f in _toc_files(_read_toc(root)):
        stem = Path(f).with_suffix("")
        if (root / stem).with_suffix(".py").exists():
            out.append(stem.name)
        elif not any((root / stem).with_suffix(ext).exists() for ext in (".md", ".ipynb")):
            # A toc entry with no source would only fail later, in the HTML build.
            raise FileNotFoundError(f"_toc.yml names {f!r}, but {root / stem}.py (or .md) does "
                                    f"not exist")
    return out


def convert(name: str, dest: Path) -> Path:
    """``book/<name>.py`` (jupytext py:percent) -> an unexecuted ``.ipynb`` at ``dest``."""
    import jupytext

    src = BOOK / f"{name}.py"
    if not src.exists():
        raise FileNotFoundError(f"no chapter source {src}")
    nb = jupytext.read(src)
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        raise ValueError(f"{src} has no cell tagged 'parameters' (papermill injects the profile "
                         f"there)")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    dest.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(nb, dest, fmt="ipynb")
    return dest


def _kernel_env(profile: str, name: str, out: Path, figures: Path) -> dict:
    env = dict(os.environ)
    # The kernel is started as `python -m ipykernel_launcher`: put this interpreter first on
    # PATH so it runs in the same environment whether or not a venv is activated.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update({"IHDM_FIGURES": str(figures), "IHDM_CHAPTER": name, "IHDM_PROFILE": profile,
                "IHDM_PIPELINE_STATS": str(out / STATS), "PYTHONPATH": os.pathsep.join(
                    [str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
                "MPLBACKEND": "module://matplotlib_inline.backend_inline",
                "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
    return env


def execute_chapter(name: str, profile: str, out: Path, figures: Path,
                    timeout: int | None = None) -> dict:
    """Execute one chapter; return its record. Raises :class:`ChapterFailed` on a failing cell."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    src = convert(name, out / "sources" / f"{name}.ipynb")
    dest = out / "site" / "book" / f"{name}.ipynb"
    dest.parent.mkdir(parents=True, exist_ok=True)
    saved, env = dict(os.environ), _kernel_env(profile, name, out, figures)
    os.environ.clear()  # papermill starts the kernel with this process's environment
    os.environ.update(env)
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(src), str(dest), parameters={"profile": profile},
                            kernel_name="python3",
                            cwd=str(BOOK), progress_bar=False, log_output=False,
                            execution_timeout=timeout)
    except PapermillExecutionError as err:
        raise ChapterFailed(f"chapter {name} failed in cell {err.cell_index} (execution count "
                            f"{err.exec_count}): {err.ename}: {err.evalue}\n  executed notebook "
                            f"with the "
                            f"traceback: {dest}") from None
    finally:
        os.environ.clear()
        os.environ.update(saved)
    _hide_default_parameters(dest)
    return {"chapter": name, "seconds": round(time.perf_counter() - t0, 2), "status": "ok",
            "notebook": str(dest)}


def _hide_default_parameters(path: Path) -> None:
    """Keep the book pages to the profile actually used: papermill's injected cell shows it, the
    source's default (``profile = "quick"``) is tagged ``remove-cell`` for Jupyter Book."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    # The live widgets' saved state (chapter 11) is not shown: the pages carry kernel-free
    # sliders instead, and with the state myst-nb would load the widget manager from a CDN.
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)


def _write_stats(out: Path, stats: dict) -> None:
    tmp = out / (STATS + ".tmp")
    tmp.write_text(json.dumps(stats, indent=2))
    os.replace(tmp, out / STATS)


def _jupyter_book() -> list[str]:
    exe = Path(sys.executable).parent / "jupyter-book"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    if found:
        return [found]
    raise FileNotFoundError("jupyter-book (1.x) is not installed: `pip install "
                            "'jupyter-book>=1,<2'`")


MATHJAX_SCRIPT = "tex-svg-full.js"
# What the contextual menu of MathJax loads on demand (accessibility, speech), so that it works
# offline too; the rest of the wheel's 24 MB (other input/output combinations) is not needed.
_MATHJAX_PARTS = (MATHJAX_SCRIPT, "a11y", "ui", "sre")


def _mathjax_source() -> Path:
    """The ``es5`` folder of MathJax 3 in the ``django-static-mathjax`` wheel.

    The wheel installs a namespace folder ``mathjax`` with no module to import, so the folder is
    found through the distribution's metadata.
    """
    from importlib import metadata

    try:
        dist = metadata.distribution("django-static-mathjax")
    except metadata.PackageNotFoundError as err:
        raise RuntimeError("the book typesets math with MathJax 3 from the "
                           "'django-static-mathjax' wheel "
                           "(pip install django-static-mathjax==3.2.2); it is in the project's "
                           "book extra") from err
    src = Path(dist.locate_file("mathjax/static/mathjax/es5"))
    if not (src / MATHJAX_SCRIPT).is_file():
        raise RuntimeError(f"django-static-mathjax {dist.version} has no es5/{MATHJAX_SCRIPT} "
                           f"under {src}")
    return src


def _copy_mathjax(dest: Path) -> None:
    """Put MathJax 3 (``tex-svg-full.js``, the TeX input with every extension and the SVG output
    in one file, from the ``django-static-mathjax`` wheel) beside the pages.

    ``_config.yml`` points Sphinx at ``<html>/_mathjax`` (copied after the build: inside the
    book's ``_static`` Jupyter Book would load every one of its scripts), so the book renders
    its equations with no network; Jupyter Book's default loads MathJax from a CDN. SVG output
    draws each glyph as a path, so no web font has to be found either.
    """
    src = _mathjax_source()
    dest.mkdir(parents=True, exist_ok=True)
    for part in _MATHJAX_PARTS:
        if (src / part).is_dir():
            shutil.copytree(src / part, dest / part, dirs_exist_ok=True)
        else:
            shutil.copy2(src / part, dest / part)
    shutil.copy2(src.parent / "LICENSE", dest / "LICENSE")  # Apache-2.0 asks for it to travel along


def build_html(out: Path, root: Path = ROOT) -> Path:
    """Assemble ``<out>/site`` (config, toc, Markdown pages, executed notebooks) and build it."""
    site = out / "site"
    site.mkdir(parents=True, exist_ok=True)
    for f in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / f, site / f)
    for f in _toc_files(_read_toc(root)):
        stem = Path(f).with_suffix("")
        page = (root / stem).with_suffix(".md")
        if page.exists():  # Markdown pages are copied; chapters are there already, executed
            (site / stem).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(page, (site / stem).with_suffix(".md"))
        if not any((site / stem).with_suffix(e).exists() for e in (".md", ".ipynb")):
            raise FileNotFoundError(f"{f} is in _toc.yml but neither a page nor an executed "
                                    f"chapter exists")
    for extra in ("references.bib", "logo.png"):
        if (root / "book" / extra).exists():
            shutil.copy2(root / "book" / extra, site / "book" / extra)
    env = dict(os.environ,
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    cmd = _jupyter_book() + ["build", str(site), "--builder", "html", "--keep-going"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    (out / "jupyter-book.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed (exit {proc.returncode}); log: "
                           f"{out / 'jupyter-book.log'}\n"
                           + (proc.stdout + proc.stderr)[-3000:])
    html = site / "_build" / "html"
    if not (html / "index.html").exists():
        raise RuntimeError(f"jupyter-book wrote no {html / 'index.html'}; log: "
                           f"{out / 'jupyter-book.log'}")
    _copy_mathjax(html / "_mathjax")
    return html


def run_pipeline(profile: str, out: Path | None = None, figures: Path | None = None,
                 only: list[str] | None = None,
                 html: bool = True, timeout: int | None = None, log=print,
                 retrain: bool = False) -> dict:
    """Execute the chapters (all, or ``only``) and build the HTML book. Returns the stats record.

    ``retrain``: ignore the shipped reference models (``models/``) and train every model the
    chapters use from scratch into runs/ (sets ``IHDM_RETRAIN=1`` for the chapters' kernels)."""
    from ..training.hardware import hardware_record  # imports torch: only when the book runs

    if retrain:
        os.environ["IHDM_RETRAIN"] = "1"
    if profile not in profile_names():
        raise ValueError(f"unknown profile {profile!r}; known: {', '.join(profile_names())}")
    out = Path(out or ROOT / "_build" / profile).resolve()
    figures = Path(figures or ROOT / "figures" / profile).resolve()
    out.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    names = chapters()
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise ValueError(f"unknown chapters {unknown}; the toc has {names}")
        names = [n for n in names if n in only]
    stats = {"profile": profile, "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "chapters": [],
             "hardware": hardware_record(), "figures_dir": str(figures), "out": str(out),
             "retrain": os.environ.get("IHDM_RETRAIN", "") not in ("", "0")}
    # Chapters after the ones executed now read the earlier records (chapter 10 reports them).
    old = out / STATS
    if old.exists() and only:
        prev = json.loads(old.read_text())
        stats["chapters"] = [c for c in prev.get("chapters", []) if c["chapter"] not in names]
    t0 = time.perf_counter()
    _write_stats(out, stats)
    for i, name in enumerate(names, 1):
        log(f"[pipeline] {i}/{len(names)} {name} (profile {profile}) ...", flush=True)
        rec = execute_chapter(name, profile, out, figures, timeout)
        stats["chapters"] = [c for c in stats["chapters"] if c["chapter"] != name] + [rec]
        _write_stats(out, stats)
        log(f"[pipeline]     done in {rec['seconds']:.1f} s", flush=True)
    stats["execute_seconds"] = round(time.perf_counter() - t0, 2)
    if html:
        t1 = time.perf_counter()
        log("[pipeline] building the HTML book ...", flush=True)
        stats["html"] = str(build_html(out) / "index.html")
        stats["html_seconds"] = round(time.perf_counter() - t1, 2)
        log(f"[pipeline] book: {stats['html']}", flush=True)
    stats["total_seconds"] = round(time.perf_counter() - t0, 2)
    stats["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    _write_stats(out, stats)
    return stats
