"""The examples in the public docstrings run and print what they claim."""

import doctest
import importlib

import numpy as np
import pytest
import torch

import scoredist

MODULES = [
    "",
    "._bins",
    "._data",
    "._features",
    "._heads",
    "._metrics",
    "._plugins",
    "._presets",
    "._protocol",
    "._rules",
    "._train",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"scoredist{name}")
    names = {n: getattr(scoredist, n) for n in scoredist.__all__}
    result = doctest.testmod(
        module, extraglobs={**names, "torch": torch, "np": np}, optionflags=doctest.ELLIPSIS
    )
    assert result.failed == 0
    assert result.attempted > 0
