"""The examples in vidio's docstrings run and print what they claim.

Every module is searched, so a new module's examples run without being listed here. Examples
that need a video file or a dataset on disk are marked ``+SKIP``; the rest must pass.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import numpy as np
import torch

import vidio

# The registry helper's examples are about splitnet's backbones: they run where it lives.
# Importing __main__ would run the command line.
ELSEWHERE = {"vidio._registry", "vidio.__main__"}
MODULES = sorted({"vidio"} | {m.name for m in pkgutil.walk_packages(vidio.__path__, "vidio.")} - ELSEWHERE)


def test_docstring_examples_run():
    attempted, failures = {}, []
    for name in MODULES:
        module = importlib.import_module(name)
        result = doctest.testmod(
            module,
            extraglobs={"vidio": vidio, "torch": torch, "np": np},
            optionflags=doctest.ELLIPSIS,
            report=False,
        )
        attempted[name] = result.attempted
        if result.failed:
            failures.append(f"{name}: {result.failed} of {result.attempted} examples failed")
    assert not failures, "\n".join(failures)
    assert sum(attempted.values()) > 0, "no docstring example was collected"
    for name in ("vidio._sampling", "vidio._transforms", "vidio._decoders", "vidio._datasets.registry"):
        assert attempted[name] > 0, f"{name}'s examples were not collected"
