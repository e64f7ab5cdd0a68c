"""Annotation values read strictly: each one is what it should be, or an error that says where.

Nothing is coerced: ``1.5`` is not a frame number, the string ``"4"`` is not a score, ``True``
is not a count, NaN is in no range, and a ``(7, 1)`` array is not a row of seven judges.
Every function takes ``where`` (the file and the sample, e.g. ``"MTL-AQA: 'x.pkl' dive
'04_49'"``) and ``what`` (the field), and raises :class:`~vidio.DatasetError` naming both,
the value found and what was expected, followed by ``fix`` when one is given.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._errors import DatasetError

_REAL = (int, float, np.integer, np.floating)


def _fail(where: str, what: str, expected: str, value: Any, fix: str) -> DatasetError:
    shown = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    message = f"{where}: {what} should be {expected}, got {shown[:120]}"
    return DatasetError(message + (f"; {fix}" if fix else ""))


def _span(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" in {low:g}..{high:g}"
    if low is not None:
        return f" of at least {low:g}"
    if high is not None:
        return f" of at most {high:g}"
    return ""


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number (Python or numpy; not a bool, not a string)."""
    return isinstance(value, _REAL) and not isinstance(value, (bool, np.bool_))


def number(
    value: Any,
    *,
    where: str,
    what: str,
    low: float | None = None,
    high: float | None = None,
    fix: str = "",
) -> float:
    """A finite real number in ``[low, high]`` (bounds that are ``None`` are open)."""
    expected = f"a finite number{_span(low, high)}"
    if not is_real(value):
        raise _fail(where, what, expected, value, fix)
    result = float(value)
    if (
        not math.isfinite(result)
        or (low is not None and result < low)
        or (high is not None and result > high)
    ):
        raise _fail(where, what, expected, value, fix)
    return result


def integer(value: Any, *, where: str, what: str, low: int | None = None, fix: str = "") -> int:
    """An integer of at least ``low``; a float passes only when it holds an integer exactly (``7.0``)."""
    expected = f"an integer{_span(low, None)}"
    if not is_real(value) or not math.isfinite(float(value)) or float(value) != int(value):
        raise _fail(where, what, expected, value, fix)
    result = int(value)
    if low is not None and result < low:
        raise _fail(where, what, expected, value, fix)
    return result


def numbers(
    value: Any,
    *,
    where: str,
    what: str,
    low: float | None = None,
    high: float | None = None,
    length: int | None = None,
    fix: str = "",
) -> tuple[float, ...]:
    """A flat sequence (list, tuple or 1-D numpy array) of finite numbers in ``[low, high]``."""
    count = f"{length} " if length is not None else ""
    expected = f"a flat list or 1-D array of {count}finite numbers{_span(low, high)}"
    if isinstance(value, np.ndarray):
        items = value.tolist() if value.ndim == 1 else None
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = None
    if items is None or (length is not None and len(items) != length) or not all(is_real(v) for v in items):
        raise _fail(where, what, expected, value, fix)
    result = tuple(float(v) for v in items)
    for k, v in enumerate(result):
        if not math.isfinite(v) or (low is not None and v < low) or (high is not None and v > high):
            raise _fail(where, f"{what} (item {k + 1} of {len(result)}: {v:g})", expected, value, fix)
    return result
