"""Value checks shared by the config fields and the command-line arguments.

Each check takes the value and the name the user wrote (``train.lr``, ``--delta``) and raises a
:class:`ConfigError` of one line, ``<name>=<value> is not allowed: must be ...``, so a bad
``--set`` field and a bad CLI argument read the same and both end with exit status 2.
"""

from __future__ import annotations

import math
from pathlib import Path

__all__ = ["ConfigError", "not_allowed", "check_int", "check_float", "check_bool", "check_choice",
           "check_int_tuple", "check_str", "check_dir", "check_new_dir", "check_file",
           "check_new_file"]


class ConfigError(ValueError):
    """A value outside what is allowed; the message names field, value and range."""


def not_allowed(where: str, value, allowed: str) -> ConfigError:
    return ConfigError(f"{where}={value!r} is not allowed: {allowed}")


def check_int(value, where: str, lo: int | None = None, optional: bool = False) -> None:
    if value is None and optional:
        return
    what = "an integer" + (f" >= {lo}" if lo is not None else "") + (" or None" if optional else "")
    if isinstance(value, bool) or not isinstance(value, int) or (lo is not None and value < lo):
        raise not_allowed(where, value, f"must be {what}")


def _range(lo, hi, lo_open: bool, hi_open: bool) -> str:
    lb = "" if lo is None else f"{'>' if lo_open else '>='} {lo:g}"
    ub = "" if hi is None else f"{'<' if hi_open else '<='} {hi:g}"
    return (f" {lb}" if lb else "") + (" and" if lb and ub else "") + (f" {ub}" if ub else "")


def check_float(value, where: str, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False, hi_open: bool = False, optional: bool = False) -> None:
    if value is None and optional:
        return
    what = "a finite number" + _range(lo, hi, lo_open, hi_open) + (" or None" if optional else "")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise not_allowed(where, value, f"must be {what}")
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise not_allowed(where, value, f"must be {what}")
    if hi is not None and (value > hi or (hi_open and value == hi)):
        raise not_allowed(where, value, f"must be {what}")


def check_bool(value, where: str, optional: bool = False) -> None:
    if not (isinstance(value, bool) or (optional and value is None)):
        raise not_allowed(where, value, "must be true or false" + (" or None" if optional else ""))


def check_choice(value, where: str, allowed: tuple) -> None:
    if value not in allowed or not isinstance(value, str):
        raise not_allowed(where, value, f"must be one of {', '.join(allowed)}")


def check_int_tuple(value, where: str, lo: int, nonempty: bool) -> tuple:
    """The value as a tuple (JSON round trips and hand-written calls give lists)."""
    value = tuple(value) if isinstance(value, list) else value
    if (not isinstance(value, tuple) or (nonempty and not value)
            or any(isinstance(x, bool) or not isinstance(x, int) or x < lo for x in value)):
        kind = "non-empty " if nonempty else ""
        raise not_allowed(where, value, f"must be a {kind}tuple of integers >= {lo}")
    return value


def check_str(value, where: str) -> None:
    if not isinstance(value, str):
        raise not_allowed(where, value, "must be a string")


# --- paths: the kind of file system entry an argument names ------------------------------
def check_new_dir(value, where: str) -> Path:
    """A folder to write into: it may exist (as a folder) or not yet."""
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise not_allowed(where, str(value), "must be a folder (or a path to create one); "
                                             "it names an existing file")
    return path


def check_dir(value, where: str) -> Path:
    """A folder to read: it must exist and be a folder."""
    path = Path(value).expanduser()
    if not path.is_dir():
        what = "a file" if path.exists() else "nothing"
        raise not_allowed(where, str(value), f"must be an existing folder; it names {what}")
    return path


def check_file(value, where: str) -> Path:
    """A file to read: it must exist and be a file."""
    path = Path(value).expanduser()
    if not path.is_file():
        what = "a folder" if path.is_dir() else "nothing"
        raise not_allowed(where, str(value), f"must be an existing file; it names {what}")
    return path


def check_new_file(value, where: str, suffix: str | None = None) -> Path:
    """A file to write: not a folder, in a folder that exists or can be made, with ``suffix``."""
    path = Path(value).expanduser()
    if path.is_dir():
        raise not_allowed(where, str(value), "must be a file path; it names a folder")
    if suffix is not None and path.suffix.lower() != suffix:
        raise not_allowed(where, str(value), f"must end in {suffix}")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise not_allowed(where, str(value), f"must be in a folder; {parent} is a file")
    return path
