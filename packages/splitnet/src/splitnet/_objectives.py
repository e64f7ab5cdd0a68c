"""Local objectives: the loss each local module trains on, found in ``splitnet.objectives``.

The contract (see docs/plugins.md): an entry is a factory ``(context, **options)`` called
once per cut with a frozen :class:`~localkit_registry.CutContext` describing the cut and
the user's options as keywords (an option it does not accept is an ``OptionError``),
returning an ``nn.Module`` whose ``forward(features, inputs, targets)`` returns a scalar
loss. The module holds its auxiliary networks; they train together with the stage before
the cut.

splitnet ships ``greedy`` (the paper's greedy supervised learning: global average pooling,
one linear layer, cross-entropy), so local training works with splitnet alone; infoloss
adds InfoPro and richer baselines.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from localkit_registry import CutContext

from ._layout import GlobalPool
from ._registries import OBJECTIVES, instantiate

IGNORE_INDEX = 255


def list_objectives(pattern: str = "*", exclude: str | list[str] = ()) -> list[str]:
    """Names registered in the ``splitnet.objectives`` group. Imports nothing."""
    return OBJECTIVES.names(pattern, exclude)


def create_objective(name: str, context: CutContext, **options) -> nn.Module:
    """Build objective ``name`` for the cut ``context`` describes, with the user's ``options``.

    Args:
        name: a ``splitnet.objectives`` entry (``greedy``; ``infopro`` with localkit-infoloss).
        context: the cut (see docs/plugins.md).
        **options: the objective's own options (``lambda_recon="5,0"``); strings are fine.

    Returns:
        The objective, an ``nn.Module`` with ``forward(features, inputs, targets) -> loss``.

    Raises:
        UnknownEntryError: no installed distribution provides ``name``.
        OptionError: an option the objective does not accept; names the accepted ones.
        ContractError: the factory does not take the context, or returned something that is
            not an ``nn.Module``.

    Example:
        >>> import splitnet
        >>> context = splitnet.CutContext(feature_shape=(16, 32, 32), num_classes=10)
        >>> splitnet.create_objective("greedy", context).head[1]
        Linear(in_features=16, out_features=10, bias=True)
    """
    return instantiate(OBJECTIVES, name, context, **options)


def describe_objective(objective: nn.Module) -> str:
    """One line naming an objective and its settings (its class and ``extra_repr``).

    Example:
        >>> import splitnet
        >>> context = splitnet.CutContext(feature_shape=(16, 32, 32), num_classes=10)
        >>> describe_objective(splitnet.create_objective("greedy", context))
        'GreedyObjective(classification, 16 channels -> 10 classes)'
    """
    return f"{type(objective).__name__}({objective.extra_repr()})"


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
        self.channels = channels
        if task == "segmentation":
            if layout != "NCHW":
                raise ValueError(f"greedy segmentation objective needs NCHW features, got {layout}")
            self.head = nn.Conv2d(channels, num_classes, 1)
        else:
            self.head = nn.Sequential(GlobalPool(layout), nn.Linear(channels, num_classes))

    def extra_repr(self) -> str:
        return f"{self.task}, {self.channels} channels -> {self.num_classes} classes"

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


def greedy(context: CutContext) -> GreedyObjective:
    """Factory of the ``greedy`` objective (``splitnet.objectives`` contract); it has no options."""
    return GreedyObjective(
        channels_of(context.feature_shape, context.layout), context.num_classes, context.layout, context.task
    )
