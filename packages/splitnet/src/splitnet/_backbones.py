"""Backbones: every timm model, plus every entry of the ``splitnet.backbones`` group."""

from __future__ import annotations

import difflib
import inspect
import re
import sys

from torch import nn

from localkit_registry import UnknownEntryError, check_options

from ._registries import BACKBONES, instantiate

_TIMM_REFUSAL = re.compile(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'")


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
        **kwargs: the factory's options (``num_classes=10``, ``pretrained=True``, ...).

    Returns:
        The model, an ``nn.Module``.

    Raises:
        UnknownEntryError: neither the group nor timm knows ``name``; the message lists the
            closest names of both.
        PluginLoadError: the plugin that declares ``name`` fails to import.
        OptionError: an option the backbone (an entry, or timm's model class) does not
            accept; the message names the accepted ones.

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
        try:
            return timm.create_model(name, **kwargs)
        except TypeError as exc:
            _refused_by_timm(name, exc, kwargs)
            raise
    try:
        BACKBONES.entry(name)
    except UnknownEntryError as exc:
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.7)
        raise UnknownEntryError(
            str(exc) + (f" Closest timm models: {', '.join(close)}." if close else "")
        ) from None
    raise AssertionError("unreachable: the name is neither registered nor unknown")


def _keywords(function) -> set[str]:
    parameters = inspect.signature(function).parameters.values()
    return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _refused_by_timm(name: str, exc: TypeError, options: dict) -> None:
    """Raise an ``OptionError`` when timm refused one of the user's options with ``exc``.

    The accepted names are ``timm.create_model``'s own and those of the model class that
    refused the keyword (found in the module of the model's entry point).
    """
    import timm
    from timm.models import model_entrypoint

    refusal = _TIMM_REFUSAL.search(str(exc))
    if refusal is None or refusal.group(2) not in options:
        return
    model_class = getattr(sys.modules[model_entrypoint(name).__module__], refusal.group(1), None)
    accepted = _keywords(timm.create_model) - {"model_name"}
    if model_class is not None:
        accepted |= _keywords(model_class)
    check_options(f"timm model '{name}' ({refusal.group(1)})", [refusal.group(2)], sorted(accepted))


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
