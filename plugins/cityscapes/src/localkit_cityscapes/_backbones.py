"""Dilated ResNets for DeepLab-V3, as ``splitnet.backbones`` entries.

Each returns timm's ResNet without pooling or classifier, with the last stages dilated
instead of strided, so that it maps ``(B, 3, H, W)`` to feature maps at output stride 8
(``(B, C, H/8, W/8)``, the paper's "-d8" setting) or 16. timm dilates a stage's first block
at the previous stage's rate, like mmsegmentation's ``contract_dilation=True``.

``deeplab_resnet50`` and ``deeplab_resnet101`` are timm's ``resnet50c``/``resnet101c``: the
three-3x3-convolution stem of mmsegmentation's ResNetV1c, which the paper used.
``deeplab_resnet18`` has the plain 7x7 stem; it is the small backbone for quick runs.
"""

from __future__ import annotations

from torch import nn

OUTPUT_STRIDES = (8, 16)

# The paper's InfoPro* (K = 2) cut for DeepLab-V3 on ResNet-101: the reference code's first
# module runs the stem, layer1, layer2 and blocks 0..12 of layer3's 23 blocks
# (``forward_train1``), the second module the rest (``forward_train2``).
RESNET101_NAMED_PLANS = {"infopro*": {2: ["layer3.12"]}}


def dilated_resnet(
    name: str, *, output_stride: int = 8, pretrained: bool = False, num_classes=None, **timm_options
) -> nn.Module:
    """A timm ResNet as a dilated feature extractor: ``(B, 3, H, W) -> (B, C, H/os, W/os)``.

    Args:
        name: a timm ResNet name (``"resnet101c"``, ``"resnet50"``, ``"resnet18"``, ...).
        output_stride: 8 or 16.
        pretrained: load timm's ImageNet weights (needs them downloaded or cached).
        num_classes: must be left out (or 0): the features feed a segmentation head.
        **timm_options: passed to ``timm.create_model`` (``drop_path_rate=0.1``, ...).

    Returns:
        The model; it carries its ``output_stride``.

    Raises:
        ValueError: an output stride other than 8 or 16, or a classifier asked for.

    Example:
        >>> import torch
        >>> model = dilated_resnet("resnet18", output_stride=16)
        >>> model(torch.randn(1, 3, 64, 128)).shape
        torch.Size([1, 512, 4, 8])
    """
    import timm

    output_stride = int(output_stride)
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"{name}: output_stride must be 8 or 16 for DeepLab-V3, got {output_stride}")
    if num_classes:
        raise ValueError(
            f"dilated {name} returns feature maps, not {num_classes} class scores: put a segmentation head "
            "on it (--head deeplabv3) instead of asking the backbone for num_classes"
        )
    model = timm.create_model(
        name,
        pretrained=bool(pretrained),
        num_classes=0,
        global_pool="",
        output_stride=output_stride,
        **timm_options,
    )
    model.output_stride = output_stride
    return model


def _deeplab(name: str, output_stride, pretrained, num_classes, timm_options: dict) -> nn.Module:
    """:func:`dilated_resnet` with the timm keywords that were given (``None`` is "not given")."""
    return dilated_resnet(
        name,
        output_stride=output_stride,
        pretrained=pretrained,
        num_classes=num_classes,
        **{k: v for k, v in timm_options.items() if v is not None},
    )


def deeplab_resnet18(
    *,
    output_stride: int = 8,
    pretrained: bool = False,
    num_classes: int | None = None,
    drop_path_rate: float | None = None,
    drop_rate: float | None = None,
    zero_init_last: bool | None = None,
) -> nn.Module:
    """Dilated timm ``resnet18`` (7x7 stem), the small backbone for quick runs (``splitnet.backbones``).

    Options: ``output_stride`` (8 or 16), ``pretrained``, and timm's ``drop_path_rate``,
    ``drop_rate``, ``zero_init_last`` (timm's defaults when not given). See :func:`dilated_resnet`.
    """
    timm_options = {
        "drop_path_rate": drop_path_rate,
        "drop_rate": drop_rate,
        "zero_init_last": zero_init_last,
    }
    return _deeplab("resnet18", output_stride, pretrained, num_classes, timm_options)


def deeplab_resnet50(
    *,
    output_stride: int = 8,
    pretrained: bool = False,
    num_classes: int | None = None,
    drop_path_rate: float | None = None,
    drop_rate: float | None = None,
    zero_init_last: bool | None = None,
) -> nn.Module:
    """Dilated timm ``resnet50c`` (ResNetV1c stem) for DeepLab-V3 (``splitnet.backbones``).

    Options as for :func:`deeplab_resnet18`. See :func:`dilated_resnet`.
    """
    timm_options = {
        "drop_path_rate": drop_path_rate,
        "drop_rate": drop_rate,
        "zero_init_last": zero_init_last,
    }
    return _deeplab("resnet50c", output_stride, pretrained, num_classes, timm_options)


def deeplab_resnet101(
    *,
    output_stride: int = 8,
    pretrained: bool = False,
    num_classes: int | None = None,
    drop_path_rate: float | None = None,
    drop_rate: float | None = None,
    zero_init_last: bool | None = None,
) -> nn.Module:
    """Dilated timm ``resnet101c`` (ResNetV1c stem), the paper's DeepLab-V3 backbone (``splitnet.backbones``).

    It carries ``named_plans = {"infopro*": {2: ["layer3.12"]}}``, the paper's K = 2 cut.
    Options as for :func:`deeplab_resnet18`. See :func:`dilated_resnet`.

    Example:
        >>> deeplab_resnet101().named_plans
        {'infopro*': {2: ['layer3.12']}}
    """
    timm_options = {
        "drop_path_rate": drop_path_rate,
        "drop_rate": drop_rate,
        "zero_init_last": zero_init_last,
    }
    model = _deeplab("resnet101c", output_stride, pretrained, num_classes, timm_options)
    model.named_plans = {
        plan: {k: list(c) for k, c in cuts.items()} for plan, cuts in RESNET101_NAMED_PLANS.items()
    }
    return model
