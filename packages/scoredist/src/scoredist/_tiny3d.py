"""A small 3D CNN video backbone that needs no download and trains on a CPU in minutes."""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int, pool: tuple[int, int, int] | None) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv3d(cin, cout, kernel_size=3, padding=1, bias=False),
        nn.GroupNorm(min(8, cout), cout),
        nn.ReLU(inplace=True),
    ]
    if pool is not None:
        layers.append(nn.MaxPool3d(pool))
    return layers


class _Standardize(nn.Module):
    """Per-feature standardisation with statistics fixed by the first batch of two or more
    clips it sees (a data-dependent initialisation): no train/eval mismatch afterwards, and
    a clip's features never depend on the other clips of its batch."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("scale", torch.ones(num_features))
        self.register_buffer("initialised", torch.tensor(False))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not self.initialised and features.shape[0] > 1:
            with torch.no_grad():
                self.mean.copy_(features.mean(dim=0))
                self.scale.copy_(features.std(dim=0).clamp_min(self.eps))
                self.initialised.fill_(True)
        return (features - self.mean) / self.scale


class Tiny3D(nn.Module):
    """Three 3D convolutions (GroupNorm, ReLU, pooling), a global average, a standardisation.

    GroupNorm inside: the paper's batches are 4 clips. The pooled features are standardised
    with statistics of the first batch: averaged over space and time, a fresh network's
    features vary by about 3% from clip to clip, and the score head then sat on a plateau
    for 10 to 15 epochs (measured on the demo). BatchNorm there fixed the plateau but its
    running statistics lagged the training weights, and evaluation swung wildly.

    Args:
        width: channels of the first block; features have ``4 * width`` channels.
        in_channels: channels of the input clips.

    Shape:
        ``(B, in_channels, T, H, W)`` -> ``(B, 4 * width)``, for any ``T >= 2`` and
        ``H, W >= 4``; ``default_input_size`` is the demo's clip, ``(C, T, H, W)``, which
        also marks it as a video backbone (``python -m scoredist list``).
    """

    default_input_size = (3, 16, 32, 32)

    def __init__(self, width: int = 16, in_channels: int = 3):
        super().__init__()
        self.default_input_size = (in_channels, *self.default_input_size[1:])
        self.num_features = 4 * width
        self.body = nn.Sequential(
            *_block(in_channels, width, (1, 2, 2)),
            *_block(width, 2 * width, (2, 2, 2)),
            *_block(2 * width, 4 * width, None),
        )
        self.norm = _Standardize(self.num_features)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.norm(self.body(clips).mean(dim=(2, 3, 4)))


def tiny3d(*, width: int = 16, in_channels: int = 3) -> Tiny3D:
    """The ``tiny3d`` entry of ``splitnet.backbones``: options ``width`` and ``in_channels``."""
    return Tiny3D(width=width, in_channels=in_channels)
