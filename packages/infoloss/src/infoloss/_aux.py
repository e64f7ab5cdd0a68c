"""Auxiliary heads sized from the feature shape at a cut.

The InfoPro reference code (``networks/auxiliary_nets.py``, ``AuxClassifier``) sizes its
heads by channel count alone, for the 16, 32 and 64 channels of its CIFAR ResNets at any
resolution (32x32 images on CIFAR-10 and SVHN, 96x96 on STL-10). For image features with
those channel counts the heads here are the reference's:

* 16 channels: first convolution 16 -> 32 * widen, stride 2;
* 32 channels: 32 -> 64 * widen, stride 2;
* 64 channels: 64 -> 64 * widen, stride 1.

Any other channel count, and token columns, vectors and video, follow our extension of
that pattern, from the shape:

* stride: the first convolution has stride 2 while the spatial size (``min(H, W)``) is
  larger than 8, stride 1 otherwise (where the reference's CIFAR heads sit: 16@32x32 and
  32@16x16 with stride 2, 64@8x8 with stride 1);
* width: a stride-2 convolution doubles the channels and a stride-1 convolution keeps
  them, as the backbone does when it halves the resolution, times ``widen``.

Convolutions start as the reference initialises them (``networks/resnet.py``: weights
from ``normal(0, sqrt(2 / (k * k * out_channels)))``, batch-norm weights 1 and biases 0);
linear layers keep PyTorch's defaults, as there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._layout import FeatureLayout

AUX_CONFIGS = ("0c1f", "0c2f", "1c1f", "1c2f", "1c3f", "2c2f")
DGL_TYPES = ("mlp-sr", "mlp", "cnn")
# auxiliary_nets.py, AuxClassifier: channels -> (width before widen, stride of the first convolution)
REFERENCE_HEADS = {16: (32, 2), 32: (64, 2), 64: (64, 1)}


def reference_init(module: nn.Module) -> nn.Module:
    """Initialise ``module``'s convolutions and batch norms as the InfoPro reference code does.

    Convolution weights from ``normal(0, sqrt(2 / n))`` with ``n`` the kernel's spatial size
    times its output channels (``networks/resnet.py``, ``InfoProResNet.__init__``); their
    biases, and linear layers, keep PyTorch's defaults; batch-norm weights 1, biases 0.

    Returns:
        ``module``, initialised in place.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            n = math.prod(m.kernel_size) * m.out_channels
            with torch.no_grad():
                m.weight.normal_(0.0, math.sqrt(2.0 / n))
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module


def parse_aux_config(config: str) -> tuple[int, int]:
    """``"1c2f"`` -> ``(1, 2)``: the number of convolutions and of fully connected layers.

    Raises:
        ValueError: ``config`` is not one of :data:`AUX_CONFIGS`.
    """
    text = str(config).strip().lower()
    if text not in AUX_CONFIGS:
        raise ValueError(f"unknown auxiliary net config {config!r}; expected one of {', '.join(AUX_CONFIGS)}")
    match = re.fullmatch(r"(\d)c(\d)f", text)
    return int(match.group(1)), int(match.group(2))


def _conv(dims: int) -> type[nn.Module]:
    return nn.Conv3d if dims == 3 else nn.Conv2d


def _norm(dims: int) -> type[nn.Module]:
    return nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d


def _pool(dims: int) -> type[nn.Module]:
    return nn.AdaptiveAvgPool3d if dims == 3 else nn.AdaptiveAvgPool2d


def _mlp(in_features: int, hidden: int, out_features: int, layers: int) -> list[nn.Module]:
    modules: list[nn.Module] = []
    for _ in range(layers - 1):
        modules += [nn.Linear(in_features, hidden), nn.ReLU(inplace=True)]
        in_features = hidden
    return [*modules, nn.Linear(in_features, out_features)]


