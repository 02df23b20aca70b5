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
from pathlib import Path

__all__ = ["run", "main", "is_user_error", "USAGE_ERROR", "COMMANDS", "train", "sample", "evaluate", "book", "models"]

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
    return last is not None and Path(last.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE)


def is_user_error(err: BaseException) -> bool:
    """Usage and data errors: reported in one line. Everything else is a bug."""
    from .training.config import ConfigError
    from .training.data import DatasetUnavailable

    user = (ConfigError, DatasetUnavailable, FileNotFoundError)
    try:
        from .training.shipped import ShippedModelError
        from .training.checkpoints import CheckpointError, RunLocked

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


# The commands of `python -m ihdm_core <command>` and of the console scripts (pyproject.toml):
# name -> (module holding `main(argv)`, one-line help). Each module is imported only when called.
COMMANDS = {
    "train": ("ihdm_core.training.train", "train a preset (or resume it); the run is cached by its config"),
    "sample": ("ihdm_core.training.generate", "draw samples from a trained run: PNGs, an .npz or a grid"),
    "evaluate": ("ihdm_core.evaluation.scores", "FID, recognisability or NLL of a trained run"),
    "book": ("ihdm_core.book.pipeline", "execute the chapters with papermill and build the HTML book"),
    "models": ("ihdm_core.training.shipped", "list, verify, export or re-card the shipped models (models/)"),
}


def _command(name: str):
    import importlib

    return importlib.import_module(COMMANDS[name][0]).main


def main(argv: list[str] | None = None) -> int:
    """``python -m ihdm_core <command> [options]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        lines = [f"  {name:<{width}}  {help}" for name, (_, help) in COMMANDS.items()]
        usage = "usage: python -m ihdm_core <command> [options]    (<command> --help for its options)\n\ncommands:\n"
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: unknown command {argv[0]!r}; known: {', '.join(COMMANDS)}", file=sys.stderr)
            return USAGE_ERROR
        print(usage + "\n".join(lines), file=sys.stderr if not argv else sys.stdout)
        return 0 if argv else USAGE_ERROR
    return run(_command(argv[0]), argv[1:])


def train() -> int:
    return run(_command("train"))


def sample() -> int:
    return run(_command("sample"))


def evaluate() -> int:
    return run(_command("evaluate"))


def book() -> int:
    return run(_command("book"))


def models() -> int:
    return run(_command("models"))
