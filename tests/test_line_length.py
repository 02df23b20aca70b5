"""Lines of at most 100 characters (ruff's E501, line-length in pyproject.toml's [tool.ruff]).

Checked: the files listed in CHECKED (a folder means every .py file under it), less EXCLUDED:
the whole package and every chapter (issue 22); tests, scripts and benchmarks are not held to it."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ["ihdm_core", "book", "tests/test_cycles.py", "tests/test_line_length.py",
           "tests/test_cli_arguments.py"]
EXCLUDED: list[str] = []


def _files() -> list[str]:
    out = []
    for entry in CHECKED:
        path = ROOT / entry
        out += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return [str(p) for p in out if str(p.relative_to(ROOT)) not in EXCLUDED]


def _ruff(*paths) -> subprocess.CompletedProcess:
    assert importlib.util.find_spec("ruff"), "ruff is a dev dependency: pip install -e '.[dev]'"
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "E501",
                           "--config", str(ROOT / "pyproject.toml"), "--output-format", "concise",
                           *paths], capture_output=True, text=True, timeout=120)


def test_checked_files_have_lines_of_at_most_100_characters():
    files = _files()
    assert len(files) > 30 and all(Path(f).exists() for f in files)
    proc = _ruff(*files)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_the_check_flags_a_line_of_101_characters(tmp_path):
    ok, long = tmp_path / "ok.py", tmp_path / "long.py"
    ok.write_text("x = '" + "a" * 94 + "'\n")  # 100 characters
    long.write_text("x = '" + "a" * 95 + "'\n")  # 101
    assert _ruff(str(ok)).returncode == 0
    proc = _ruff(str(long))
    assert proc.returncode == 1 and "E501" in proc.stdout and "(101 > 100)" in proc.stdout
