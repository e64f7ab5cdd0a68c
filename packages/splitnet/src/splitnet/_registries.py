"""The entry-point groups splitnet owns, and building a module from one of their entries."""

from __future__ import annotations

from torch import nn

from localkit_registry import ContractError, Registry

BACKBONES = Registry(
    "splitnet.backbones",
    owner="localkit-splitnet",
    kind="backbone",
    hint="It is not a timm model either; list timm's with `timm.list_models('pattern*')`.",
)
OBJECTIVES = Registry(
    "splitnet.objectives",
    owner="localkit-splitnet",
    kind="objective",
    hint="Objectives from InfoPro come with `pip install localkit-infoloss`.",
    contract="factory(context: CutContext, **options)",
)
HEADS = Registry(
    "splitnet.heads",
    owner="localkit-splitnet",
    kind="head",
    contract="factory(context: HeadContext, **options)",
)
DATASETS = Registry(
    "splitnet.datasets", owner="localkit-splitnet", kind="dataset", contract="factory(root, split, **options)"
)


def instantiate(registry: Registry, name: str, *args, **options) -> nn.Module:
    """Call entry ``name``'s factory with strict ``options`` and check that it built an ``nn.Module``.

    Raises:
        UnknownEntryError: no installed distribution provides ``name``.
        PluginLoadError: the providing distribution fails to import.
        OptionError: an option the factory does not accept; names the accepted ones.
        ContractError: the factory cannot take the context, or returned something else than
            an ``nn.Module``; names the distribution to fix.
    """
    built = registry.create(name, *args, **options)
    if not isinstance(built, nn.Module):
        entry = registry.entry(name)
        raise ContractError(
            f"{registry.kind} '{name}' from '{entry.distribution} {entry.version}' returned "
            f"{type(built).__name__}, not an nn.Module; fix its factory {entry.value!r}"
        )
    return built
