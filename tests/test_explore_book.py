"""Chapter 11 through the pipeline in the smoke profile, built into a one-chapter Jupyter Book,
then opened in headless Chromium: its kernel-free frame sliders exist and a slider move shows
another frame. Also the page weight the chapter adds, and a JupyterLab server serving the
chapter as a notebook with the venv's default viewer for book/*.py."""

import html
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from ihdm_core.book import lab, pipeline

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = "11_explore"
MAX_PAGE_BYTES = 3_000_000  # the budget for the chapter's page and its images

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Chapter 11 executed in the smoke profile, and a book of the intro and chapter 11."""
    base = tmp_path_factory.mktemp("explore")
    out, figs = base / "out", base / "figures"
    os.environ.setdefault("IHDM_OFFLINE", "1")
    old = os.environ.get("IHDM_RUNS")
    os.environ["IHDM_RUNS"] = str(base / "runs")  # smoke models trained here, not in runs/
    try:
        rec = pipeline.execute_chapter(CHAPTER, "smoke", out, figs)
    finally:
        if old is None:
            os.environ.pop("IHDM_RUNS")
        else:
            os.environ["IHDM_RUNS"] = old
    assert rec["status"] == "ok", rec
    root = base / "root"
    (root / "book").mkdir(parents=True)
    shutil.copy2(ROOT / "_config.yml", root / "_config.yml")
    shutil.copy2(ROOT / "book" / "intro.md", root / "book" / "intro.md")
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nparts:\n  - caption: Explore\n"
        f"    chapters:\n      - file: book/{CHAPTER}\n"
    )
    site_html = pipeline.build_html(out, root=root)
    return {
        "out": out,
        "html": site_html,
        "page": site_html / "book" / f"{CHAPTER}.html",
        "notebook": out / "site" / "book" / f"{CHAPTER}.ipynb",
    }


def test_chapter_executes_every_explorer(built):
    nb = nbformat.read(built["notebook"], as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors[0]["evalue"]
    widget_cells = [c for c in code if "remove-output" in c.metadata.get("tags", [])]
    assert [c.source.split("(")[0] for c in widget_cells] == [
        "ui.forward",
        "ui.generation",
        "ui.colour",
        "ui.interpolation",
        "ui.gradients",
    ]
    for c in widget_cells:  # the widget was built (its update ran) in the kernel
        assert any(
            "application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in c.outputs
        ), c.source
    sliders = [
        o
        for c in code
        for o in c.get("outputs", [])
        if "_anim_slider" in "".join(o.get("data", {}).get("text/html", ""))
    ]
    assert len(sliders) == 5


def _page_bytes(page: Path) -> int:
    """The page and the local images it references (not the theme's shared files)."""
    text = page.read_text()
    total = len(page.read_bytes())
    for src in set(re.findall(r'<img[^>]+src="([^"]+)"', text)):
        if not src.startswith("data:"):
            total += (page.parent / src).stat().st_size
    return total


def test_page_weight(built):
    weight = _page_bytes(built["page"])
    print(f"chapter 11 page weight (smoke): {weight / 1e6:.2f} MB")
    assert 100_000 < weight <= MAX_PAGE_BYTES, weight


# On load (and once matplotlib's animation objects exist), record every jshtml slider, move it
# to its last frame and check the shown image changed; then move every slider to the middle, so
# the screenshot shows a frame that only a moved slider shows.
_PROBE = """<script>
window.addEventListener('load', () => setTimeout(() => {
  const out = [];
  for (const s of document.querySelectorAll('input[type=range][id^="_anim_slider"]')) {
    const img = document.getElementById(s.id.replace('_anim_slider', '_anim_img'));
    const first = img.src;
    s.value = s.max;
    s.dispatchEvent(new Event('input'));
    const last = img.src;
    s.value = Math.floor(s.max / 2);
    s.dispatchEvent(new Event('input'));
    out.push({max: +s.max, changed: first !== last, png: last.startsWith('data:image/png'),
              middle: img.src !== first && img.src !== last});
  }
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify({sliders: out,
    remote: performance.getEntriesByType('resource').map(e => e.name)
      .filter(n => !n.startsWith('file:') && !n.startsWith('data:'))});
  document.body.appendChild(pre);
}, 500));
</script>"""


def _browse(page: Path, tmp_path: Path, screenshot: Path | None = None, size=(1100, 2000)):
    probe = page.with_name(f"_probe_{page.stem}.html")
    probe.write_text(page.read_text().replace("</body>", _PROBE + "</body>"))
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--proxy-server=http://127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=30000",
        "--hide-scrollbars",
        f"--window-size={size[0]},{size[1]}",
    ]
    proc = subprocess.run(
        cmd + ["--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=300
    )
    m = re.search(r'<pre id="probe"[^>]*>(.*?)</pre>', proc.stdout, re.S)
    assert m, f"no probe result; chromium said:\n{proc.stderr[-2000:]}"
    if screenshot is not None:
        subprocess.run(
            cmd + [f"--screenshot={screenshot}", probe.as_uri()], capture_output=True, timeout=300
        )
    return json.loads(html.unescape(m.group(1)))


@pytest.mark.skipif(
    _chromium() is None, reason="headless Chromium is not installed (CI installs Debian's)"
)
def test_sliders_change_the_frame_in_chromium(built, tmp_path):
    shots = built["out"] / "screenshots"
    shots.mkdir(exist_ok=True)
    rec = _browse(built["page"], tmp_path, screenshot=shots / "chapter11.png", size=(1100, 9000))
    sliders = rec["sliders"]
    assert len(sliders) == 5, rec
    for s in sliders:
        assert s["max"] >= 2 and s["png"] and s["changed"] and s["middle"], s
    assert rec["remote"] == [], rec["remote"]
    assert (shots / "chapter11.png").stat().st_size > 50_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def test_jupyterlab_serves_the_chapter_as_a_notebook(tmp_path):
    """The venv's JupyterLab, with the user's settings folders empty: the default viewer of
    Python files comes from the venv's overrides (written by scripts/setup.sh)."""
    assert lab.overrides_path().exists(), (
        f"{lab.overrides_path()} is missing: run scripts/setup.sh (or python -m ihdm_core.book.lab)"
    )
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "user-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
    )
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={ROOT}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        cmd.append("--allow-root")
    log = (tmp_path / "lab.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                _get(f"{base}/api/status?token={token}")
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "lab.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "JupyterLab did not start in 300 s"
                time.sleep(1)
        plugin = _get(f"{base}/lab/api/settings/{lab.DOCMANAGER}?token={token}")
        default = plugin["schema"]["properties"]["defaultViewers"]["default"]
        assert default.get("python") == "Jupytext Notebook", default
        assert "defaultViewers" not in (plugin.get("settings") or {})  # not the user's settings
        nb = _get(f"{base}/api/contents/book/{CHAPTER}.py?type=notebook&content=1&token={token}")
        assert nb["type"] == "notebook"
        cells = nb["content"]["cells"]
        sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        for call in (
            "ui.forward(",
            "ui.generation(",
            "ui.colour(",
            "ui.interpolation(",
            "ui.gradients(",
        ):
            assert any(s.startswith(call) for s in sources), call
        assert any(c["cell_type"] == "markdown" for c in cells)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
