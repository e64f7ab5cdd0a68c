"""Hooks every package's tests share: a test marked ``cuda`` skips cleanly where torch sees no GPU.

pytest loads this file for any test path in the repository (it sits in the rootdir), so
``@pytest.mark.cuda`` works in every package and in the integration tests alike. torch is
imported only when a collected test carries the marker (localkit-registry's tests run
without torch).
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config, items):
    marked = [item for item in items if item.get_closest_marker("cuda") is not None]
    if not marked:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU: torch.cuda.is_available() is False here")
    for item in marked:
        item.add_marker(skip)
