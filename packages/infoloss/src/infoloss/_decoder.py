"""InfoPro's reconstruction decoder, sized from the feature and input shapes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._aux import reference_init
from ._layout import FeatureLayout

INTERPOLATE_MODES = ("bilinear", "nearest")


class ReconstructionDecoder(nn.Module):
    """Predicts the input image from the features at a cut (InfoPro's ``I(h, x)`` estimate).

    The features are resized to the input resolution (``interpolate``, bilinear with
    ``align_corners=True`` as in the reference code, or nearest), then
    ``conv3x3(C -> 12*widen) - BN - ReLU - conv3x3(-> input channels)`` gives one logit per
    input pixel; ``sigmoid`` of it is the predicted ``[0, 1]`` image (the reference's
    ``networks/auxiliary_nets.py``, ``Decoder``, whose convolutions keep their biases).
    Convolutions start as the reference initialises them (:func:`reference_init`). Video
    features (``NCTHW``, ``NTHWC``) use the 3-D versions (trilinear, 3x3x3): our extension.

    Wide features are projected before they are upsampled (our extension; the reference's
    features have at most 64 channels and never are): the first 3x3 convolution has
    ``9 * 12 * widen`` weights per input channel, so it only ever sees a projection of rank
    at most ``9 * 12 * widen`` (``27 * ...`` in 3-D) of the features. When ``C`` is larger,
    a bias-free 1x1 convolution to that many channels runs first; as it commutes with the
    interpolation, the decoder can still express every decoder of the reference design
    while upsampling far fewer channels (for ViT-B tokens, 108 instead of 768).

    Args:
        feature_shape: one sample's feature shape (no batch dimension).
        input_shape: one input sample's shape, ``(C, H, W)`` (or ``(C, T, H, W)`` for video).
        layout: ``"NCHW"``, ``"NHWC"``, ``"NLC"`` with ``token_grid``, ``"NCTHW"`` or ``"NTHWC"``.
        token_grid: ``(h, w)`` of the patch tokens (``"NLC"``).
        num_prefix_tokens: class/register tokens to drop (``"NLC"``).
        widen: width multiplier of the hidden layer (12 channels at 1).
        interpolate: ``"bilinear"`` or ``"nearest"``.

    Raises:
        ValueError: the features have no spatial layout (vectors, tokens without a grid),
            ``input_shape`` does not match it, or ``interpolate`` is unknown.

    Example:
        >>> import torch
        >>> decoder = ReconstructionDecoder((16, 32, 32), (3, 32, 32))
        >>> decoder(torch.randn(2, 16, 32, 32)).shape
        torch.Size([2, 3, 32, 32])
    """

    def __init__(
        self,
        feature_shape: Sequence[int],
        input_shape: Sequence[int],
        *,
        layout: str = "NCHW",
        token_grid: Sequence[int] | None = None,
        num_prefix_tokens: int = 0,
        widen: float = 1.0,
        interpolate: str = "bilinear",
    ):
        super().__init__()
        self.layout = FeatureLayout(
            feature_shape, layout, token_grid, num_prefix_tokens, owner="ReconstructionDecoder"
        )
        if not self.layout.has_geometry:
            raise ValueError(
                f"ReconstructionDecoder: reconstruction needs spatial features, got {self.layout.describe()}; "
                "give token_grid for NLC tokens, or set the reconstruction weight to 0"
            )
        dims = self.layout.spatial_dims
        self.input_shape = tuple(int(s) for s in input_shape)
        if len(self.input_shape) != dims + 1:
            raise ValueError(
                f"ReconstructionDecoder: input_shape {self.input_shape} does not match "
                f"{self.layout.layout} features; expected (C, {'T, ' if dims == 3 else ''}H, W)"
            )
        if interpolate not in INTERPOLATE_MODES:
            raise ValueError(
                f"ReconstructionDecoder: unknown interpolate {interpolate!r}; expected one of {INTERPOLATE_MODES}"
            )
        self.mode = ("trilinear" if dims == 3 else "bilinear") if interpolate == "bilinear" else "nearest"
        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        norm = nn.BatchNorm3d if dims == 3 else nn.BatchNorm2d
        hidden = max(1, int(12 * widen))
        rank = 3**dims * hidden
        channels = self.layout.channels
        if channels > rank:
            self.project = conv(channels, rank, 1, bias=False)
            channels = rank
        else:
            self.project = nn.Identity()
        self.body = nn.Sequential(
            conv(channels, hidden, 3, padding=1),
            norm(hidden),
            nn.ReLU(inplace=True),
            conv(hidden, self.input_shape[0], 3, padding=1),
        )
        reference_init(self)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``features`` -> image logits ``(B, *input_shape)``; ``sigmoid`` gives the image.

        Two memory savings of ours that leave the function as the reference defines it:
        features already at the input resolution are not interpolated (at equal size both
        modes are exactly the identity, and the copy would be saved for the backward pass:
        64 MiB per cut for ResNet-110's first stage at batch 1024); 2-D features that are
        upsampled are upsampled in channels-last memory format, so the first convolution
        reads its large input without a layout copy (on CPU, oneDNN otherwise reorders it:
        168 MiB of real peak at ResNet-110's 16x16 cut at batch 1024). Results equal the
        channels-first computation up to float rounding.
        """
        x = self.project(self.layout.channels_first(features))
        size = self.input_shape[1:]
        if tuple(x.shape[2:]) == size:
            return self.body(x)
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        align = True if self.mode != "nearest" else None
        return self.body(F.interpolate(x, size=size, mode=self.mode, align_corners=align))
