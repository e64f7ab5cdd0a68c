"""localkit-cityscapes: Cityscapes semantic segmentation for splitnet.

A plugin distribution: splitnet finds its parts through entry points, never by import.

* ``splitnet.datasets``: ``cityscapes`` (official ``leftImg8bit``/``gtFine`` layout, 19 train
  ids, 255 ignored, random scale/crop/flip for training);
* :class:`ConfusionMatrix`: mIoU over the 19 classes as the benchmark defines it.
"""

from ._dataset import CityscapesDataset, cityscapes, expected_layout, find_pairs
from ._labels import CLASS_NAMES, ID_TO_TRAIN_ID, IGNORE_INDEX, NUM_CLASSES, to_train_ids
from ._metrics import ConfusionMatrix
from ._transforms import JointTransform

__version__ = "0.1.0"

__all__ = [
    "CLASS_NAMES",
    "ID_TO_TRAIN_ID",
    "IGNORE_INDEX",
    "NUM_CLASSES",
    "CityscapesDataset",
    "ConfusionMatrix",
    "JointTransform",
    "cityscapes",
    "expected_layout",
    "find_pairs",
    "to_train_ids",
]
