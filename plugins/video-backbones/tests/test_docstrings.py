"""The examples in the public docstrings run and print what they claim.

They run as a user reads them, after ``import localkit_video_backbones``. Every module of
the package is searched, so an example added anywhere runs; examples marked ``+SKIP`` (they
need data sets or files a user has) are left out, and finding no runnable example at all is
a failure, not an empty pass.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import localkit_video_backbones


def _runnable_examples(module) -> int:
    tests = doctest.DocTestFinder().find(module)
    return sum(1 for test in tests for example in test.examples if not example.options.get(doctest.SKIP))


def _modules_with_examples() -> list[str]:
    found = [localkit_video_backbones.__name__]
    found += [
        m.name
        for m in pkgutil.walk_packages(localkit_video_backbones.__path__, "localkit_video_backbones.")
        if not m.name.endswith(".__main__")
    ]
    return [name for name in found if _runnable_examples(importlib.import_module(name))]


MODULES = _modules_with_examples()


def test_examples_are_found():
    assert MODULES, "no module of localkit_video_backbones has a runnable docstring example"


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(
        module,
        extraglobs={"localkit_video_backbones": localkit_video_backbones},
        optionflags=doctest.ELLIPSIS,
    )
    assert result.failed == 0
    assert result.attempted == _runnable_examples(module)
