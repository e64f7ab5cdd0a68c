"""A tiny Cityscapes tree in the exact official layout, written by the tests themselves.

Every image is 64x128 and made of 8x8 blocks. Each block carries one real Cityscapes
label id (evaluated classes and ignored ones alike) in ``*_gtFine_labelIds.png``, and the
image encodes that id in its red channel (``red = 7 * id``), its blue channel is 255 and
its green channel noise. Transforms can therefore be checked pixel by pixel: wherever the
mask is uniform around a pixel, the red channel must decode to the mask's class.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

HEIGHT, WIDTH, BLOCK = 64, 128, 8
RED_STEP = 7
# road, sidewalk, building, vegetation, sky, person, car, bicycle, and ignored ids:
# unlabeled, ego vehicle, out of roi, static, parking, guard rail, caravan
BLOCK_IDS = (7, 8, 11, 21, 23, 24, 26, 33, 0, 1, 3, 4, 9, 14, 29)
CITIES = {"train": ("aachen", "bochum"), "val": ("frankfurt",), "test": ("berlin",)}
PER_CITY = {"train": 2, "val": 2, "test": 2}


@pytest.fixture
def tree_tools():
    """This module: the tree's constants and writers."""
    return sys.modules[__name__]


def block_label_ids(rng: np.random.Generator, dummy: bool = False) -> np.ndarray:
    """A ``(HEIGHT, WIDTH)`` uint8 label-id map of 8x8 blocks (only ids 0..3 when ``dummy``)."""
    choices = np.array((0, 1, 2, 3) if dummy else BLOCK_IDS, dtype=np.uint8)
    blocks = rng.choice(choices, size=(HEIGHT // BLOCK, WIDTH // BLOCK))
    return np.kron(blocks, np.ones((BLOCK, BLOCK), dtype=np.uint8))


def image_for(label_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The RGB image of a label map: red encodes the id, blue is 255, green is noise."""
    rgb = np.empty((*label_ids.shape, 3), dtype=np.uint8)
    rgb[..., 0] = label_ids * RED_STEP
    rgb[..., 1] = rng.integers(0, 256, size=label_ids.shape)
    rgb[..., 2] = 255
    return rgb


def write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def write_tree(root: Path, seed: int = 0) -> Path:
    """Write train (4 images), val (2) and test (2, dummy labels) in the official layout."""
    rng = np.random.default_rng(seed)
    for split, cities in CITIES.items():
        for city in cities:
            for i in range(PER_CITY[split]):
                stem = f"{city}_{i:06d}_{19 + i:06d}"
                ids = block_label_ids(rng, dummy=split == "test")
                write_png(
                    root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", image_for(ids, rng)
                )
                write_png(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", ids)
                # the official release also ships these next to the label ids; they must be ignored
                write_png(root / "gtFine" / split / city / f"{stem}_gtFine_color.png", image_for(ids, rng))
    return root


@pytest.fixture(scope="session")
def tree(tmp_path_factory) -> Path:
    """The tiny tree (shared, read-only)."""
    return write_tree(tmp_path_factory.mktemp("cityscapes"))