class AuxHead(nn.Module):
    """InfoPro's auxiliary classifier / projection head, built for one feature shape.

    ``"<n>c<m>f"`` is ``n`` convolutions (3x3, BN, ReLU; the first one's width and stride as
    described in the module docstring: the reference's for 16, 32 and 64 image channels)
    followed by global average pooling and ``m`` fully connected layers with
    ``int(hidden_dim * widen)`` hidden units, initialised as the reference initialises them
    (:func:`reference_init`). Token features without a grid and vectors have no spatial
    neighbourhood, so their convolutions are 1x1 (per token).

    Args:
        feature_shape: one sample's feature shape (no batch dimension).
        out_features: output size (``num_classes`` for cross-entropy, the embedding size
            for the contrastive loss).
        layout: ``"NCHW"``, ``"NHWC"``, ``"NLC"``, ``"NC"``, ``"NCTHW"`` or ``"NTHWC"``.
        token_grid: ``(h, w)`` for ``"NLC"`` tokens that form a grid.
        num_prefix_tokens: class/register tokens to drop (``"NLC"``).
        config: one of :data:`AUX_CONFIGS` (default ``"1c2f"``, the paper's).
        widen: width multiplier of the convolutions and hidden layers.
        hidden_dim: hidden units of the fully connected layers before ``widen`` (128).
        channels: width of the convolutions; overrides the doubling rule.

    Raises:
        ValueError: unknown config or layout, or a shape that does not fit the layout.

    Example:
        >>> import torch
        >>> head = AuxHead((32, 16, 16), 10, config="1c2f")
        >>> head(torch.randn(4, 32, 16, 16)).shape
        torch.Size([4, 10])
    """

    def __init__(
        self,
        feature_shape: Sequence[int],
        out_features: int,
        *,
        layout: str = "NCHW",
        token_grid: Sequence[int] | None = None,
        num_prefix_tokens: int = 0,
        config: str = "1c2f",
        widen: float = 1.0,
        hidden_dim: int = 128,
        channels: int | None = None,
    ):
        super().__init__()
        self.layout = FeatureLayout(feature_shape, layout, token_grid, num_prefix_tokens, owner="AuxHead")
        self.config = str(config).strip().lower()
        num_convs, num_fcs = parse_aux_config(config)
        dims = self.layout.spatial_dims
        in_channels = self.layout.channels
        geometric = self.layout.has_geometry
        kernel = 3 if geometric else 1
        if self.layout.kind == "grid" and in_channels in REFERENCE_HEADS:
            base, self.stride = REFERENCE_HEADS[in_channels]
        else:
            downsample = geometric and min(self.layout.spatial[-2:]) > 8
            self.stride = 2 if downsample else 1
            base = 2 * in_channels if downsample else in_channels
        self.width = channels or max(1, int(widen * base))
        first_stride = (1, 2, 2) if self.stride == 2 and dims == 3 else self.stride
        layers: list[nn.Module] = []
        for i in range(num_convs):
            stride = first_stride if i == 0 else 1
            layers += [
                _conv(dims)(in_channels, self.width, kernel, stride=stride, padding=kernel // 2, bias=False),
                _norm(dims)(self.width),
                nn.ReLU(inplace=True),
            ]
            in_channels = self.width
        layers += [_pool(dims)(1), nn.Flatten()]
        layers += _mlp(in_channels, max(1, int(hidden_dim * widen)), int(out_features), num_fcs)
        self.net = reference_init(nn.Sequential(*layers))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``features`` in the layout given at construction -> ``(B, out_features)``."""
        return self.net(self.layout.channels_first(features))


class DenseAuxHead(nn.Module):
    """A per-pixel auxiliary classifier for segmentation, the dense analogue of :class:`AuxHead`.

    ``"<n>c<m>f"`` is ``n`` 3x3 convolutions (stride 1, BN, ReLU; width ``C * widen``;
    initialised by :func:`reference_init`) followed by ``m`` 1x1 convolutions (the fully
    connected layers applied at every pixel, PyTorch's default initialisation as the
    reference's linear layers), the last one producing ``num_classes`` logits, upsampled
    bilinearly to the target size. The whole head is our extension: the reference has no
    segmentation experiments on CIFAR-style heads.

    Args:
        feature_shape: one sample's feature shape (no batch dimension).
        num_classes: number of classes.
        layout: ``"NCHW"``, ``"NHWC"`` or ``"NLC"`` with ``token_grid``.
        token_grid: ``(h, w)`` of the patch tokens (``"NLC"``).
        num_prefix_tokens: class/register tokens to drop (``"NLC"``).
        config: one of :data:`AUX_CONFIGS`.
        widen: width multiplier.
        hidden_dim: hidden channels of the 1x1 layers before ``widen`` (128).
        channels: width of the 3x3 convolutions; overrides ``C * widen``.

    Raises:
        ValueError: the features have no 2-D grid (vectors, tokens without a grid, video).

    Example:
        >>> import torch
        >>> head = DenseAuxHead((64, 8, 8), 19, config="1c1f")
        >>> head(torch.randn(2, 64, 8, 8), size=(32, 32)).shape
        torch.Size([2, 19, 32, 32])
    """

    def __init__(
        self,
        feature_shape: Sequence[int],
        num_classes: int,
        *,
        layout: str = "NCHW",
        token_grid: Sequence[int] | None = None,
        num_prefix_tokens: int = 0,
        config: str = "1c2f",
        widen: float = 1.0,
        hidden_dim: int = 128,
        channels: int | None = None,
    ):
        super().__init__()
        self.layout = FeatureLayout(
            feature_shape, layout, token_grid, num_prefix_tokens, owner="DenseAuxHead"
        )
        if self.layout.kind != "grid":
            raise ValueError(
                f"DenseAuxHead: dense (segmentation) heads need a 2-D feature grid, got {self.layout.describe()}; "
                "give token_grid for NLC tokens"
            )
        self.config = str(config).strip().lower()
        num_convs, num_fcs = parse_aux_config(config)
        in_channels = self.layout.channels
        self.width = channels or max(1, int(widen * in_channels))
        hidden = max(1, int(hidden_dim * widen))
        layers: list[nn.Module] = []
        for _ in range(num_convs):
            layers += [
                nn.Conv2d(in_channels, self.width, 3, padding=1, bias=False),
                nn.BatchNorm2d(self.width),
                nn.ReLU(inplace=True),
            ]
            in_channels = self.width
        for layer in layers:
            reference_init(layer)
        for _ in range(num_fcs - 1):
            layers += [nn.Conv2d(in_channels, hidden, 1), nn.ReLU(inplace=True)]
            in_channels = hidden
        layers.append(nn.Conv2d(in_channels, int(num_classes), 1))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """``features`` -> logits ``(B, num_classes, *size)``."""
        logits = self.net(self.layout.channels_first(features))
        return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


class DGLHead(nn.Module):
    """The auxiliary classifier of Decoupled Greedy Learning (Belilovsky et al., ICML 2020).

    As in the paper's code (``auxillary_classifier2``), for ``aux_type``:

    * ``"mlp-sr"`` (the paper's default, "MLP-SR-aux"): average-pool the features to a
      quarter of their resolution, three 1x1 convolutions ``C -> C`` (BN, ReLU), average-pool
      to 2x2, then an MLP of three ``Linear(4C, 4C)``-BN-ReLU layers and a linear classifier;
    * ``"mlp"``: the same without the 1x1 convolutions;
    * ``"cnn"``: two 3x3 convolutions ``C -> C`` (BN, ReLU) at full resolution, average-pool
      to 2x2, BN and a linear classifier.

    Features smaller than 2x2 are pooled to their own size; tokens without a grid and
    vectors are averaged to one position first (their convolutions are 1x1).

    Args:
        feature_shape: one sample's feature shape (no batch dimension).
        num_classes: number of classes.
        layout: ``"NCHW"``, ``"NHWC"``, ``"NLC"`` or ``"NC"``.
        token_grid: ``(h, w)`` of the patch tokens (``"NLC"``).
        num_prefix_tokens: class/register tokens to drop (``"NLC"``).
        aux_type: one of :data:`DGL_TYPES`.

    Raises:
        ValueError: unknown ``aux_type``, or video features.

    Example:
        >>> import torch
        >>> head = DGLHead((128, 16, 16), 10)
        >>> head(torch.randn(4, 128, 16, 16)).shape
        torch.Size([4, 10])
    """

    def __init__(
        self,
        feature_shape: Sequence[int],
        num_classes: int,
        *,
        layout: str = "NCHW",
        token_grid: Sequence[int] | None = None,
        num_prefix_tokens: int = 0,
        aux_type: str = "mlp-sr",
    ):
        super().__init__()
        self.layout = FeatureLayout(feature_shape, layout, token_grid, num_prefix_tokens, owner="DGLHead")
        if self.layout.kind == "video":
            raise ValueError(f"DGLHead: video ({self.layout.layout}) features are not supported; use AuxHead")
        if aux_type not in DGL_TYPES:
            raise ValueError(
                f"DGLHead: unknown aux_type {aux_type!r}; expected one of {', '.join(DGL_TYPES)}"
            )
        self.aux_type = aux_type
        num_convs, mlp_layers = {"mlp-sr": (3, 3), "mlp": (0, 3), "cnn": (2, 0)}[aux_type]
        channels = self.layout.channels
        height, width = self.layout.spatial
        if not self.layout.has_geometry:
            reduced, kernel = (1, 1), 1
        elif aux_type == "cnn":
            reduced, kernel = (height, width), 3
        else:
            reduced, kernel = (math.ceil(height / 4), math.ceil(width / 4)), 1
        pooled = (min(2, reduced[0]), min(2, reduced[1]))
        layers: list[nn.Module] = []
        if reduced != (height, width):
            layers.append(nn.AdaptiveAvgPool2d(reduced))
        for _ in range(num_convs):
            layers += [
                nn.Conv2d(channels, channels, kernel, padding=kernel // 2, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            ]
        layers.append(nn.AdaptiveAvgPool2d(pooled))
        flat = channels * pooled[0] * pooled[1]
        if mlp_layers:
            layers.append(nn.Flatten())
            for _ in range(mlp_layers):
                layers += [nn.Linear(flat, flat), nn.BatchNorm1d(flat), nn.ReLU(inplace=True)]
        else:
            layers += [nn.BatchNorm2d(channels), nn.Flatten()]
        layers.append(nn.Linear(flat, int(num_classes)))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``features`` -> logits ``(B, num_classes)``."""
        return self.net(self.layout.channels_first(features))
