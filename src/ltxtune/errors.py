"""The one error type users see for bad configuration, and how it names the offending key."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from typing import Any


class ConfigError(ValueError):
    """A configuration value that ltxtune refuses, with the key, the value and what is allowed.

    Constructors raise it with their own argument name as ``key``; ``within`` prefixes the
    config group so the message names the full key a user types (``optimizer.lr``).
    """

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is not allowed: {allowed}")

    def within(self, prefix: str) -> ConfigError:
        return ConfigError(f"{prefix}.{self.key}", self.value, self.allowed)


class DataError(ValueError):
    """The dataset on disk does not match what the run needs (missing directory, file, or bad content)."""


def check_range(
    key: str, value: float, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False
) -> None:
    """Raise ``ConfigError`` unless ``value`` is a finite number with ``lo <= value <= hi`` (``lo < value`` when
    ``lo_open``): a text, NaN or infinity is refused like an out-of-range number."""
    low = "" if lo is None else f"{'>' if lo_open else '>='} {lo}"
    high = "" if hi is None else f"<= {hi}"
    bounds = " and ".join(p for p in (low, high) if p)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(key, value, " ".join(("must be a number", bounds)).strip())
    if not math.isfinite(value):  # NaN passes every comparison below
        raise ConfigError(key, value, " ".join(("must be a finite number", bounds)).strip())
    too_low = lo is not None and (value <= lo if lo_open else value < lo)
    too_high = hi is not None and value > hi
    if too_low or too_high:
        raise ConfigError(key, value, "must be " + bounds)


def check_choice(key: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(key, value, "must be one of " + ", ".join(repr(c) for c in choices))


class TrainingError(RuntimeError):
    """Training went wrong in a way the user can act on (a non-finite loss, a run directory in use)."""


# An annotation's part -> the Python types its value may have (a YAML int is a fine float).
_SCALARS: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}
_NAMES = ("Sequence[str]", "list[str]", "tuple[str, ...]")  # a list of names (``lora.target_modules``)


def check_annotated(key: str, value: Any, annotation: Any) -> None:
    """Refuse ``value`` when it is not of the type ``annotation`` names (``int``, ``float | None``,
    ``Sequence[str]``...); annotations of other shapes are left to the code that reads the value."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    parts = [p.strip() for p in text.split("|")]
    if not all(p in _SCALARS or p in _NAMES or p == "None" for p in parts) or any(_fits(value, p) for p in parts):
        return
    if any(p in _NAMES for p in parts):
        raise ConfigError(key, value, "a list of str, written [a, b]")
    raise ConfigError(key, value, "a value of type " + " or ".join("null" if p == "None" else p for p in parts))


def _fits(value: Any, part: str) -> bool:
    if part == "None":
        return value is None
    if part in _NAMES:
        return isinstance(value, Sequence) and not isinstance(value, str) and all(isinstance(v, str) for v in value)
    allowed = _SCALARS[part]
    return isinstance(value, allowed) and (bool in allowed or not isinstance(value, bool))


def check_types(settings: object) -> None:
    """Refuse a value of the wrong type (``trainer.batch_size=2.5``) before it fails deep in a run."""
    for f in dataclasses.fields(settings):
        check_annotated(f.name, getattr(settings, f.name), f.type)
