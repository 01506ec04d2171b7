"""The kinds of value an ltxtune key takes, each a check that returns the value in ltxtune's type.

A reference value of another kind (a string where a list belongs, a word where a number belongs) is refused
with the key and the value, never carried over as something else (a string ``target_modules`` split into
characters, ``"false"`` read as true).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Kind:
    """``what`` the key takes, in words, and ``read``: the value in ltxtune's type, or ``ValueError``."""

    what: str
    read: Callable[[Any], Any]


def _integer(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():  # 100.0: pydantic took it for an int too
        return int(value)
    raise ValueError


def _number(value: Any) -> float:
    # YAML reads 2e-4 (no dot) as a string, which ltx-trainer's pydantic accepted.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError
    number = float(value)
    if not math.isfinite(number):
        raise ValueError
    return value if isinstance(value, int) else number


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError
    return value


def _list(value: Any) -> list:
    if not isinstance(value, list | tuple):
        raise ValueError
    return list(value)


def _mapping(value: Any) -> dict:
    if not isinstance(value, Mapping):
        raise ValueError
    return dict(value)


def list_of(kind: Kind, length: int | None = None) -> Kind:
    """A list whose every item is of ``kind`` (exactly ``length`` items when given)."""

    def read(value: Any) -> list:
        items = [kind.read(item) for item in _list(value)]
        if length is not None and len(items) != length:
            raise ValueError
        return items

    count = f"{length} " if length is not None else ""
    return Kind(f"a list of {count}{kind.what.split(' ', 1)[1]}s", read)


INTEGER = Kind("an integer", _integer)
NUMBER = Kind("a number", _number)
TEXT = Kind("a string", _text)
FLAG = Kind("true or false", _flag)
LIST = Kind("a list", _list)
MAPPING = Kind("a mapping of keys", _mapping)
TEXTS = list_of(TEXT)
INTEGERS = list_of(INTEGER)
