"""torchvision's video models as ``splitnet.backbones`` entries, named ``video_<torchvision name>``.

The ``video_`` prefix keeps the names apart from timm's (splitnet resolves a registered name
before a timm one, so a bare ``s3d`` or ``mvit_v2_s`` would silently shadow any timm model of
that name). Every entry returns features ``(B, F)`` by default: the classifier is replaced by
``nn.Identity`` and, for S3D, the fixed 2x7x7 average pool by a global one, so any clip size
works. ``num_classes=N`` gives torchvision's model with an ``N``-way classifier instead.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

from torch import nn
from torchvision.models import get_model_weights
from torchvision.models import video as tv_video

from ._mvit import StaticGridMViT
from ._options import resolve_classes
from ._weights import load_weights, offline_error


@dataclass(frozen=True)
class _Arch:
    title: str
    classifier: str  # module path of the classifier: replaced by Identity for features
    num_features: int
    input_size: tuple[int, int, int, int]  # (C, T, H, W) of torchvision's Kinetics-400 weights


ARCHITECTURES = {
    "r3d_18": _Arch("ResNet3D-18 (Tran et al., 2018)", "fc", 512, (3, 16, 112, 112)),
    "mc3_18": _Arch("MC3-18, mixed 3D/2D convolutions (Tran et al., 2018)", "fc", 512, (3, 16, 112, 112)),
    "r2plus1d_18": _Arch("R(2+1)D-18 (Tran et al., 2018)", "fc", 512, (3, 16, 112, 112)),
    "s3d": _Arch("S3D (Xie et al., 2018)", "classifier", 1024, (3, 16, 224, 224)),
    "mvit_v1_b": _Arch("MViT-v1-B (Fan et al., 2021)", "head", 768, (3, 16, 224, 224)),
    "mvit_v2_s": _Arch("MViT-v2-S (Li et al., 2022)", "head", 768, (3, 16, 224, 224)),
    "swin3d_t": _Arch("Video Swin-T (Liu et al., 2022)", "head", 768, (3, 16, 224, 224)),
    "swin3d_s": _Arch("Video Swin-S (Liu et al., 2022)", "head", 768, (3, 16, 224, 224)),
    "swin3d_b": _Arch("Video Swin-B (Liu et al., 2022)", "head", 1024, (3, 16, 224, 224)),
}


def _expected(arch: str) -> str:
    url = get_model_weights(arch).DEFAULT.url
    return (
        f"a state dict of torchvision.models.video.{arch} saved with torch.save, such as "
        f"torchvision's Kinetics-400 file {PurePosixPath(url).name} (fetch it on a machine with "
        f"internet from {url})"
    )


def video_model(
    arch: str,
    *,
    features: bool | None = None,
    num_classes: int | None = None,
    weights: str | os.PathLike | None = None,
    pretrained: bool = False,
) -> nn.Module:
    """Build torchvision video model ``arch`` as a features backbone or a classifier.

    Args:
        arch: a torchvision name: ``r3d_18``, ``mc3_18``, ``r2plus1d_18``, ``s3d``,
            ``mvit_v1_b``, ``mvit_v2_s``, ``swin3d_t``, ``swin3d_s`` or ``swin3d_b``.
        features: return features ``(B, F)`` (the default unless ``num_classes`` is given).
        num_classes: return logits for this many classes; ``features=False`` alone gives the
            Kinetics-400 head.
        weights: path of a local state-dict file of that torchvision model. Its classifier is
            used only when its shape matches; otherwise the model keeps a fresh one
            (fine-tuning) or, for features, none.
        pretrained: accepted for compatibility; it requires ``weights`` (nothing is downloaded).

    Returns:
        The model, with ``num_features`` (``F``) and ``default_input_size`` (``(C, T, H, W)``)
        attributes. The MViTs are :class:`StaticGridMViT`: same parameters and outputs, but
        splittable between blocks; they accept only clips of ``default_input_size``.

    Raises:
        ValueError: an unknown ``arch``, or ``features=True`` together with ``num_classes``.
        WeightsError: ``pretrained=True`` without ``weights``, or a file that does not fit; the
            message lists the first missing and unexpected keys and the expected file.

    Example:
        >>> import torch
        >>> video_model("r3d_18")(torch.randn(2, 3, 8, 56, 56)).shape
        torch.Size([2, 512])
    """
    if arch not in ARCHITECTURES:
        raise ValueError(
            f"unknown torchvision video model {arch!r}; choose one of {', '.join(ARCHITECTURES)}"
        )
    spec = ARCHITECTURES[arch]
    name = f"video_{arch}"
    classes = resolve_classes(name, features, num_classes, default=400)
    model = getattr(tv_video, arch)(weights=None, num_classes=classes or 400)
    if isinstance(model, tv_video.MViT):
        model = StaticGridMViT(model)
    if classes is None:
        setattr(model, spec.classifier, nn.Identity())
        if arch == "s3d":
            model.avgpool = nn.AdaptiveAvgPool3d(1)
    model.num_features = spec.num_features
    model.default_input_size = spec.input_size
    if weights is not None:
        load_weights(model, weights, name=name, expected=_expected(arch), classifier=spec.classifier)
    elif pretrained:
        raise offline_error(name, _expected(arch))
    return model


def _entry(arch: str) -> Callable[..., nn.Module]:
    spec = ARCHITECTURES[arch]
    # a partial keeps video_model's keyword parameters as the entry's options
    factory = functools.partial(video_model, arch)
    factory.__name__ = factory.__qualname__ = f"video_{arch}"
    factory.__doc__ = (
        f"The ``video_{arch}`` entry of ``splitnet.backbones``: torchvision's {spec.title}, "
        f"{spec.num_features}-d features by default. Keywords as for :func:`video_model`."
    )
    return factory


video_r3d_18 = _entry("r3d_18")
video_mc3_18 = _entry("mc3_18")
video_r2plus1d_18 = _entry("r2plus1d_18")
video_s3d = _entry("s3d")
video_mvit_v1_b = _entry("mvit_v1_b")
video_mvit_v2_s = _entry("mvit_v2_s")
video_swin3d_t = _entry("swin3d_t")
video_swin3d_s = _entry("swin3d_s")
video_swin3d_b = _entry("swin3d_b")
