"""Feature layouts at a cut, and their conversion to one channels-first form."""

from __future__ import annotations

from collections.abc import Sequence

import torch

_RANKS = {"NCHW": 3, "NHWC": 3, "NLC": 2, "NC": 1, "NCTHW": 4, "NTHWC": 4}
LAYOUTS = tuple(_RANKS)


class FeatureLayout:
    """How the features of one cut are laid out, and how to view them channels first.

    Every layout is converted to ``(B, C, *spatial)``:

    * ``"NCHW"`` and ``"NHWC"`` become a 2-D grid ``(B, C, H, W)`` (kind ``"grid"``);
    * ``"NLC"`` tokens lose their ``num_prefix_tokens`` class/register tokens; with a
      ``token_grid`` ``(h, w)`` they become a grid ``(B, C, h, w)``, without one a
      ``(B, C, N, 1)`` column of tokens whose order carries no geometry (kind ``"tokens"``);
    * ``"NC"`` vectors become ``(B, C, 1, 1)`` (kind ``"vector"``);
    * ``"NCTHW"`` video features stay ``(B, C, T, H, W)``, and channels-last ``"NTHWC"`` ones
      (Swin3D) are permuted to it (kind ``"video"``).

    Args:
        feature_shape: one sample's feature shape, batch dimension removed.
        layout: one of ``"NCHW"``, ``"NHWC"``, ``"NLC"``, ``"NC"``, ``"NCTHW"``, ``"NTHWC"``.
        token_grid: ``(h, w)`` of the grid tokens (``"NLC"`` only), or ``None``.
        num_prefix_tokens: class/register tokens before the grid tokens (``"NLC"`` only).
        owner: who is asking, for error messages.

    Raises:
        ValueError: unknown layout, a shape of the wrong rank, or a token grid that does
            not match the number of tokens.
    """

    def __init__(
        self,
        feature_shape: Sequence[int],
        layout: str = "NCHW",
        token_grid: Sequence[int] | None = None,
        num_prefix_tokens: int = 0,
        owner: str = "infoloss",
    ):
        self.owner = owner
        self.shape = tuple(int(s) for s in feature_shape)
        self.layout = str(layout).upper()
        if self.layout not in LAYOUTS:
            raise ValueError(f"{owner}: unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
        if len(self.shape) != _RANKS[self.layout]:
            raise ValueError(
                f"{owner}: feature_shape {self.shape} has {len(self.shape)} dimensions, but layout "
                f"{self.layout} needs {_RANKS[self.layout]} (one sample, without the batch dimension)"
            )
        if any(s <= 0 for s in self.shape):
            raise ValueError(f"{owner}: feature_shape {self.shape} has an empty dimension")
        self.num_prefix_tokens = int(num_prefix_tokens or 0) if self.layout == "NLC" else 0
        self.token_grid = None
        if self.layout == "NCHW":
            self.kind, self.channels, self.spatial = "grid", self.shape[0], self.shape[1:]
        elif self.layout == "NHWC":
            self.kind, self.channels, self.spatial = "grid", self.shape[2], self.shape[:2]
        elif self.layout == "NC":
            self.kind, self.channels, self.spatial = "vector", self.shape[0], (1, 1)
        elif self.layout == "NCTHW":
            self.kind, self.channels, self.spatial = "video", self.shape[0], self.shape[1:]
        elif self.layout == "NTHWC":
            self.kind, self.channels, self.spatial = "video", self.shape[3], self.shape[:3]
        else:
            self._init_tokens(token_grid)

    def _init_tokens(self, token_grid: Sequence[int] | None) -> None:
        num_tokens, self.channels = self.shape
        grid_tokens = num_tokens - self.num_prefix_tokens
        if self.num_prefix_tokens < 0 or grid_tokens <= 0:
            raise ValueError(
                f"{self.owner}: {num_tokens} tokens cannot hold {self.num_prefix_tokens} prefix tokens "
                "and at least one patch token"
            )
        if token_grid is None:
            self.kind, self.spatial = "tokens", (grid_tokens, 1)
            return
        grid = tuple(int(g) for g in token_grid)
        if len(grid) != 2 or grid[0] * grid[1] != grid_tokens:
            raise ValueError(
                f"{self.owner}: token_grid {grid} does not match the {grid_tokens} patch tokens "
                f"({num_tokens} tokens minus {self.num_prefix_tokens} prefix tokens)"
            )
        self.kind, self.spatial, self.token_grid = "grid", grid, grid

    @property
    def spatial_dims(self) -> int:
        """2 for images, tokens and vectors; 3 for video."""
        return len(self.spatial)

    @property
    def has_geometry(self) -> bool:
        """Whether neighbouring positions are neighbours in the image (grids and video)."""
        return self.kind in ("grid", "video")

    def check(self, features: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``features`` is a batch of the shape this was built for."""
        if features.dim() != len(self.shape) + 1 or tuple(features.shape[1:]) != self.shape:
            raise ValueError(
                f"{self.owner}: was built for features of shape (B, {', '.join(map(str, self.shape))}) "
                f"in layout {self.layout}, but got {tuple(features.shape)}; build one objective per cut "
                "from the feature shape at that cut"
            )

    def channels_first(self, features: torch.Tensor) -> torch.Tensor:
        """View a checked batch as ``(B, C, *spatial)``."""
        self.check(features)
        batch = features.shape[0]
        if self.layout == "NHWC":
            return features.permute(0, 3, 1, 2)
        if self.layout == "NTHWC":
            return features.permute(0, 4, 1, 2, 3)
        if self.layout == "NC":
            return features.reshape(batch, self.channels, 1, 1)
        if self.layout == "NLC":
            tokens = features[:, self.num_prefix_tokens :, :].transpose(1, 2)
            return tokens.reshape(batch, self.channels, *self.spatial)
        return features

    def describe(self) -> str:
        """A short description for messages and ``repr``."""
        text = f"{self.layout} {self.shape}"
        if self.layout == "NLC":
            text += f", grid {self.token_grid}, {self.num_prefix_tokens} prefix tokens"
        return text
