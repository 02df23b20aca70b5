"""Config fields written as text, as ``--set section.field=value`` gives them: each value is
parsed by its field's declared type, and a bad key or value is a one-line ConfigError."""

from __future__ import annotations

import math
import typing

from .checks import ConfigError
from .config import SECTIONS, check_keys

__all__ = ["parse_value", "parse_overrides"]


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def parse_value(section: str, name: str, text: str):
    """The value of ``section.name`` written as text (``--set``), parsed by the field's declared
    type:
    int, float (finite), bool (true/false), tuple of ints ("8,4", "[8, 4]" or "()"), str, and None
    for Optional fields ("none"). Raises ConfigError naming the field, the text and the type
    wanted."""
    if section not in SECTIONS:
        raise ConfigError(f"unknown config section {section!r} in {section}.{name}; the sections "
                          f"are: "
                          f"{', '.join(SECTIONS)}")
    cls = SECTIONS[section]
    check_keys(section, cls, {name: None})
    hint = typing.get_type_hints(cls)[name]
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    raw = text.strip()
    if optional and raw.lower() in ("none", "null"):
        return None

    def bad(what: str) -> ConfigError:
        return ConfigError(f"{section}.{name}={text!r} is not allowed: must be {what}"
                           + (" or none" if optional else ""))

    if base is bool:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise bad("true or false")
    if base is int:
        try:
            return int(raw)
        except ValueError:
            raise bad("an integer") from None
    if base is float:
        try:
            value = float(raw)
        except ValueError:
            raise bad("a finite number") from None
        if not math.isfinite(value):
            raise bad("a finite number")
        return value
    if base is tuple:
        inner = raw.strip("()[] ")
        try:
            return tuple(int(x) for x in inner.split(",") if x.strip())
        except ValueError:
            raise bad("integers separated by commas, e.g. 8,4 (or () for none)") from None
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    return raw


def parse_overrides(pairs: list[str]) -> dict:
    """["train.steps=100", "process.K=20"] -> {"train": {"steps": 100}, "process": {"K": 20}}, each
    value parsed by its field's type (``config.parse_value``); a bad key or value is a
    ConfigError."""
    out: dict = {}
    for pair in pairs:
        if "=" not in pair or "." not in pair.split("=", 1)[0]:
            raise ConfigError(f"override {pair!r} must look like section.field=value, "
                              "e.g. train.steps=1000")
        key, value = pair.split("=", 1)
        section, name = key.strip().split(".", 1)
        out.setdefault(section, {})[name] = parse_value(section, name, value)
    return out
