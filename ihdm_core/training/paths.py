"""Where things live: the checkout, trained runs and data sets (each overridable by a variable),
and paths as records write them: relative to the checkout, so a record reads the same on every
machine that has the checkout."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["project_root", "runs_root", "data_root", "run_dir_for", "relative_path"]


def project_root() -> Path | None:
    """The checkout this package runs from (None for an installed package)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").exists() else None


def runs_root() -> Path:
    """Where trained runs live: $IHDM_RUNS, else <checkout>/runs, else ~/.cache/ihdm/runs."""
    if os.environ.get("IHDM_RUNS"):
        return Path(os.environ["IHDM_RUNS"]).expanduser()
    root = project_root()
    return root / "runs" if root else Path.home() / ".cache" / "ihdm" / "runs"


def data_root() -> Path:
    """Where data sets live: $IHDM_DATA, else <checkout>/data, else ~/.cache/ihdm/data."""
    if os.environ.get("IHDM_DATA"):
        return Path(os.environ["IHDM_DATA"]).expanduser()
    root = project_root()
    return root / "data" if root else Path.home() / ".cache" / "ihdm" / "data"


def run_dir_for(cfg) -> Path:
    """The folder of ``cfg``'s run: runs are cached by name and identity."""
    return runs_root() / cfg.run_name()


def relative_path(path) -> str:
    """``path`` as a record should hold it: relative to the runs root as ``runs/...``, else to the
    checkout, else as given (a folder outside both is the user's own and stays absolute)."""
    path = Path(path).resolve()
    for base, label in ((runs_root(), "runs"), (project_root(), None)):
        if base is not None and path.is_relative_to(base.resolve()):
            rel = path.relative_to(base.resolve())
            return str(Path(label) / rel) if label else str(rel)
    return str(path)
