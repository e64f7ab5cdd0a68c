"""Parsing of user options, which arrive as Python values or as strings from the command line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _fail(owner: str, name: str, value: Any, expected: str) -> ValueError:
    return ValueError(f"{owner}: option {name}={value!r} is not {expected}")


def parse_float(owner: str, name: str, value: Any) -> float:
    """A float from a number or a numeric string."""
    if isinstance(value, bool):
        raise _fail(owner, name, value, "a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _fail(owner, name, value, "a number") from None


def parse_int(owner: str, name: str, value: Any) -> int:
    """An int from an integer, an integral float or a string such as ``"3"``."""
    number = parse_float(owner, name, value)
    if not number.is_integer():
        raise _fail(owner, name, value, "an integer")
    return int(number)


def parse_bool(owner: str, name: str, value: Any) -> bool:
    """A bool from a bool, 0/1 or a word such as ``"true"``/``"no"``."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _fail(owner, name, value, "a boolean (true/false, 1/0, yes/no)")


def parse_choice(owner: str, name: str, value: Any, choices: Sequence[str]) -> str:
    """One of ``choices``; case and ``-``/``_`` are not significant."""
    text = str(value).strip().lower().replace("-", "_")
    for choice in choices:
        if text == choice.replace("-", "_"):
            return choice
    raise _fail(owner, name, value, "one of " + ", ".join(repr(c) for c in choices))


def parse_pair(owner: str, name: str, value: Any) -> tuple[float, float]:
    """A ``(first, last)`` pair from a number (constant), ``"5,0"``, ``"5"`` or a 2-sequence."""
    if isinstance(value, str):
        parts = value.replace(" ", "").split(",")
    elif isinstance(value, Sequence):
        parts = list(value)
    else:
        parts = [value]
    if len(parts) == 1:
        parts = parts * 2
    expected = "a number or a 'first,last' pair of numbers"
    if len(parts) != 2:
        raise _fail(owner, name, value, expected)
    try:
        first, last = (parse_float(owner, name, p) for p in parts)
    except ValueError:
        raise _fail(owner, name, value, expected) from None
    if first < 0 or last < 0:
        raise _fail(owner, name, value, "non-negative")
    return first, last
