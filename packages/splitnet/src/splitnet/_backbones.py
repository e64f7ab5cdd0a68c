"""Backbones: every timm model, plus every entry of the ``splitnet.backbones`` group."""

from __future__ import annotations

import difflib

from torch import nn

from ._registries import BACKBONES, instantiate
from ._registry import UnknownEntryError


def list_backbones(pattern: str = "*", exclude: str | list[str] = ()) -> list[str]:
    """Names registered in the ``splitnet.backbones`` group, naturally sorted. Imports nothing.

    timm's own models are not listed here (there are more than a thousand); list them with
    ``timm.list_models(pattern)``. :func:`create_backbone` accepts both.

    Example:
        >>> import splitnet
        >>> splitnet.list_backbones("cifar_resnet1*")
        ['cifar_resnet110', 'cifar_resnet1202']
    """
    return BACKBONES.names(pattern, exclude)


def create_backbone(name: str, **kwargs) -> nn.Module:
    """Build a backbone by name: a ``splitnet.backbones`` entry first, else a timm model.

    Args:
        name: an entry-point name (``cifar_resnet110``) or any ``timm.list_models()`` name.
        **kwargs: passed to the factory (``num_classes=10``, ``pretrained=True``, ...).

    Returns:
        The model, an ``nn.Module``.

    Raises:
        UnknownEntryError: neither the group nor timm knows ``name``; the message lists the
            closest names of both.
        PluginLoadError: the plugin that declares ``name`` fails to import.

    Example:
        >>> import splitnet
        >>> model = splitnet.create_backbone("cifar_resnet20", num_classes=10)
        >>> sum(p.numel() for p in model.parameters())
        272474
    """
    if name in BACKBONES:
        return instantiate(BACKBONES, name, **kwargs)
    import timm

    if timm.is_model(name):
        return timm.create_model(name, **kwargs)
    try:
        BACKBONES.entry(name)
    except UnknownEntryError as exc:
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.7)
        raise UnknownEntryError(
            str(exc) + (f" Closest timm models: {', '.join(close)}." if close else "")
        ) from None
    raise AssertionError("unreachable: the name is neither registered nor unknown")


def backbone_provenance(name: str) -> dict[str, str]:
    """Which distribution and version supply backbone ``name`` (recorded with every run)."""
    if name in BACKBONES:
        return BACKBONES.entry(name).as_dict()
    import timm

    return {
        "group": "timm",
        "name": name,
        "value": f"timm.create_model({name!r})",
        "distribution": "timm",
        "version": timm.__version__,
    }
