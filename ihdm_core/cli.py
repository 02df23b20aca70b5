"""How the command-line tools report errors.

A user's mistake (a bad ``--set`` value, an unknown preset, a data set that is not there, a missing
or corrupt file) is reported as one line ``error: ...`` on stderr with exit status 2, the status
argparse uses for usage errors. Anything else is a bug and keeps its traceback. ``--debug`` (anywhere
on the command line) or ``IHDM_DEBUG=1`` shows the traceback for every error.

    if __name__ == "__main__":
        sys.exit(run(main))
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

__all__ = ["run", "is_user_error", "USAGE_ERROR", "train", "sample", "evaluate", "pipeline", "shipped"]

USAGE_ERROR = 2
_PACKAGE = Path(__file__).resolve().parent


def _raised_here(err: BaseException) -> bool:
    """Whether ``err`` was raised by a ``raise`` in this package (our own checks), not deep inside a
    library, where the same exception type means something went wrong that we did not foresee."""
    tb = err.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return last is not None and Path(last.tb_frame.f_code.co_filename).resolve().parent == _PACKAGE


def is_user_error(err: BaseException) -> bool:
    """Usage and data errors: reported in one line. Everything else is a bug."""
    from .config import ConfigError
    from .data import DatasetUnavailable

    user = (ConfigError, DatasetUnavailable, FileNotFoundError)
    try:
        from .shipped import ShippedModelError
        from .checkpoints import CheckpointError, RunLocked

        user += (ShippedModelError, CheckpointError, RunLocked)
    except ImportError:  # a partial install still reports the errors above
        pass
    if isinstance(err, user):
        return True
    # get_preset's unknown preset; ValueErrors of our own argument checks (not those of torch etc.)
    return isinstance(err, (KeyError, ValueError)) and _raised_here(err)


def _message(err: BaseException) -> str:
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    text = " ".join(str(text).split("\n")).strip()
    return text or type(err).__name__


def run(main, argv: list[str] | None = None) -> int:
    """Call ``main(argv)`` and turn user errors into one line on stderr and exit status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("IHDM_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    try:
        return main(argv)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - sorted into user errors and bugs below
        if debug or not is_user_error(err):
            raise
        print(f"error: {_message(err)}", file=sys.stderr)
        return USAGE_ERROR


# Console-script entry points (pyproject.toml); each imports its module only when called.
def train() -> int:
    from .train import main

    return run(main)


def sample() -> int:
    from .sample import main

    return run(main)


def evaluate() -> int:
    from .evaluate import main

    return run(main)


def pipeline() -> int:
    from .pipeline import main

    return run(main)


def shipped() -> int:
    from .shipped import main

    return run(main)
