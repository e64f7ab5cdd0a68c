"""torchvision's video models as ``splitnet.backbones`` entries, named ``video_<torchvision name>``.

The ``video_`` prefix keeps the names apart from timm's (splitnet resolves a registered name
before a timm one, so a bare ``s3d`` or ``mvit_v2_s`` would silently shadow any timm model of
that name). Every entry returns features ``(B, F)`` by default: the classifier is replaced by
``nn.Identity`` and, for S3D, the fixed 2x7x7 average pool by a global one, so any clip size
works. ``num_classes=N`` gives torchvision's model with an ``N``-way classifier instead.
``pretrained=True`` gets torchvision's Kinetics-400 weights through torchvision's weights API:
the same URLs, the same cache (``$TORCH_HOME/hub/checkpoints``) and the same hash check.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from torch import nn
from torchvision.models import WeightsEnum, get_model_weights
from torchvision.models import video as tv_video

from ._download import cache_path
from ._mvit import StaticGridMViT
from ._options import resolve_classes
from ._weights import WeightsError, load_state, load_weights


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
        f"torchvision's Kinetics-400 file {PurePosixPath(url).name} (pretrained=True downloads it "
        f"from {url})"
    )


def _published(name: str, arch: str, pretrained: bool | str | None, local: bool) -> WeightsEnum | None:
    """The torchvision weights that ``pretrained`` asks for, or ``None``."""
    if pretrained is None or pretrained is False:
        return None
    if local:
        if pretrained is True:  # with weights=PATH, pretrained=True loads that file, as it always did
            return None
        raise ValueError(
            f"{name}: pretrained={pretrained!r} downloads torchvision's file and weights= loads a local "
            "one; pass only one of them"
        )
    available = get_model_weights(arch)
    if pretrained is True:
        return available.DEFAULT
    if pretrained not in available.__members__:
        raise ValueError(
            f"{name}: unknown pretrained={pretrained!r}; pass True (torchvision's "
            f"{available.DEFAULT.name}) or one of {', '.join(w.name for w in available)}"
        )
    return available[pretrained]


def _torchvision_state(name: str, published: WeightsEnum) -> dict[str, Any]:
    """The state dict of torchvision's ``published`` weights, downloaded as torchvision does it."""
    path = cache_path(published.url)
    cached = path.is_file()
    try:
        return published.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # urllib, http.client, torch.hub's hash check and torch.load raise many types
        reason = f"{type(exc).__name__}: {exc}"
        if cached or path.is_file():
            raise WeightsError(
                f"{name}: cannot read the cached file {path} ({reason}); delete it to download "
                f"{published.url} again"
            ) from exc
        if isinstance(exc, RuntimeError):  # torch.hub's check of the hash prefix in the file name
            raise WeightsError(
                f"{name}: the file downloaded from {published.url} fails torchvision's hash check "
                f"({exc}); nothing was kept in the cache. Try again later, and report it if it persists."
            ) from exc
        raise WeightsError(
            f"{name}: cannot download {published.url} ({reason}). Without internet, fetch that file "
            f"elsewhere and put it at {path} (torch.hub's cache, under TORCH_HOME), or pass weights=PATH."
        ) from exc


def video_model(
    arch: str,
    *,
    features: bool | None = None,
    num_classes: int | None = None,
    weights: str | os.PathLike | None = None,
    pretrained: bool | str = False,
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
        pretrained: ``True`` loads torchvision's default Kinetics-400 weights
            (``get_model_weights(arch).DEFAULT``), downloaded through torchvision's weights API
            into ``$TORCH_HOME/hub/checkpoints`` and read from there offline; the name of another
            member (``"KINETICS400_IMAGENET22K_V1"`` for ``swin3d_b``) chooses it. With
            ``weights``, ``pretrained=True`` loads the local file instead.

    Returns:
        The model, with ``num_features`` (``F``) and ``default_input_size`` (``(C, T, H, W)``)
        attributes. The MViTs are :class:`StaticGridMViT`: same parameters and outputs, but
        splittable between blocks; they accept only clips of ``default_input_size``.

    Raises:
        ValueError: an unknown ``arch``; ``features=True`` together with ``num_classes``; an
            unknown ``pretrained`` name, or one together with ``weights``.
        WeightsError: a download that fails or fails torchvision's hash check (the message
            names the URL and the cache path to put the file at offline), or a file that does
            not fit; the message lists the first missing and unexpected keys and the expected
            file.

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
    published = _published(name, arch, pretrained, local=weights is not None)
    default_classes = 400 if published is None else len(published.meta["categories"])
    classes = resolve_classes(name, features, num_classes, default=default_classes)
    state = None if published is None else _torchvision_state(name, published)
    model = getattr(tv_video, arch)(weights=None, num_classes=classes or 400)
    if isinstance(model, tv_video.MViT):
        model = StaticGridMViT(model)
    if classes is None:
        setattr(model, spec.classifier, nn.Identity())
        if arch == "s3d":
            model.avgpool = nn.AdaptiveAvgPool3d(1)
    model.num_features = spec.num_features
    model.default_input_size = spec.input_size
    if state is not None:
        load_state(
            model,
            state,
            name=name,
            source=published.url,
            expected=_expected(arch),
            classifier=spec.classifier,
        )
    elif weights is not None:
        load_weights(model, weights, name=name, expected=_expected(arch), classifier=spec.classifier)
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
