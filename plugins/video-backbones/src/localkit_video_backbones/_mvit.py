"""torchvision's MViT with the token grid of every block fixed, so it can be cut between blocks.

torchvision's ``MViT.forward`` passes each block the tokens *and* their ``(T, H, W)`` grid, and
every block reads the next grid off its pooled tensor's shape. To torch.fx that grid is a value
computed from the input, so two values cross every block boundary and splitnet finds no cut
point between the first and the last block. The grid is fixed by the model's input size
(MViT's positional encoding only accepts one size), so it is computed here once, from the
pooling layers, and passed to each block as a constant: the computation is unchanged and every
block boundary becomes a cut point.

The positional encoding and the blocks update tensors in place (``add_``, ``_add_shortcut``)
and discard the result, which a graph cut into pieces can lose; they run opaque to torch.fx
(:func:`positions` and :func:`block` are recorded as single calls), so the cut points are
named ``positions``, ``block``, ``block_1``, ... ``block_15``.
"""

from __future__ import annotations

import torch
from torch import nn


def _pooled_size(size: int, layer: nn.Module, dim: int) -> int:
    """Output length of a convolution or pooling layer along ``dim`` (floor mode)."""

    def at(value) -> int:
        return value[dim] if isinstance(value, (tuple, list)) else value

    kernel, stride, padding = at(layer.kernel_size), at(layer.stride), at(layer.padding)
    dilation = at(getattr(layer, "dilation", 1))
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def block_grids(mvit: nn.Module) -> tuple[tuple[int, int, int], ...]:
    """The ``(T, H, W)`` token grid each block of a torchvision ``MViT`` receives."""
    grid = (mvit.pos_encoding.temporal_size, *mvit.pos_encoding.spatial_size)
    grids = []
    for block in mvit.blocks:
        grids.append(tuple(grid))
        if block.attn.pool_q is not None:
            grid = tuple(_pooled_size(n, block.attn.pool_q.pool, i) for i, n in enumerate(grid))
    return tuple(grids)


def positions(encoding: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """The class token and positional embedding added to the patch tokens (one opaque call)."""
    return encoding(tokens)


def block(module: nn.Module, tokens: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """One multiscale block on tokens laid out on ``grid`` (one opaque call)."""
    return module(tokens, grid)[0]


torch.fx.wrap("positions")
torch.fx.wrap("block")


class StaticGridMViT(nn.Module):
    """A torchvision ``MViT`` whose blocks receive their token grids as constants.

    It takes over the MViT's modules (parameter names and outputs unchanged) and accepts only
    clips ``(B, 3, T, H, W)`` of the size the MViT was built for.

    Args:
        mvit: a ``torchvision.models.video.MViT``.

    Attributes:
        grids: the ``(T, H, W)`` grid of every block's input tokens.
        num_prefix_tokens: 1, the class token in front of the grid tokens.
    """

    num_prefix_tokens = 1

    def __init__(self, mvit: nn.Module):
        super().__init__()
        self.conv_proj = mvit.conv_proj
        self.pos_encoding = mvit.pos_encoding
        self.blocks = mvit.blocks
        self.norm = mvit.norm
        self.head = mvit.head
        self.grids = block_grids(mvit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = positions(self.pos_encoding, x)
        for module, grid in zip(self.blocks, self.grids):
            x = block(module, x, grid)
        return self.head(self.norm(x)[:, 0])
