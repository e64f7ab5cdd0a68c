"""The entry-point groups scoredist reads but does not own: backbones and datasets.

scoredist never imports splitnet or vidio; it reads their groups through the shared
registry (localkit-registry), so any distribution that declares an entry there works.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from localkit_registry import ContractError, Registry

BACKBONES = Registry(
    "splitnet.backbones",
    owner="localkit-splitnet",
    kind="backbone",
    hint="scoredist itself provides 'tiny3d'; video backbones such as I3D come from plugins.",
)
DATASETS = Registry(
    "vidio.datasets",
    owner="localkit-vidio",
    kind="dataset",
    hint="Datasets come from vidio (pip install localkit-vidio) or a plugin declaring a 'vidio.datasets' entry.",
    contract="factory(root, split, **options)",
)


def create_backbone(name: str, **kwargs: Any) -> nn.Module:
    """Build the video backbone ``name`` from the ``splitnet.backbones`` group.

    The entry is a factory ``(**kw) -> nn.Module`` whose module maps ``(B, C, T, H, W)``
    clips to ``(B, F)`` features.

    Raises:
        UnknownEntryError: no installed distribution provides ``name``.
        OptionError: an option the backbone does not accept; names the accepted ones.
        ContractError: the factory did not return an ``nn.Module``.

    Example:
        >>> net = create_backbone("tiny3d", width=8)
        >>> net(torch.zeros(2, 3, 8, 32, 32)).shape
        torch.Size([2, 32])
    """
    model = BACKBONES.create(name, **kwargs)
    if not isinstance(model, nn.Module):
        entry = BACKBONES.entry(name)
        raise ContractError(
            f"backbone '{name}' from '{entry.distribution} {entry.version}' returned "
            f"{type(model).__name__}, not a torch.nn.Module; a 'splitnet.backbones' entry must be "
            f"a factory (**kw) -> nn.Module"
        )
    return model


def create_dataset(name: str, root: str, split: str, **kwargs: Any) -> Any:
    """Build split ``split`` of the video dataset ``name`` from the ``vidio.datasets`` group.

    Items are dicts with ``video``, ``score`` and, where the dataset has them,
    ``judge_scores``, ``difficulty``, ``id`` and ``action`` (see docs/plugins.md).

    Raises:
        UnknownEntryError: no installed distribution provides ``name``.
        OptionError: an option the dataset does not accept; names the accepted ones.
        ValueError: the split is empty.
    """
    dataset = DATASETS.create(name, root, split, **kwargs)
    if len(dataset) == 0:
        raise ValueError(
            f"split '{split}' of dataset '{name}' at {root} is empty; check the root, the split "
            f"name and the dataset options ({kwargs or 'none given'})"
        )
    return dataset


def provenance() -> dict[str, dict[str, dict[str, str]]]:
    """Which distribution and version supplied each backbone and dataset loaded so far."""
    return {"backbones": BACKBONES.provenance(), "datasets": DATASETS.provenance()}
