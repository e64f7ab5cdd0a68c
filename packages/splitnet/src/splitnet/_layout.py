"""What the features at a cut look like: channels first, channels last, tokens, vectors."""

from __future__ import annotations

import math

import torch
from torch import nn

LAYOUTS = ("NCHW", "NHWC", "NLC", "NC", "NCTHW", "NTHWC")


def infer_layout(feature_shape: tuple[int, ...], input_shape: tuple[int, ...]) -> str:
    """Guess the layout of one sample's features from their shape and the input's shape.

    Spatial dimensions keep the input's aspect ratio and never exceed its size; that tells
    ``(C, H, W)`` from ``(H, W, C)`` (and ``(C, T, H, W)`` from ``(T, H, W, C)`` for video).
    When both fit (a cube), channels first wins.

    Returns:
        One of ``NCHW``, ``NHWC``, ``NLC``, ``NC``, ``NCTHW``, ``NTHWC`` (or ``"unknown"``).
    """
    if len(feature_shape) == 1:
        return "NC"
    if len(feature_shape) == 2:
        return "NLC"
    if len(feature_shape) != len(input_shape) or len(feature_shape) not in (3, 4):
        return "unknown"
    in_h, in_w = input_shape[-2:]

    def spatial(h: int, w: int) -> bool:
        return h <= in_h and w <= in_w and math.isclose(h * in_w, w * in_h, rel_tol=0.25)

    first, last = ("NCHW", "NHWC") if len(feature_shape) == 3 else ("NCTHW", "NTHWC")
    if spatial(*feature_shape[-2:]):
        return first
    if spatial(*feature_shape[-3:-1]):
        return last
    return first


def token_grid(model: nn.Module, num_tokens: int) -> tuple[tuple[int, int] | None, int]:
    """The (h, w) grid of ``num_tokens`` tokens and the number of prefix (class) tokens.

    Uses timm's ``patch_embed.grid_size`` and ``num_prefix_tokens`` where the model has them,
    else a square grid when the token count (minus prefix tokens) is a perfect square.
    """
    prefix = int(getattr(model, "num_prefix_tokens", 0) or 0)
    grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    if grid is not None and math.prod(grid) + prefix == num_tokens:
        return (int(grid[0]), int(grid[1])), prefix
    side = math.isqrt(max(num_tokens - prefix, 0))
    if side > 0 and side * side == num_tokens - prefix:
        return (side, side), prefix
    return None, prefix


class GlobalPool(nn.Module):
    """Average everything but batch and channels, for any layout: ``(B, ...) -> (B, C)``."""

    def __init__(self, layout: str):
        super().__init__()
        dims = {"NCHW": (2, 3), "NHWC": (1, 2), "NLC": (1,), "NC": (), "NCTHW": (2, 3, 4), "NTHWC": (1, 2, 3)}
        if layout not in dims:
            raise ValueError(f"cannot pool features of layout {layout!r}; expected one of {LAYOUTS}")
        self.layout = layout
        self.dims = dims[layout]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=self.dims) if self.dims else x

    def extra_repr(self) -> str:
        return f"layout={self.layout!r}"
