"""The Cityscapes label ids and the 19 classes that training and evaluation use.

``*_gtFine_labelIds.png`` stores one of the 34 label ids (0 .. 33) per pixel. The
benchmark trains and evaluates on 19 of them, renumbered 0 .. 18 ("train ids"); every
other id (void classes, and rare ones such as parking, rail track, guard rail, bridge,
tunnel, polegroup, caravan, trailer) is ignored (255). Source: ``labels.py`` of the
official cityscapesScripts (``name``, ``id``, ``trainId``).
"""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = 255

# (train id, name, label id), in train-id order
_EVALUATED = (
    (0, "road", 7),
    (1, "sidewalk", 8),
    (2, "building", 11),
    (3, "wall", 12),
    (4, "fence", 13),
    (5, "pole", 17),
    (6, "traffic light", 19),
    (7, "traffic sign", 20),
    (8, "vegetation", 21),
    (9, "terrain", 22),
    (10, "sky", 23),
    (11, "person", 24),
    (12, "rider", 25),
    (13, "car", 26),
    (14, "truck", 27),
    (15, "bus", 28),
    (16, "train", 31),
    (17, "motorcycle", 32),
    (18, "bicycle", 33),
)

CLASS_NAMES: tuple[str, ...] = tuple(name for _, name, _ in _EVALUATED)
NUM_CLASSES = len(CLASS_NAMES)


def _lookup_table() -> np.ndarray:
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for train_id, _, label_id in _EVALUATED:
        table[label_id] = train_id
    table.setflags(write=False)
    return table


ID_TO_TRAIN_ID: np.ndarray = _lookup_table()
"""``ID_TO_TRAIN_ID[label_id]`` is the train id (0 .. 18) or 255, for every uint8 value."""


def to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map a ``*_gtFine_labelIds.png`` array to train ids (0 .. 18, 255 ignored).

    Args:
        label_ids: integer array of Cityscapes label ids (any shape, values 0 .. 255).

    Returns:
        A uint8 array of the same shape.

    Raises:
        ValueError: values outside 0 .. 255 (not a label-id image).

    Example:
        >>> import numpy as np
        >>> to_train_ids(np.array([[7, 26], [0, 33]])).tolist()
        [[0, 13], [255, 18]]
    """
    label_ids = np.asarray(label_ids)
    if label_ids.dtype != np.uint8:
        if label_ids.size and (int(label_ids.min()) < 0 or int(label_ids.max()) > 255):
            raise ValueError(
                f"label ids must lie in 0..255 (a *_gtFine_labelIds.png image), got values from "
                f"{int(label_ids.min())} to {int(label_ids.max())}"
            )
        label_ids = label_ids.astype(np.uint8)
    return ID_TO_TRAIN_ID[label_ids]
