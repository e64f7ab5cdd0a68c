"""Label ids -> train ids, checked against the official table."""

from __future__ import annotations

import numpy as np
import pytest

from localkit_cityscapes import CLASS_NAMES, ID_TO_TRAIN_ID, IGNORE_INDEX, NUM_CLASSES, to_train_ids

# cityscapesScripts, cityscapesscripts/helpers/labels.py: (name, id, trainId) of every label
# with an id (license plate has id -1 and never appears in a label-id image)
OFFICIAL = [
    ("unlabeled", 0, 255),
    ("ego vehicle", 1, 255),
    ("rectification border", 2, 255),
    ("out of roi", 3, 255),
    ("static", 4, 255),
    ("dynamic", 5, 255),
    ("ground", 6, 255),
    ("road", 7, 0),
    ("sidewalk", 8, 1),
    ("parking", 9, 255),
    ("rail track", 10, 255),
    ("building", 11, 2),
    ("wall", 12, 3),
    ("fence", 13, 4),
    ("guard rail", 14, 255),
    ("bridge", 15, 255),
    ("tunnel", 16, 255),
    ("pole", 17, 5),
    ("polegroup", 18, 255),
    ("traffic light", 19, 6),
    ("traffic sign", 20, 7),
    ("vegetation", 21, 8),
    ("terrain", 22, 9),
    ("sky", 23, 10),
    ("person", 24, 11),
    ("rider", 25, 12),
    ("car", 26, 13),
    ("truck", 27, 14),
    ("bus", 28, 15),
    ("caravan", 29, 255),
    ("trailer", 30, 255),
    ("train", 31, 16),
    ("motorcycle", 32, 17),
    ("bicycle", 33, 18),
]


@pytest.mark.parametrize(("name", "label_id", "train_id"), OFFICIAL, ids=[row[0] for row in OFFICIAL])
def test_every_official_label_id_maps_to_its_train_id(name, label_id, train_id):
    assert ID_TO_TRAIN_ID[label_id] == train_id
    if train_id != 255:
        assert CLASS_NAMES[train_id] == name


def test_nineteen_classes_in_train_id_order_and_everything_else_ignored():
    assert NUM_CLASSES == 19 == len(CLASS_NAMES)
    assert list(CLASS_NAMES) == [name for name, _, t in sorted(OFFICIAL, key=lambda r: r[2]) if t != 255]
    assert set(ID_TO_TRAIN_ID[34:].tolist()) == {IGNORE_INDEX}
    assert ID_TO_TRAIN_ID.shape == (256,)


def test_to_train_ids_maps_whole_images_and_refuses_non_label_values():
    ids = np.array([[7, 8, 0], [33, 255, 24]], dtype=np.int32)
    assert to_train_ids(ids).tolist() == [[0, 1, 255], [18, 255, 11]]
    assert to_train_ids(ids).dtype == np.uint8
    with pytest.raises(ValueError, match="0..255"):
        to_train_ids(np.array([7, 300]))
    with pytest.raises(ValueError, match="0..255"):
        to_train_ids(np.array([-1, 7]))


def test_the_table_cannot_be_edited_by_accident():
    with pytest.raises(ValueError):
        ID_TO_TRAIN_ID[7] = 3
