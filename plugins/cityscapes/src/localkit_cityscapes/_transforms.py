"""Joint image/mask transforms for training: random scale, random crop, horizontal flip, pad.

They follow the mmsegmentation Cityscapes pipeline that the paper's experiment used
(``Resize`` with ``ratio_range=(0.5, 2.0)``, ``RandomCrop`` with ``cat_max_ratio=0.75``,
``RandomFlip(0.5)``, ``Pad`` with 0 for the normalised image and 255 for the mask).
Images are resized bilinearly and masks with nearest-exact sampling, which uses the same
pixel-centre convention as bilinear interpolation, so both stay aligned. Random numbers
come from torch's generator, so splitnet's seeding and exact resume cover them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ._labels import IGNORE_INDEX


def resize_pair(image: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]):
    """Resize a float image ``(3, H, W)`` bilinearly and its mask ``(H, W)`` by nearest-exact.

    Returns:
        ``(image, mask)`` at ``size`` = ``(height, width)``; the mask keeps its dtype.
    """
    if tuple(image.shape[-2:]) == tuple(size):
        return image, mask
    image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
    resized = F.interpolate(mask[None, None].float(), size=size, mode="nearest-exact")[0, 0]
    return image, resized.to(mask.dtype)


def pad_pair(image: torch.Tensor, mask: torch.Tensor, size: tuple[int, int]):
    """Pad on the bottom and right to ``size``: the image with 0, the mask with 255 (ignored)."""
    pad_h, pad_w = size[0] - image.shape[-2], size[1] - image.shape[-1]
    if pad_h <= 0 and pad_w <= 0:
        return image, mask
    pad = (0, max(pad_w, 0), 0, max(pad_h, 0))
    return F.pad(image, pad, value=0.0), F.pad(mask, pad, value=IGNORE_INDEX)


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(high: int, generator: torch.Generator | None) -> int:
    """A random integer in ``0 .. high`` (inclusive)."""
    return int(torch.randint(0, high + 1, (), generator=generator))


@dataclass(frozen=True)
class JointTransform:
    """Random scale, random crop (at most ``cat_max_ratio`` of one class), flip, pad.

    Args:
        crop_size: ``(height, width)`` of the output. Capped at the unscaled image's size,
            so that small images (tests, down-sampled copies) train at their own size.
        scale_range: the scale factor is drawn uniformly from this range, relative to the
            image's own size.
        flip: flip image and mask horizontally with probability 0.5.
        cat_max_ratio: redraw the crop (up to 10 times) while one class covers this share
            or more of its labelled pixels; 1.0 turns the check off.

    Example:
        >>> import torch
        >>> transform = JointTransform(crop_size=(32, 64))
        >>> image, mask = transform(torch.rand(3, 48, 96), torch.zeros(48, 96, dtype=torch.long))
        >>> tuple(image.shape), tuple(mask.shape)
        ((3, 32, 64), (32, 64))
    """

    crop_size: tuple[int, int] = (512, 1024)
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    cat_max_ratio: float = 0.75

    def __post_init__(self):
        if len(self.crop_size) != 2 or min(self.crop_size) < 1:
            raise ValueError(f"crop_size must be (height, width) of positive sizes, got {self.crop_size!r}")
        low, high = self.scale_range
        if not 0 < low <= high:
            raise ValueError(
                f"scale_range must be (low, high) with 0 < low <= high, got {self.scale_range!r}"
            )
        if not 0 < self.cat_max_ratio <= 1:
            raise ValueError(f"cat_max_ratio must lie in (0, 1], got {self.cat_max_ratio!r}")

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The size of every output for an input image of ``height`` x ``width``."""
        return min(int(self.crop_size[0]), height), min(int(self.crop_size[1]), width)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None):
        """Transform a normalised float image ``(3, H, W)`` and its train-id mask ``(H, W)``.

        Args:
            image: float image, already normalised (padding fills 0, i.e. the mean colour).
            mask: integer mask of train ids, 255 ignored.
            generator: random source (default: torch's global generator).

        Returns:
            ``(image, mask)`` of :meth:`output_size`.
        """
        height, width = image.shape[-2:]
        out_h, out_w = self.output_size(height, width)
        scale = _uniform(*self.scale_range, generator)
        scaled = (int(height * scale + 0.5), int(width * scale + 0.5))
        image, mask = resize_pair(image, mask, scaled)
        top, left = self._crop_origin(mask, (out_h, out_w), generator)
        image = image[:, top : top + out_h, left : left + out_w]
        mask = mask[top : top + out_h, left : left + out_w]
        if self.flip and float(torch.rand((), generator=generator)) < 0.5:
            image, mask = image.flip(-1), mask.flip(-1)
        return pad_pair(image, mask, (out_h, out_w))

    def _crop_origin(self, mask: torch.Tensor, size: tuple[int, int], generator) -> tuple[int, int]:
        max_top, max_left = max(mask.shape[0] - size[0], 0), max(mask.shape[1] - size[1], 0)
        origin = (0, 0)
        for _ in range(10):
            origin = (_randint(max_top, generator), _randint(max_left, generator))
            if self.cat_max_ratio >= 1:
                break
            window = mask[origin[0] : origin[0] + size[0], origin[1] : origin[1] + size[1]]
            counts = torch.bincount(window[window != IGNORE_INDEX].flatten().long())
            counts = counts[counts > 0]
            if len(counts) > 1 and float(counts.max()) / float(counts.sum()) < self.cat_max_ratio:
                break
        return origin
