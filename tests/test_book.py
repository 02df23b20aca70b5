"""The book end to end: the smoke profile through papermill and Jupyter Book, then a browser.

One module-scoped run of ``python -m ihdm_core.pipeline --profile smoke`` (a few minutes on
2 cores) feeds every test here.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from ihdm_core import pipeline
from ihdm_core.figures import read_index

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("book")
    out, figs, runs = base / "out", base / "figures", base / "runs"
    env = dict(os.environ, IHDM_RUNS=str(runs), IHDM_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "ihdm_core.pipeline", "--profile", "smoke", "--out", str(out),
                           "--figures", str(figs)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, f"pipeline failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return {"out": out, "figures": figs, "html": out / "site" / "_build" / "html",
            "stats": json.loads((out / pipeline.STATS).read_text())}


def test_toc_and_sources_agree():
    names = pipeline.chapters()
    assert len(names) == 10 and names[0] == "01_heat_equation" and names[-1] == "10_reproduction_status"
    for name in names:
        text = (ROOT / "book" / f"{name}.py").read_text()
        assert 'tags=["parameters"]' in text and 'profile = "quick"' in text, name


def test_every_chapter_executed_without_errors(built):
    ran = {c["chapter"]: c for c in built["stats"]["chapters"]}
    assert list(ran) == pipeline.chapters()
    for name in ran:
        nb = nbformat.read(built["out"] / "site" / "book" / f"{name}.ipynb", as_version=4)
        assert nb.metadata["papermill"]["parameters"] == {"profile": "smoke"}
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, f"{name}: {errors[0]['ename']}: {errors[0]['evalue']}"
        # Every chapter shows a result: a figure, or a table (chapter 10 is all tables).
        shown = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                 if {"image/png", "text/markdown"} & set(o.get("data", {}))]
        assert shown, f"{name} shows no figure and no table"


def test_every_chapter_page_was_built(built):
    html = built["html"]
    assert (html / "index.html").exists()
    with_tables = {e["chapter"] for e in read_index(built["figures"]).values() if e["kind"] == "table"}
    assert "10_reproduction_status" in with_tables
    for name in pipeline.chapters():
        page = html / "book" / f"{name}.html"
        assert page.exists(), f"no page for {name}"
        text = page.read_text()
        if name in with_tables:  # rendered as HTML tables, not as pipes in a paragraph
            assert "<table" in text, f"{name}: its table did not render"
        assert "Traceback" not in text, f"{name}: a traceback is on the page"
        assert "<img" in text or "<table" in text, f"{name}: neither an image nor a table on the page"


def test_figure_index_lists_written_files(built):
    index = read_index(built["figures"])
    assert len(index) >= 20
    chapters = {e["chapter"] for e in index.values()}
    assert set(pipeline.chapters()) <= chapters, f"chapters without a figure or table: {set(pipeline.chapters()) - chapters}"
    for name, entry in index.items():
        assert entry["provenance"]["profile"] == "smoke"
        for f in entry["files"]:
            assert (built["figures"] / f).stat().st_size > 0, f"{name}: {f} missing"
        if entry["kind"] == "figure":
            assert {Path(f).suffix for f in entry["files"]} == {".png", ".pdf"}


def test_failing_cell_stops_with_chapter_and_cell(tmp_path, monkeypatch):
    book = tmp_path / "book"
    book.mkdir()
    (book / "broken.py").write_text('# %% tags=["parameters"]\nprofile = "quick"\n\n# %%\nx = 1\n\n# %%\n'
                                    'raise ValueError("on purpose")\n')
    monkeypatch.setattr(pipeline, "BOOK", book)
    with pytest.raises(pipeline.ChapterFailed, match=r"chapter broken failed in cell \d+ .*ValueError: on purpose"):
        pipeline.execute_chapter("broken", "smoke", tmp_path / "out", tmp_path / "figs")
    # The kernel inherits the caller's environment plus the pipeline's variables.
    (book / "env.py").write_text('# %% tags=["parameters"]\nprofile = "quick"\n\n# %%\nimport os\n'
                                 'assert os.environ["IHDM_TEST_MARK"] == "kept", os.environ.get("IHDM_TEST_MARK")\n'
                                 'assert os.environ["IHDM_CHAPTER"] == "env" and profile == "smoke"\n')
    monkeypatch.setenv("IHDM_TEST_MARK", "kept")
    rec = pipeline.execute_chapter("env", "smoke", tmp_path / "out", tmp_path / "figs")
    assert rec["status"] == "ok" and os.environ.get("IHDM_CHAPTER") is None
    with pytest.raises(ValueError, match="parameters"):
        (book / "noparams.py").write_text("# %%\nx = 1\n")
        pipeline.convert("noparams", tmp_path / "x.ipynb")


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed (CI installs Debian's)")
def test_chapter_renders_its_figures_in_chromium(built, tmp_path):
    page = built["html"] / "book" / "01_heat_equation.html"
    probe = page.with_name("_probe_01.html")
    # After load, the page reports how many images decoded; --dump-dom prints the final DOM.
    script = ("<script>window.addEventListener('load', () => { const imgs = [...document.images];"
              "const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0));"
              "document.body.setAttribute('data-probe', `images=${imgs.length} broken=${bad.length}`); });</script>")
    probe.write_text(page.read_text().replace("</body>", script + "</body>"))
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", "--disable-features=MediaRouter,OptimizationHints,Translate",
           # Networking off: every request that is not a local file goes to a closed port.
           "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=20000"]
    proc = subprocess.run(cmd + ["--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=180)
    m = re.search(r'data-probe="images=(\d+) broken=(\d+)"', proc.stdout)
    assert m, f"no probe result; chromium said:\n{proc.stderr[-2000:]}"
    n_images, broken = int(m.group(1)), int(m.group(2))
    assert n_images >= 4 and broken == 0, m.group(0)
    # Equations are typeset by the MathJax shipped with the book (no CDN is reachable here).
    dom = subprocess.run(cmd + ["--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=180).stdout
    assert dom.count('class="MathJax"') >= 5, "equations were not typeset"
    shot = tmp_path / "chapter1.png"
    subprocess.run(cmd + [f"--screenshot={shot}", "--window-size=1200,2000", page.as_uri()],
                   capture_output=True, timeout=180)
    assert shot.exists() and shot.stat().st_size > 10_000
