"""Task heads, found in ``splitnet.heads``: what the last stage ends in."""

from __future__ import annotations

from torch import nn

from localkit_registry import HeadContext

from ._layout import GlobalPool
from ._objectives import channels_of
from ._registries import HEADS, instantiate


def list_heads(pattern: str = "*", exclude: str | list[str] = ()) -> list[str]:
    """Names registered in the ``splitnet.heads`` group. Imports nothing."""
    return HEADS.names(pattern, exclude)


def create_head(name: str, context: HeadContext, **options) -> nn.Module:
    """Build head ``name`` for the features ``context`` describes, with the user's ``options``.

    Raises:
        UnknownEntryError: no installed distribution provides ``name``.
        OptionError: an option the head does not accept; names the accepted ones.
        ContractError: the factory does not take the context, or returned something that is
            not an ``nn.Module``.

    Example:
        >>> import splitnet
        >>> context = splitnet.HeadContext(feature_shape=(64, 8, 8), num_classes=10)
        >>> splitnet.create_head("classifier", context, dropout=0.5)[1]
        Dropout(p=0.5, inplace=False)
    """
    return instantiate(HEADS, name, context, **options)


def classifier(context: HeadContext, *, dropout: float = 0.0) -> nn.Module:
    """Global average pooling, optional dropout, one linear layer: ``(B, ...) -> (B, num_classes)``."""
    return nn.Sequential(
        GlobalPool(context.layout),
        nn.Dropout(float(dropout)),
        nn.Linear(channels_of(context.feature_shape, context.layout), context.num_classes),
    )
