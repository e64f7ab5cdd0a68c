"""The ``vidio.datasets`` entry-point group: list, build, and record where each dataset came from."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import torch

from localkit_registry import Registry

from .._decoders import DECODERS

DATASETS = Registry(
    "vidio.datasets",
    owner="localkit-vidio",
    kind="dataset",
    hint="Built-in datasets are 'mtl-aqa', 'jigsaws', 'aqa-7' and 'csv'.",
    contract="factory(root, split, **options)",
)


def list_datasets(pattern: str | Iterable[str] = "*", exclude: str | Iterable[str] = ()) -> list[str]:
    """Names of the installed clip datasets, without importing plugins.

    Args:
        pattern: fnmatch pattern(s) to include.
        exclude: fnmatch pattern(s) to leave out.

    Returns:
        Naturally sorted names.

    Example:
        >>> "mtl-aqa" in vidio.list_datasets()
        True
    """
    return DATASETS.names(pattern, exclude)


def create_dataset(name: str, root: str | os.PathLike, split: str, **kw: Any) -> torch.utils.data.Dataset:
    """Build a clip dataset by name from the ``vidio.datasets`` entry-point group.

    Args:
        name: a name from :func:`list_datasets`, e.g. ``"mtl-aqa"``.
        root: the dataset folder (or, for ``"csv"``, the manifest file).
        split: ``"train"`` or ``"test"``.
        **kw: options of that dataset (``fold=`` for JIGSAWS, ``backend=``, ...).

    Returns:
        The dataset; items are dicts with ``video``, ``score``, ``id`` and, where the data
        has them, ``judge_scores``, ``difficulty`` and ``action``.

    Raises:
        UnknownEntryError: no dataset of that name is installed.
        OptionError: an option the dataset does not accept; the message names the accepted ones.
        DatasetError: files are missing or annotations are malformed.

    Example:
        >>> train = vidio.create_dataset("jigsaws", "data/JIGSAWS", "train", fold=0)  # doctest: +SKIP
    """
    return DATASETS.create(name, root, split, **kw)


def provenance() -> dict[str, dict[str, dict[str, str]]]:
    """Which distribution and version supplied each decoder and dataset used so far.

    Returns:
        ``{"vidio.decoders": {name: record}, "vidio.datasets": {name: record}}``, for run metadata.

    Example:
        >>> vidio.provenance()["vidio.datasets"]["csv"]["distribution"]  # doctest: +SKIP
        'localkit-vidio'
    """
    return {"vidio.decoders": DECODERS.provenance(), "vidio.datasets": DATASETS.provenance()}
