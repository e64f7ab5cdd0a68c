"""The examples in the public docstrings run and print what they claim."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["", "._backbones", "._dataset", "._evaluate", "._head", "._labels", "._metrics", "._transforms"]


@pytest.mark.parametrize("name", MODULES, ids=lambda name: name or "__init__")
def test_docstring_examples(name):
    module = importlib.import_module(f"localkit_cityscapes{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
