"""Task heads, found in ``splitnet.heads``: what the last stage ends in."""

from __future__ import annotations

from torch import nn

from ._layout import GlobalPool
from ._objectives import channels_of
from ._registries import HEADS, instantiate


def list_heads(pattern: str = "*", exclude: str | list[str] = ()) -> list[str]:
    """Names registered in the ``splitnet.heads`` group. Imports nothing."""
    return HEADS.names(pattern, exclude)


def create_head(name: str, **context) -> nn.Module:
    """Build head ``name`` (``in_shape``, ``layout``, ``num_classes``, ``input_shape``, ``task``)."""
    return instantiate(HEADS, name, **context)


def classifier(*, in_shape, layout, num_classes, dropout: float = 0.0, **_) -> nn.Module:
    """Global average pooling, optional dropout, one linear layer: ``(B, ...) -> (B, num_classes)``."""
    return nn.Sequential(
        GlobalPool(layout),
        nn.Dropout(float(dropout)),
        nn.Linear(channels_of(tuple(in_shape), layout), int(num_classes)),
    )
