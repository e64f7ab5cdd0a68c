"""Local objectives: the loss each local module trains on, found in ``splitnet.objectives``.

The contract (see docs/plugins.md): an entry is a factory called once per cut with
keyword arguments describing the cut, plus the user's options, returning an ``nn.Module``
whose ``forward(features, inputs, targets)`` returns a scalar loss. The module holds its
auxiliary networks; they train together with the stage before the cut.

splitnet ships ``greedy`` (the paper's greedy supervised learning: global average pooling,
one linear layer, cross-entropy), so local training works with splitnet alone; infoloss
adds InfoPro and richer baselines.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._layout import GlobalPool
from ._registries import OBJECTIVES, instantiate

IGNORE_INDEX = 255


def list_objectives(pattern: str = "*", exclude: str | list[str] = ()) -> list[str]:
    """Names registered in the ``splitnet.objectives`` group. Imports nothing."""
    return OBJECTIVES.names(pattern, exclude)


def create_objective(name: str, **context) -> nn.Module:
    """Build objective ``name`` for one cut (``context`` as in docs/plugins.md, plus options).

    Raises:
        UnknownEntryError: no installed distribution provides ``name``.
        TypeError: the factory returned something that is not an ``nn.Module``.
    """
    return instantiate(OBJECTIVES, name, **context)


def check_targets(targets: torch.Tensor, num_classes: int, task: str, where: str) -> None:
    """Raise a clear error when class labels fall outside ``0 .. num_classes - 1``."""
    if targets.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"{where}: targets must be integer class labels, got dtype {targets.dtype}")
    valid = targets if task != "segmentation" else targets[targets != IGNORE_INDEX]
    if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= num_classes):
        raise ValueError(
            f"{where}: labels must lie in 0..{num_classes - 1}"
            + (f" (or {IGNORE_INDEX} = ignore)" if task == "segmentation" else "")
            + f", got min {int(valid.min())} and max {int(valid.max())}. "
            "Fix the dataset's labels or pass the right num_classes."
        )


def segmentation_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-pixel cross-entropy ignoring label 255; zero (not NaN) when every pixel is ignored."""
    if not bool((targets != IGNORE_INDEX).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX)


class GreedyObjective(nn.Module):
    """Greedy supervised learning: pool, linear classifier, cross-entropy.

    For segmentation a 1x1 convolution predicts per-pixel logits, upsampled to the targets.
    """

    def __init__(self, channels: int, num_classes: int, layout: str, task: str = "classification"):
        super().__init__()
        self.task = task
        self.num_classes = num_classes
        if task == "segmentation":
            if layout != "NCHW":
                raise ValueError(f"greedy segmentation objective needs NCHW features, got {layout}")
            self.head = nn.Conv2d(channels, num_classes, 1)
        else:
            self.head = nn.Sequential(GlobalPool(layout), nn.Linear(channels, num_classes))

    def forward(self, features: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self.head(features)
        targets = targets.long()
        if self.task == "segmentation":
            logits = F.interpolate(logits, size=targets.shape[-2:], mode="bilinear", align_corners=False)
            return segmentation_loss(logits, targets)
        return F.cross_entropy(logits, targets)


def channels_of(feature_shape: tuple[int, ...], layout: str) -> int:
    """The channel count of one sample's features in ``layout``."""
    if layout in ("NHWC", "NLC", "NTHWC"):
        return feature_shape[-1]
    if layout in ("NCHW", "NC", "NCTHW"):
        return feature_shape[0]
    raise ValueError(f"unknown feature layout {layout!r} for shape {feature_shape}")


def greedy(*, feature_shape, layout, num_classes, task="classification", **_) -> GreedyObjective:
    """Factory of the ``greedy`` objective (``splitnet.objectives`` contract)."""
    return GreedyObjective(channels_of(tuple(feature_shape), layout), num_classes, layout, task)
