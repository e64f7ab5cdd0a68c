"""DeepLab-V3's head: atrous spatial pyramid pooling with image pooling, as a ``splitnet.heads`` entry.

The layers follow mmsegmentation's ``ASPPHead``, which the paper's Cityscapes experiment
used: an image-pooling branch (global average pool, 1x1 conv, BN, ReLU, broadcast back),
a 1x1 branch and three 3x3 branches with atrous rates (6, 12, 18) at output stride 16 or
(12, 24, 36) at output stride 8 (Chen et al., *Rethinking Atrous Convolution*, 2017),
each ``channels`` wide with BN and ReLU; their concatenation goes through a 3x3
"bottleneck" conv, BN, ReLU, ``Dropout2d`` and a 1x1 classifier. The logits are upsampled
bilinearly by the output stride, to the input's size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from splitnet import HeadContext

RATES_BY_OUTPUT_STRIDE = {16: (6, 12, 18), 8: (12, 24, 36)}


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    padding = 0 if kernel == 1 else dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ImagePooling(nn.Module):
    """Global average pooling, 1x1 conv, BN, ReLU, broadcast back to the feature size."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.project = _conv_bn_relu(in_channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.project(self.pool(x))
        return F.interpolate(pooled, size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: image pooling, a 1x1 branch, one 3x3 branch per rate.

    Args:
        in_channels: channels of the backbone's features.
        channels: width of every branch.
        rates: the atrous rates of the 3x3 branches.

    Example:
        >>> import torch
        >>> aspp = ASPP(64, 16, rates=(12, 24, 36))
        >>> aspp(torch.randn(2, 64, 8, 16)).shape
        torch.Size([2, 80, 8, 16])
    """

    def __init__(self, in_channels: int, channels: int, rates: tuple[int, ...]):
        super().__init__()
        self.rates = tuple(rates)
        self.image_pool = ImagePooling(in_channels, channels)
        self.branches = nn.ModuleList(
            [_conv_bn_relu(in_channels, channels, 1)]
            + [_conv_bn_relu(in_channels, channels, 3, rate) for rate in self.rates]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.image_pool(x)] + [branch(x) for branch in self.branches], dim=1)


class DeepLabV3Head(nn.Module):
    """ASPP, a 3x3 bottleneck, dropout, a 1x1 classifier, upsampling by the output stride.

    Maps backbone features ``(B, in_channels, h, w)`` to logits
    ``(B, num_classes, h * output_stride, w * output_stride)``: the input's size whenever
    its sides are multiples of the output stride (the evaluation in this package resizes
    to the label size in any case).

    Args:
        in_channels: channels of the backbone's features.
        num_classes: number of classes.
        output_stride: how much smaller the features are than the input (8 or 16 for
            dilated ResNets).
        channels: width of the ASPP branches and the bottleneck (mmsegmentation: 512).
        rates: atrous rates of the three 3x3 branches (default: by output stride,
            (12, 24, 36) at 8 and (6, 12, 18) at 16).
        dropout: ``Dropout2d`` probability before the classifier (mmsegmentation: 0.1).

    Raises:
        ValueError: no default rates for this output stride, or bad sizes.

    Example:
        >>> import torch
        >>> head = DeepLabV3Head(64, 19, output_stride=8, channels=16)
        >>> head(torch.randn(2, 64, 8, 16)).shape
        torch.Size([2, 19, 64, 128])
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        output_stride: int = 8,
        channels: int = 512,
        rates: tuple[int, ...] | None = None,
        dropout: float = 0.1,
    ):
        super().__init__()
        if rates is None:
            if output_stride not in RATES_BY_OUTPUT_STRIDE:
                raise ValueError(
                    f"deeplabv3: no default atrous rates for output stride {output_stride} (known: 8 -> "
                    "(12, 24, 36), 16 -> (6, 12, 18)); pass rates=a,b,c (--head-opt rates=a,b,c)"
                )
            rates = RATES_BY_OUTPUT_STRIDE[output_stride]
        if min(in_channels, num_classes, channels, output_stride) < 1 or not rates or min(rates) < 1:
            raise ValueError(
                f"deeplabv3: sizes must be positive, got in_channels={in_channels}, num_classes={num_classes}, "
                f"channels={channels}, output_stride={output_stride}, rates={rates}"
            )
        self.output_stride = int(output_stride)
        self.aspp = ASPP(in_channels, channels, tuple(int(r) for r in rates))
        self.bottleneck = _conv_bn_relu((len(self.aspp.rates) + 2) * channels, channels, 3)
        self.dropout = nn.Dropout2d(float(dropout))
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(self.dropout(self.bottleneck(self.aspp(features))))
        if self.output_stride == 1:
            return logits
        return F.interpolate(logits, scale_factor=self.output_stride, mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"output_stride={self.output_stride}, rates={self.aspp.rates}"


def _ints(value) -> tuple[int, ...]:
    if isinstance(value, str):
        value = value.replace(" ", "").split(",")
    if not isinstance(value, (tuple, list)):
        value = (value,)
    return tuple(int(v) for v in value)


def deeplabv3(
    context: HeadContext,
    *,
    channels: int = 512,
    rates: tuple[int, ...] | str | None = None,
    output_stride: int | None = None,
    dropout: float = 0.1,
) -> DeepLabV3Head:
    """Factory of the ``deeplabv3`` entry in ``splitnet.heads``.

    Args:
        context: what splitnet tells a head: the backbone's features (one sample's
            ``feature_shape``, ``(C, h, w)``, in layout ``"NCHW"``), ``num_classes``, the
            ``input_shape`` ``(3, H, W)`` (with ``feature_shape`` it gives the output
            stride) and the ``task``, which must be ``"segmentation"``.
        channels, rates, dropout: see :class:`DeepLabV3Head` (``--head-opt channels=256``).
        output_stride: overrides the stride read off ``input_shape`` and ``feature_shape``.

    Returns:
        A :class:`DeepLabV3Head`.

    Raises:
        ValueError: a classification task, features that are not maps, or an output stride
            that is not a whole number.

    Example:
        >>> from splitnet import HeadContext
        >>> context = HeadContext(feature_shape=(512, 8, 16), num_classes=19, input_shape=(3, 64, 128),
        ...     task="segmentation")
        >>> head = deeplabv3(context)
        >>> head.output_stride, head.aspp.rates
        (8, (12, 24, 36))
    """
    if context.task != "segmentation":
        raise ValueError(
            f"deeplabv3 is a segmentation head but the task is {context.task!r}; use a classification head "
            "(--head classifier) or a segmentation dataset"
        )
    in_shape, input_shape, layout = context.feature_shape, context.input_shape, context.layout
    if layout != "NCHW" or len(in_shape) != 3:
        raise ValueError(
            f"deeplabv3 needs feature maps (B, C, h, w) from the backbone, got one sample of shape {in_shape} "
            f"(layout {layout}); use a backbone without pooling, e.g. deeplab_resnet101 or a timm model "
            "created with num_classes=0, global_pool=''"
        )
    if output_stride is None:
        if input_shape is None:
            raise ValueError(
                "deeplabv3: without the input shape, pass output_stride= (--head-opt output_stride=8)"
            )
        strides = {input_shape[-2] / in_shape[-2], input_shape[-1] / in_shape[-1]}
        output_stride = round(max(strides))
        if output_stride < 1 or any(abs(s - output_stride) > 0.5 for s in strides):
            raise ValueError(
                f"deeplabv3: cannot read an output stride off inputs {input_shape} and features {in_shape}; "
                "pass output_stride= (--head-opt output_stride=8)"
            )
    return DeepLabV3Head(
        int(in_shape[0]),
        context.num_classes,
        output_stride=int(output_stride),
        channels=int(channels),
        rates=None if rates is None else _ints(rates),
        dropout=float(dropout),
    )
