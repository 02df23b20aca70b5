"""The book end to end: the smoke profile through papermill and Jupyter Book, then a browser.

One module-scoped run of ``python -m ihdm_core book --profile smoke`` (a few minutes on
2 cores) feeds every test here.
"""

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from ihdm_core.book import pipeline
from ihdm_core.book.figures import read_index

ROOT = Path(__file__).resolve().parent.parent

# The whole module is the book tier: the built fixture runs every chapter through papermill and
# Jupyter Book, and its setup counts towards the first test's timeout (the build itself may take 3000 s).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("book")
    out, figs, runs = base / "out", base / "figures", base / "runs"
    env = dict(os.environ, IHDM_RUNS=str(runs), IHDM_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "ihdm_core", "book", "--profile", "smoke", "--out", str(out),
                           "--figures", str(figs)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, f"pipeline failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return {"out": out, "figures": figs, "html": out / "site" / "_build" / "html",
            "stats": json.loads((out / pipeline.STATS).read_text())}


def test_toc_and_sources_agree():
    names = pipeline.chapters()
    assert len(names) == 11 and names[0] == "01_heat_equation" and names[-1] == "11_explore"
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


# Injected before </body>: once MathJax has typeset the page (its startup promise), write what
# the page holds into <pre id="probe"> as JSON, for --dump-dom to print. With ISOLATE set, the
# paragraph containing that text then becomes the only content of the page, for a screenshot.
_PROBE = """<script>
window.addEventListener('load', () => {
  const mj = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
  (mj || Promise.resolve()).then(() => {
    const ok = i => i.complete && i.naturalWidth > 0;
    const imgs = [...document.images];
    const gifs = imgs.filter(i => /\\.gif$/i.test(i.getAttribute('src') || ''));
    const mjx = [...document.querySelectorAll('mjx-container')];
    const probe = {
      mathjax: mj ? window.MathJax.version : null, images: imgs.length, broken: imgs.filter(i => !ok(i)).length,
      gifs: gifs.length, gif_widths: gifs.map(i => i.naturalWidth), gifs_broken: gifs.filter(i => !ok(i)).length,
      mjx: mjx.length, svg: mjx.filter(c => c.querySelector(':scope > svg path, :scope > svg use')).length,
      untypeset: [...document.querySelectorAll('.math')].filter(e => !e.querySelector('mjx-container')).length,
      errors: document.querySelectorAll('mjx-merror, [data-mjx-error]').length,
      remote: performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith('file:')),
    };
    const pre = document.createElement('pre');
    pre.id = 'probe';
    pre.textContent = JSON.stringify(probe);
    if (window.ISOLATE) {
      const para = [...document.querySelectorAll('p')].find(p => p.textContent.includes(window.ISOLATE));
      const box = document.createElement('div');
      box.style.cssText = 'padding: 12px 16px; max-width: 820px; background: white;';
      if (para) box.appendChild(para);
      const cache = document.getElementById('MJX-SVG-global-cache');
      document.body.className = '';
      pre.style.display = 'none';
      document.body.replaceChildren(...[box, cache, pre].filter(Boolean));
    } else {
      document.body.appendChild(pre);
    }
  });
});
</script>"""


