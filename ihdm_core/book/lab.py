"""The project's JupyterLab opens the chapters (``book/*.py``, jupytext py:percent) as notebooks.

JupyterLab reads ``<sys.prefix>/share/jupyter/lab/settings/overrides.json`` as defaults that sit
under the user's own settings. Writing the default viewer of Python files there, inside the
virtual environment that ``scripts/setup.sh`` makes, gives this project's JupyterLab the notebook
view out of the box and leaves the user's global settings (``~/.jupyter``) untouched, which
``jupytext-config set-default-viewer`` would change for every project.

    python -m ihdm_core.book.lab    # scripts/setup.sh runs this
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["DOCMANAGER", "VIEWERS", "overrides_path", "write_overrides"]

DOCMANAGER = "@jupyterlab/docmanager-extension:plugin"
# The file types JupyterLab knows for *.py and *.md, and jupytext's notebook view of them.
VIEWERS = {"python": "Jupytext Notebook"}


def overrides_path(prefix: str | Path | None = None) -> Path:
    return Path(prefix or sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"


def write_overrides(prefix: str | Path | None = None) -> Path:
    """Merge the default viewers into the environment's overrides.json (other keys are kept)."""
    path = overrides_path(prefix)
    data = {}
    if path.exists():
        try:
            data = json.loads(path.read_text() or "{}")
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); fix or remove it") from None
    data.setdefault(DOCMANAGER, {}).setdefault("defaultViewers", {}).update(VIEWERS)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


if __name__ == "__main__":
    print(f"[setup] JupyterLab opens book/*.py as notebooks: {write_overrides()}")
