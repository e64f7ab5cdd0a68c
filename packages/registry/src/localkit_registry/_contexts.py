"""The frozen contexts that consumers hand to factories, next to the user's options.

``splitnet.objectives`` factories are called ``factory(context: CutContext, **options)``
once per cut, ``splitnet.heads`` factories ``factory(context: HeadContext, **options)``.
They live here, not in splitnet, so that a plugin (infoloss, or yours) can name and build
them without importing splitnet. A later release may add fields; a factory reads the ones
it needs and keeps working.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

LAYOUTS = ("NCHW", "NHWC", "NLC", "NC", "NCTHW", "NTHWC")
TASKS = ("classification", "segmentation")


def _dims(owner: str, field: str, value: Any, optional: bool = False) -> tuple[int, ...] | None:
    if value is None and optional:
        return None
    try:
        dims = tuple(operator.index(d) for d in value)
    except TypeError:
        raise TypeError(f"{owner}: {field} must be a sequence of ints, got {value!r}") from None
    if not dims or min(dims) < 1:
        raise ValueError(f"{owner}: {field} must hold positive sizes, got {dims}")
    return dims


def _floats(owner: str, field: str, value: Sequence[float] | None) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: {field} must be a sequence of numbers, got {value!r}") from None
    if not numbers:
        raise ValueError(f"{owner}: {field} is empty; pass None for no normalisation")
    return numbers


def _int(owner: str, field: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{owner}: {field} must be an int, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{owner}: {field} must be an int, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"{owner}: {field} must be at least {minimum}, got {number}")
    return number


def _name(owner: str, field: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise TypeError(f"{owner}: {field} must be a non-empty string or None, got {value!r}")
    return value


def _choice(owner: str, field: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{owner}: unknown {field} {value!r}; expected one of {', '.join(choices)}")
    return value


@dataclass(frozen=True, kw_only=True)
class CutContext:
    """What splitnet tells a ``splitnet.objectives`` factory about one cut.

    Sequences are stored as tuples; every field is checked when the context is built.

    Attributes:
        feature_shape: one sample's features at the cut, batch dimension removed.
        num_classes: classes of the task.
        layout: ``"NCHW"``, ``"NHWC"``, ``"NLC"`` (tokens), ``"NC"`` (vectors), ``"NCTHW"``
            or ``"NTHWC"`` (video).
        token_grid: ``(h, w)`` when ``layout == "NLC"`` and the tokens form a grid, else ``None``.
        num_prefix_tokens: class/register tokens before the grid tokens (``NLC`` only).
        input_shape: one input sample, e.g. ``(3, 32, 32)``; ``None`` when unknown.
        input_mean: per-channel normalisation applied to the inputs, or ``None`` when the
            inputs are in ``[0, 1]``.
        input_std: likewise, together with ``input_mean``.
        task: ``"classification"`` (targets ``(B,)``) or ``"segmentation"`` (targets
            ``(B, H, W)``, 255 ignored).
        index: 0-based index of this cut, ``0 .. num_cuts - 1``.
        num_cuts: number of cuts (``K - 1``).
        backbone: the name the model was created under (a ``splitnet.backbones`` entry
            such as ``"cifar_resnet110"``, or a timm model name), or ``None`` when unknown.
        dataset: the ``splitnet.datasets`` name of the training data (``"cifar10"``), or
            ``None`` when unknown.
        named_plan: when the cuts are one of the model's hand-picked plans (its
            ``named_plans``, e.g. ``"infopro"`` or ``"infopro*"`` on the CIFAR ResNets), that
            plan's name; ``None`` for any other cuts, and while cuts are still being costed.

    ``backbone``, ``dataset`` and ``named_plan`` let an objective pick defaults tuned for
    that network, data and split (InfoPro's loss weights); splitnet's trainer and command
    line fill them.

    Raises:
        TypeError: a field of the wrong type (a float where an int belongs, ...).
        ValueError: a value out of range (an index outside ``0 .. num_cuts - 1``, an
            unknown layout or task, a non-positive size).

    Example:
        >>> context = CutContext(feature_shape=[16, 32, 32], num_classes=10, input_shape=(3, 32, 32))
        >>> context.feature_shape, context.layout, context.index, context.num_cuts
        ((16, 32, 32), 'NCHW', 0, 1)
    """

    feature_shape: tuple[int, ...]
    num_classes: int
    layout: str = "NCHW"
    token_grid: tuple[int, ...] | None = None
    num_prefix_tokens: int = 0
    input_shape: tuple[int, ...] | None = None
    input_mean: tuple[float, ...] | None = None
    input_std: tuple[float, ...] | None = None
    task: str = "classification"
    index: int = 0
    num_cuts: int = 1
    backbone: str | None = None
    dataset: str | None = None
    named_plan: str | None = None

    def __post_init__(self) -> None:
        owner = "CutContext"
        fields = {
            "feature_shape": _dims(owner, "feature_shape", self.feature_shape),
            "num_classes": _int(owner, "num_classes", self.num_classes, 1),
            "layout": _choice(owner, "layout", self.layout, LAYOUTS),
            "token_grid": _dims(owner, "token_grid", self.token_grid, optional=True),
            "num_prefix_tokens": _int(owner, "num_prefix_tokens", self.num_prefix_tokens, 0),
            "input_shape": _dims(owner, "input_shape", self.input_shape, optional=True),
            "input_mean": _floats(owner, "input_mean", self.input_mean),
            "input_std": _floats(owner, "input_std", self.input_std),
            "task": _choice(owner, "task", self.task, TASKS),
            "index": _int(owner, "index", self.index, 0),
            "num_cuts": _int(owner, "num_cuts", self.num_cuts, 1),
            "backbone": _name(owner, "backbone", self.backbone),
            "dataset": _name(owner, "dataset", self.dataset),
            "named_plan": _name(owner, "named_plan", self.named_plan),
        }
        if (fields["input_mean"] is None) != (fields["input_std"] is None):
            raise ValueError(f"{owner}: give both input_mean and input_std, or neither")
        if fields["index"] >= fields["num_cuts"]:
            raise ValueError(
                f"{owner}: the cut index must be in 0 .. num_cuts - 1, got index={fields['index']} "
                f"with num_cuts={fields['num_cuts']}"
            )
        for name, value in fields.items():
            object.__setattr__(self, name, value)


@dataclass(frozen=True, kw_only=True)
class HeadContext:
    """What splitnet tells a ``splitnet.heads`` factory about the features the head receives.

    Attributes:
        feature_shape: one sample's features from the backbone, batch dimension removed.
        num_classes: classes the head predicts.
        layout: the features' layout, as in :class:`CutContext`.
        input_shape: one input sample of the network, e.g. ``(3, 512, 1024)``; with
            ``feature_shape`` it gives the output stride.
        task: ``"classification"`` (logits ``(B, num_classes)``) or ``"segmentation"``
            (logits ``(B, num_classes, H, W)`` at input resolution).

    Raises:
        TypeError, ValueError: as for :class:`CutContext`.

    Example:
        >>> HeadContext(feature_shape=(512, 8, 16), num_classes=19, input_shape=(3, 64, 128),
        ...     task="segmentation").layout
        'NCHW'
    """

    feature_shape: tuple[int, ...]
    num_classes: int
    layout: str = "NCHW"
    input_shape: tuple[int, ...] | None = None
    task: str = "classification"

    def __post_init__(self) -> None:
        owner = "HeadContext"
        fields = {
            "feature_shape": _dims(owner, "feature_shape", self.feature_shape),
            "num_classes": _int(owner, "num_classes", self.num_classes, 1),
            "layout": _choice(owner, "layout", self.layout, LAYOUTS),
            "input_shape": _dims(owner, "input_shape", self.input_shape, optional=True),
            "task": _choice(owner, "task", self.task, TASKS),
        }
        for name, value in fields.items():
            object.__setattr__(self, name, value)