def _browse(page: Path, tmp_path: Path, screenshot: Path | None = None, isolate: str | None = None,
            size=(1200, 2000), zoom: int = 1) -> dict:
    """Open ``page`` in headless Chromium with the network closed; return the probe's record."""
    probe = page.with_name(f"_probe_{page.stem}.html")
    setting = f"<script>window.ISOLATE = {json.dumps(isolate)};</script>" if isolate else ""
    probe.write_text(page.read_text().replace("</body>", setting + _PROBE + "</body>"))
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", "--disable-features=MediaRouter,OptimizationHints,Translate",
           # Networking off: every request that is not a local file goes to a closed port.
           "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=30000",
           "--hide-scrollbars", f"--window-size={size[0]},{size[1]}", f"--force-device-scale-factor={zoom}"]
    proc = subprocess.run(cmd + ["--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=240)
    m = re.search(r'<pre id="probe"[^>]*>(.*?)</pre>', proc.stdout, re.S)  # the theme adds attributes
    assert m, f"no probe result for {page.name}; chromium said:\n{proc.stderr[-2000:]}"
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(cmd + [f"--screenshot={screenshot}", probe.as_uri()], capture_output=True, timeout=240)
    return json.loads(html.unescape(m.group(1)))


def _typeset_as_svg(rec: dict, name: str, at_least: int) -> None:
    """Every equation of the page typeset by the shipped MathJax 3 as SVG, nothing fetched remotely."""
    assert rec["mathjax"] and rec["mathjax"].startswith("3."), f"{name}: MathJax 3 did not start: {rec}"
    assert rec["mjx"] >= at_least and rec["svg"] == rec["mjx"], f"{name}: equations not all SVG: {rec}"
    assert rec["untypeset"] == 0 and rec["errors"] == 0, f"{name}: {rec}"
    assert rec["remote"] == [], f"{name} requested {rec['remote']}"


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed (CI installs Debian's)")
def test_chapter_renders_its_figures_in_chromium(built, tmp_path):
    rec = _browse(built["html"] / "book" / "01_heat_equation.html", tmp_path,
                  screenshot=built["out"] / "screenshots" / "chapter1.png")
    assert rec["images"] >= 4 and rec["broken"] == 0, rec
    _typeset_as_svg(rec, "chapter 1", 5)
    shot = built["out"] / "screenshots" / "chapter1.png"
    assert shot.exists() and shot.stat().st_size > 10_000


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed (CI installs Debian's)")
def test_math_is_mathjax3_svg_and_animations_play_offline(built, tmp_path):
    pages = built["html"] / "book"
    ch3 = _browse(pages / "03_training.html", tmp_path)
    _typeset_as_svg(ch3, "chapter 3", 20)
    assert ch3["broken"] == 0 and ch3["gifs"] == 2 and ch3["gifs_broken"] == 0, ch3
    ch5 = _browse(pages / "05_interpolation.html", tmp_path)
    _typeset_as_svg(ch5, "chapter 5", 10)
    assert ch5["broken"] == 0 and ch5["gifs"] == 1 and ch5["gifs_broken"] == 0, ch5
    # Algorithm 1's paragraph alone, as typeset (hats on u-hat, glyphs): kept with the build for a look.
    shot = built["out"] / "screenshots" / "chapter3_algorithm1.png"
    alg = _browse(pages / "03_training.html", tmp_path, screenshot=shot, isolate="Algorithm 1 (the loss)",
                  size=(860, 200), zoom=2)
    _typeset_as_svg(alg, "chapter 3 (Algorithm 1)", 20)
    from PIL import Image

    with Image.open(shot) as im:
        gray = np.asarray(im.convert("L"))
    # Text and equations on white: a paragraph, not a blank or a page frame.
    dark = (gray < 128).mean()
    assert gray.shape == (400, 1720) and 0.01 < dark < 0.3, (gray.shape, dark)


def test_every_animation_has_its_frames(built):
    """Each GIF of the figure index exists, is not empty, and has one frame per state (2T - 2 when
    played forwards and back), the states being the levels or interpolation frames the chapter used."""
    from ihdm_core.book.animate import gif_info
    from ihdm_core.book.profiles import get_profile

    prof = get_profile("smoke")
    K = prof.config("ihdm").process.K
    anims = {n: e for n, e in read_index(built["figures"]).items() if e["kind"] == "animation"}
    assert set(anims) == {"anim05a_generation", "anim15_shared_initial_state", "anim07b_interpolation"}
    expected_states = {"anim05a_generation": min(K + 1, 40), "anim15_shared_initial_state": min(K + 1, 40),
                       "anim07b_interpolation": prof.n_interp}
    for name, entry in anims.items():
        path = built["figures"] / entry["files"][0]
        info = gif_info(path)
        prov = entry["provenance"]
        T = expected_states[name]
        assert info["bytes"] > 0 and info["bytes"] < 2_000_000, (name, info["bytes"])
        assert prov["states"] == T, (name, prov["states"], T)
        assert info["frames"] == (2 * T - 2 if prov["bounce"] else T), (name, info["frames"], T)
        if "levels" in prov:
            assert prov["levels"][0] == K and prov["levels"][-1] == 0 and len(prov["levels"]) == T
        # The same GIF, byte for byte, is what the HTML page shows.
        assert any(f.read_bytes() == path.read_bytes() for f in built["html"].rglob("*.gif")), name
