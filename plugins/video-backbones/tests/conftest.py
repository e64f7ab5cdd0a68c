"""Shared inputs: tiny clips keep every test fast on two CPU cores."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def clip() -> torch.Tensor:
    """Two RGB clips of 8 frames at 56x56: ``(2, 3, 8, 56, 56)``."""
    return torch.randn(2, 3, 8, 56, 56, generator=torch.Generator().manual_seed(0))
