"""Clip transforms: whole clips as one tensor, never a Python loop over frames.

:class:`ToFloatClip` turns decoded frames, uint8 ``(..., T, H, W, 3)``, into float
``(..., C, T, H, W)`` in ``[0, 1]``; the other transforms take and return that layout, with
any leading dimensions (e.g. ``S`` segments). A random transform draws once per clip, so
every frame (and every segment) of a clip gets the same crop and the same flip. Call a
transform as ``t(clip, rng)`` with a ``numpy.random.Generator`` (or an int seed) to make it
deterministic; without one it draws fresh entropy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ._sampling import _generator

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _pair(size: int | Sequence[int], what: str) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    height, width = size
    if height < 1 or width < 1:
        raise ValueError(f"{what} must be positive, got {size!r}")
    return int(height), int(width)


def _check_clip(clip: torch.Tensor, what: str) -> None:
    if not isinstance(clip, torch.Tensor) or clip.ndim < 4 or not clip.is_floating_point():
        raise TypeError(
            f"{what} expects a float clip (..., C, T, H, W); got "
            f"{type(clip).__name__} {getattr(clip, 'dtype', '')} {tuple(getattr(clip, 'shape', ()))}. "
            "Convert decoded frames with ToFloatClip first"
        )


class Compose:
    """Apply transforms in order, passing the same random generator to each.

    Example:
        >>> t = vidio.Compose([vidio.ToFloatClip(), vidio.CenterCrop(2)])
        >>> t(torch.zeros(8, 4, 4, 3, dtype=torch.uint8)).shape
        torch.Size([3, 8, 2, 2])
    """

    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, clip, rng: np.random.Generator | int | None = None):
        generator = _generator(rng)
        for transform in self.transforms:
            clip = transform(clip, generator)
        return clip

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class ToFloatClip:
    """uint8 frames ``(..., T, H, W, C)`` (tensor or numpy) -> float32 ``(..., C, T, H, W)`` in [0, 1].

    Example:
        >>> vidio.ToFloatClip()(torch.full((8, 2, 2, 3), 255, dtype=torch.uint8)).shape
        torch.Size([3, 8, 2, 2])
    """

    def __call__(self, frames, rng: np.random.Generator | int | None = None) -> torch.Tensor:
        frames = torch.as_tensor(frames)
        if frames.dtype != torch.uint8 or frames.ndim < 4:
            raise TypeError(
                f"ToFloatClip expects uint8 frames (..., T, H, W, C), got {frames.dtype} {tuple(frames.shape)}"
            )
        return frames.movedim(-1, -4).to(torch.float32).div_(255.0)

    def __repr__(self) -> str:
        return "ToFloatClip()"


class Resize:
    """Resize every frame, bilinear with antialiasing when shrinking.

    Args:
        size: ``(height, width)``, or an int: the shorter side becomes ``size`` and the
            aspect ratio is kept.
        antialias: low-pass filter before shrinking (as torchvision does).

    Example:
        >>> vidio.Resize(4)(torch.rand(3, 2, 8, 16)).shape
        torch.Size([3, 2, 4, 8])
    """

    def __init__(self, size: int | Sequence[int], antialias: bool = True):
        self.size = size if isinstance(size, int) else _pair(size, "size")
        self.antialias = antialias

    def _target(self, height: int, width: int) -> tuple[int, int]:
        if not isinstance(self.size, int):
            return self.size
        if height <= width:
            return self.size, max(1, int(self.size * width / height))
        return max(1, int(self.size * height / width)), self.size

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | int | None = None) -> torch.Tensor:
        _check_clip(clip, "Resize")
        *lead, channels, frames, height, width = clip.shape
        target = self._target(height, width)
        if target == (height, width):
            return clip
        images = clip.movedim(-4, -3).reshape(-1, channels, height, width)
        images = F.interpolate(
            images, size=target, mode="bilinear", align_corners=False, antialias=self.antialias
        )
        return images.reshape(*lead, frames, channels, *target).movedim(-3, -4)

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, antialias={self.antialias})"


def _crop(clip: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    return clip[..., top : top + height, left : left + width]


def _crop_room(clip: torch.Tensor, size: tuple[int, int], what: str) -> tuple[int, int]:
    _check_clip(clip, what)
    height, width = clip.shape[-2:]
    if size[0] > height or size[1] > width:
        raise ValueError(f"{what} of {size} does not fit frames of {(height, width)}; resize them first")
    return height - size[0], width - size[1]


class CenterCrop:
    """Cut the central ``size`` region of every frame (rounding as torchvision does).

    Args:
        size: ``(height, width)`` or an int for a square.

    Example:
        >>> vidio.CenterCrop(224)(torch.rand(3, 16, 256, 455)).shape
        torch.Size([3, 16, 224, 224])
    """

    def __init__(self, size: int | Sequence[int]):
        self.size = _pair(size, "size")

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | int | None = None) -> torch.Tensor:
        room_h, room_w = _crop_room(clip, self.size, "CenterCrop")
        return _crop(clip, int(round(room_h / 2.0)), int(round(room_w / 2.0)), *self.size)

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


class RandomCrop:
    """Cut a ``size`` region at one random place, the same for every frame of the clip.

    Args:
        size: ``(height, width)`` or an int for a square.

    Example:
        >>> vidio.RandomCrop(2)(torch.rand(3, 8, 4, 4), rng=0).shape
        torch.Size([3, 8, 2, 2])
    """

    def __init__(self, size: int | Sequence[int]):
        self.size = _pair(size, "size")

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | int | None = None) -> torch.Tensor:
        room_h, room_w = _crop_room(clip, self.size, "RandomCrop")
        generator = _generator(rng)
        top = int(generator.integers(0, room_h + 1))
        left = int(generator.integers(0, room_w + 1))
        return _crop(clip, top, left, *self.size)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size})"


class RandomHorizontalFlip:
    """Mirror the whole clip left-right with probability ``p``.

    Args:
        p: probability of flipping a clip.

    Example:
        >>> clip = torch.arange(4.0).reshape(1, 1, 1, 4)
        >>> vidio.RandomHorizontalFlip(p=1.0)(clip).flatten().tolist()
        [3.0, 2.0, 1.0, 0.0]
    """

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability, got {p}")
        self.p = p

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | int | None = None) -> torch.Tensor:
        _check_clip(clip, "RandomHorizontalFlip")
        if _generator(rng).random() < self.p:
            return clip.flip(-1)
        return clip

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Normalize:
    """Subtract a per-channel mean and divide by a per-channel std (ImageNet's by default).

    Args:
        mean, std: one value per channel; std must be positive.

    Example:
        >>> vidio.Normalize(mean=(0.5,), std=(0.5,))(torch.ones(1, 2, 2, 2)).unique().tolist()
        [1.0]
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(
                f"mean and std need one entry per channel and a positive std, got {mean} and {std}"
            )
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self._mean = torch.tensor(self.mean).view(-1, 1, 1, 1)
        self._std = torch.tensor(self.std).view(-1, 1, 1, 1)

    def __call__(self, clip: torch.Tensor, rng: np.random.Generator | int | None = None) -> torch.Tensor:
        _check_clip(clip, "Normalize")
        if clip.shape[-4] != len(self.mean):
            raise ValueError(f"Normalize has {len(self.mean)} channels, the clip has {clip.shape[-4]}")
        mean = self._mean.to(clip.device, clip.dtype)
        std = self._std.to(clip.device, clip.dtype)
        return (clip - mean) / std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"
