"""The one error type users see for bad configuration, and how it names the offending key."""

from __future__ import annotations

import dataclasses
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
    """Raise ``ConfigError`` unless ``lo <= value <= hi`` (``lo < value`` when ``lo_open``)."""
    too_low = lo is not None and (value <= lo if lo_open else value < lo)
    too_high = hi is not None and value > hi
    if too_low or too_high:
        low = "" if lo is None else f"{'>' if lo_open else '>='} {lo}"
        high = "" if hi is None else f"<= {hi}"
        raise ConfigError(key, value, "must be " + " and ".join(p for p in (low, high) if p))


def check_choice(key: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(key, value, "must be one of " + ", ".join(repr(c) for c in choices))


class TrainingError(RuntimeError):
    """Training went wrong in a way the user can act on (a non-finite loss, a run directory in use)."""


# A setting's annotation -> the Python types its value may have (a YAML int is a fine float).
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
    "str | None": (str, type(None)),
}


def check_types(settings: object) -> None:
    """Refuse a value of the wrong type (``trainer.batch_size=2.5``) before it fails deep in a run."""
    for f in dataclasses.fields(settings):
        value, allowed = getattr(settings, f.name), _TYPES.get(str(f.type))
        if allowed is None:
            continue
        if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
            names = " or ".join(
                "null" if t is type(None) else t.__name__ for t in allowed if t is not int or str(f.type) == "int"
            )
            raise ConfigError(f.name, value, f"a value of type {names}")
