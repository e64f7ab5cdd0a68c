"""The entry-point groups splitnet owns, and building a module from one of their entries."""

from __future__ import annotations

from torch import nn

from ._registry import Registry

BACKBONES = Registry(
    "splitnet.backbones",
    owner="splitnet",
    kind="backbone",
    hint="It is not a timm model either; list timm's with `timm.list_models('pattern*')`.",
)
OBJECTIVES = Registry(
    "splitnet.objectives",
    owner="splitnet",
    kind="objective",
    hint="Objectives from InfoPro come with `pip install infoloss`.",
)
HEADS = Registry("splitnet.heads", owner="splitnet", kind="head")
DATASETS = Registry("splitnet.datasets", owner="splitnet", kind="dataset")


def instantiate(registry: Registry, name: str, **kwargs) -> nn.Module:
    """Call entry ``name``'s factory and check that it built an ``nn.Module``.

    Raises:
        UnknownEntryError: no installed distribution provides ``name``.
        PluginLoadError: the providing distribution fails to import.
        TypeError: the factory returned something else; names the distribution to fix.
    """
    built = registry.load(name)(**kwargs)
    if not isinstance(built, nn.Module):
        entry = registry.entry(name)
        raise TypeError(
            f"{registry.kind} '{name}' from '{entry.distribution} {entry.version}' returned "
            f"{type(built).__name__}, not an nn.Module; fix its factory {entry.value!r}"
        )
    return built
