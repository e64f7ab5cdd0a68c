"""Video backbones for localkit: I3D and torchvision's video models as ``splitnet.backbones``.

Every entry maps clips ``(B, C, T, H, W)`` to features ``(B, F)`` by default (what scoredist
needs), or to logits with ``num_classes=N``; loads published weights with ``pretrained=True``
(downloaded once into torch.hub's cache under ``TORCH_HOME``, checked, then read offline) or a
local state-dict file with ``weights=PATH``; and can be traced, planned and split by splitnet
for local training.

Example:
    >>> import torch
    >>> from localkit_video_backbones import i3d
    >>> i3d()(torch.randn(2, 3, 8, 64, 64)).shape
    torch.Size([2, 1024])
"""

from ._i3d import I3D, I3D_WEIGHTS, PublishedI3D, i3d
from ._mvit import StaticGridMViT
from ._torchvision import (
    ARCHITECTURES,
    video_mc3_18,
    video_model,
    video_mvit_v1_b,
    video_mvit_v2_s,
    video_r2plus1d_18,
    video_r3d_18,
    video_s3d,
    video_swin3d_b,
    video_swin3d_s,
    video_swin3d_t,
)
from ._weights import WeightsError

__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES",
    "I3D",
    "I3D_WEIGHTS",
    "PublishedI3D",
    "StaticGridMViT",
    "WeightsError",
    "i3d",
    "video_mc3_18",
    "video_model",
    "video_mvit_v1_b",
    "video_mvit_v2_s",
    "video_r2plus1d_18",
    "video_r3d_18",
    "video_s3d",
    "video_swin3d_b",
    "video_swin3d_s",
    "video_swin3d_t",
]
