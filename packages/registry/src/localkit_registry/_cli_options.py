"""``NAME=VALUE``: the one spelling of a factory option on every localkit command line.

``python -m splitnet`` (``--model-opt``, ``--head-opt``, ``--dataset-opt``,
``--objective-opt``), ``python -m scoredist`` and the plugins' commands read their options
with these two functions, so a value means the same everywhere.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def parse_value(text: str) -> Any:
    """The value of one ``NAME=VALUE`` option.

    In order: a JSON value (``3``, ``0.5``, ``true``, ``null``, ``"text"``, ``[1, 2]``,
    ``{"a": 1}``); a comma-separated list, as a tuple of values read the same way
    (``512,1024``); ``True``/``False``/``None`` in any case; otherwise the text itself.

    Example:
        >>> [parse_value(t) for t in ("3", "0.5", "true", "None", "512,1024", "[1, 2]", "resnet")]
        [3, 0.5, True, None, (512, 1024), [1, 2], 'resnet']
    """
    try:
        return json.loads(text)
    except ValueError:
        pass
    if "," in text:
        return tuple(parse_value(part.strip()) for part in text.split(","))
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    return text


def parse_option(text: str) -> tuple[str, Any]:
    """``"name=value"`` -> ``(name, value)``; usable as an argparse ``type=``.

    Hyphens in the name become underscores (``--model-opt drop-rate=0.1`` is ``drop_rate``);
    the value is read by :func:`parse_value`.

    Raises:
        argparse.ArgumentTypeError: no ``=``, no name, or no value (argparse shows it with the
            flag); an empty string is written ``NAME=""``.

    Example:
        >>> parse_option("drop-rate=0.1")
        ('drop_rate', 0.1)
        >>> parse_option("width")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: options are written NAME=VALUE, got 'width'
    """
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"options are written NAME=VALUE, got {text!r}")
    if not value.strip():
        raise argparse.ArgumentTypeError(
            f"option {name.strip()!r} has no value ({text!r}): write a value, or NAME='\"\"' for an empty string"
        )
    return name.strip().replace("-", "_"), parse_value(value)
