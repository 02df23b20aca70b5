"""Fixtures shared by the test modules.

Tiers: ``pytest -m "not slow"`` is the day-to-day run; plain ``pytest`` (the README's command,
and CI) runs everything, the book and the torchrun tests included. See docs/testing.md.
"""

import pytest


@pytest.fixture
def run_root(tmp_path, monkeypatch):
    """An empty runs folder for this test, set as IHDM_RUNS, so nothing reads or writes the real runs/.

    Returns the folder (``tmp_path / "runs"``; created by whatever trains first). Subprocesses
    started with ``dict(os.environ, ...)`` inherit it.
    """
    runs = tmp_path / "runs"
    monkeypatch.setenv("IHDM_RUNS", str(runs))
    return runs
