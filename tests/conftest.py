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


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The tiny ``mnist-smoke`` model, trained once per test module into a runs folder of its own
    (so each module starts with no recorded scores)."""
    import os

    from ihdm_core.training.presets import get_preset
    from ihdm_core.training.train import ensure_trained

    old = os.environ.get("IHDM_RUNS")
    os.environ["IHDM_RUNS"] = str(tmp_path_factory.mktemp("runs"))
    try:
        yield ensure_trained(get_preset("mnist-smoke"), device="cpu", progress=False)
    finally:
        if old is None:
            os.environ.pop("IHDM_RUNS")
        else:
            os.environ["IHDM_RUNS"] = old
