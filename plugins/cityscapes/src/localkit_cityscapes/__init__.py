"""localkit-cityscapes: Cityscapes semantic segmentation with DeepLab-V3 for splitnet.

A plugin distribution: splitnet finds its parts through entry points, never by import.

* ``splitnet.datasets``: ``cityscapes`` (official ``leftImg8bit``/``gtFine`` layout, 19 train
  ids, 255 ignored, random scale/crop/flip for training);
* ``splitnet.heads``: ``deeplabv3`` (ASPP with image pooling, rates by output stride);
* ``splitnet.backbones``: ``deeplab_resnet18``, ``deeplab_resnet50``, ``deeplab_resnet101``
  (dilated timm ResNets, output stride 8 or 16; ResNet-101 carries the paper's K = 2 plan).

It also evaluates finished runs: mIoU over the 19 classes, single-scale or multi-scale
with flips (``python -m localkit_cityscapes evaluate --run RUN --multiscale --flip``).

Example:
    >>> import torch, splitnet
    >>> backbone = splitnet.create_backbone("deeplab_resnet18", output_stride=8)
    >>> model = splitnet.attach_head(backbone, "deeplabv3", torch.randn(2, 3, 64, 128), 19, "segmentation", channels=32)
    >>> model.eval()(torch.randn(1, 3, 64, 128)).shape
    torch.Size([1, 19, 64, 128])
"""

from ._backbones import (
    RESNET101_NAMED_PLANS,
    deeplab_resnet18,
    deeplab_resnet50,
    deeplab_resnet101,
    dilated_resnet,
)
from ._dataset import CityscapesDataset, cityscapes, expected_layout, find_pairs
from ._evaluate import MULTISCALE_SCALES, evaluate_run, evaluate_segmentation, predict
from ._head import ASPP, DeepLabV3Head, deeplabv3
from ._labels import CLASS_NAMES, ID_TO_TRAIN_ID, IGNORE_INDEX, NUM_CLASSES, to_train_ids
from ._metrics import ConfusionMatrix
from ._transforms import JointTransform

__version__ = "0.1.0"

__all__ = [
    "ASPP",
    "CLASS_NAMES",
    "ID_TO_TRAIN_ID",
    "IGNORE_INDEX",
    "MULTISCALE_SCALES",
    "NUM_CLASSES",
    "RESNET101_NAMED_PLANS",
    "CityscapesDataset",
    "ConfusionMatrix",
    "DeepLabV3Head",
    "JointTransform",
    "cityscapes",
    "deeplab_resnet18",
    "deeplab_resnet50",
    "deeplab_resnet101",
    "deeplabv3",
    "dilated_resnet",
    "evaluate_run",
    "evaluate_segmentation",
    "expected_layout",
    "find_pairs",
    "predict",
    "to_train_ids",
]
