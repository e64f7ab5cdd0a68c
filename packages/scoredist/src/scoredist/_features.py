"""Clip features: segments through a backbone, averaged; and a disk cache of them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ._io import load_state, save_state


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def segment_starts(frames: int, num_segments: int, length: int, stride: int | None = None) -> list[int]:
    """First frame of each of ``num_segments`` windows of ``length`` frames in a clip of ``frames``.

    With ``stride``, the reference code's rule: starts ``0, stride, ..., (S - 2) * stride``,
    and the last window ends at the last frame (MTL-AQA, 103 frames, stride 10: 0, 10, ...,
    80, 87; JIGSAWS, 160 frames, stride 16: 0, 16, ..., 144). Without it, ours: the starts
    are evenly spaced from 0 to ``frames - length``, rounded.

    Raises:
        ValueError: a count is not a positive integer, the clip is shorter than one window,
            or the strided windows run past the last one.

    Example:
        >>> segment_starts(103, 10, 16, stride=10)
        [0, 10, 20, 30, 40, 50, 60, 70, 80, 87]
        >>> segment_starts(103, 10, 16)
        [0, 10, 19, 29, 39, 48, 58, 68, 77, 87]
    """
    num_segments, length = (
        _positive("the number of segments", num_segments),
        _positive("the segment length", length),
    )
    if frames < length:
        raise ValueError(f"a clip of {frames} frames is shorter than one segment of {length} frames")
    last = frames - length
    if stride is None:
        return torch.linspace(0, last, num_segments).round().long().tolist()
    stride = _positive("the segment stride", stride)
    starts = [stride * i for i in range(num_segments - 1)]
    if starts and starts[-1] > last:
        raise ValueError(
            f"{num_segments} segments of {length} frames every {stride} frames need at least "
            f"{starts[-1] + length} frames, the clip has {frames}; use a smaller stride or fewer segments"
        )
    return [*starts, last]


def cut_segments(
    video: torch.Tensor, num_segments: int, length: int, stride: int | None = None
) -> torch.Tensor:
    """Cut clips into ``num_segments`` windows of ``length`` frames (see :func:`segment_starts`).

    Args:
        video: ``(C, T, H, W)`` or a batch ``(B, C, T, H, W)``.
        num_segments: ``S``.
        length: ``L``, at most ``T``.
        stride: frames between consecutive starts, the last window ending at the last frame
            (the reference code); ``None`` spaces the windows evenly.

    Returns:
        ``(S, C, L, H, W)`` or ``(B, S, C, L, H, W)``.

    Raises:
        ValueError: the clip is too short or the arguments are not positive.

    Example:
        >>> cut_segments(torch.zeros(3, 103, 8, 8), 10, 16, stride=10).shape
        torch.Size([10, 3, 16, 8, 8])
    """
    if video.ndim not in (4, 5):
        raise ValueError(f"cut_segments needs (C, T, H, W) or (B, C, T, H, W), got {tuple(video.shape)}")
    starts = segment_starts(video.shape[-3], num_segments, length, stride)
    return torch.stack([video[..., s : s + length, :, :] for s in starts], dim=-5)


class ClipEncoder(nn.Module):
    """A backbone applied to every segment of a clip, features averaged over segments.

    Args:
        backbone: a module mapping ``(N, C, L, H, W)`` to ``(N, F)``.
        name: the backbone's name, for error messages.
        segments: ``(S, L)`` to cut ``(C, T, H, W)`` clips into ``S`` segments of ``L``
            frames; ``None`` feeds whole clips (or clips the dataset already cut,
            ``(S, C, L, H, W)``).
        stride: frames between segment starts (see :func:`segment_starts`); ``None``
            spaces them evenly.

    Shape:
        ``(B, C, T, H, W)`` or ``(B, S, C, L, H, W)`` -> ``(B, F)``.

    Raises:
        ValueError: a segment count, length or stride is not a positive integer (at
            construction), or the backbone returns anything but ``(N, F)`` for ``N`` segments.

    Example:
        >>> encoder = ClipEncoder(nn.Sequential(nn.Flatten(1), nn.LazyLinear(4)), "flat", (10, 16), stride=10)
        >>> encoder(torch.zeros(2, 3, 103, 4, 4)).shape
        torch.Size([2, 4])
    """

    def __init__(
        self,
        backbone: nn.Module,
        name: str = "backbone",
        segments: tuple[int, int] | None = None,
        stride: int | None = None,
    ):
        super().__init__()
        if segments is not None:
            if len(segments) != 2:
                raise ValueError(f"segments are (S, L): a count and a length, got {segments!r}")
            segments = (
                _positive("the number of segments", segments[0]),
                _positive("the segment length", segments[1]),
            )
        if stride is not None:
            if segments is None:
                raise ValueError("a segment stride needs segments (S, L) to cut")
            stride = _positive("the segment stride", stride)
        self.backbone = backbone
        self.name = name
        self.segments = segments
        self.stride = stride

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if video.ndim == 5 and self.segments is not None:
            video = cut_segments(video, *self.segments, stride=self.stride)
        if video.ndim == 5:
            video = video.unsqueeze(1)
        if video.ndim != 6:
            raise ValueError(f"clips must be (B, C, T, H, W) or (B, S, C, L, H, W), got {tuple(video.shape)}")
        batch, segments = video.shape[:2]
        out = self.backbone(video.flatten(0, 1))
        if not torch.is_tensor(out) or out.ndim != 2 or out.shape[0] != batch * segments:
            shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            raise ValueError(
                f"backbone '{self.name}' returned {shape} for {batch * segments} clips of shape "
                f"{tuple(video.shape[2:])}; a scoredist backbone must map (N, C, T, H, W) to "
                f"features (N, F). Pool or flatten its output (e.g. a classifier-free variant)"
            )
        return out.view(batch, segments, -1).mean(dim=1)


@dataclass
class FeatureSet(Dataset):
    """Clip features of one split with their annotations; a ``Dataset`` of dicts.

    Items are ``{"features": (F,), "score": (), "id": str}`` plus ``"judge_scores"``,
    ``"difficulty"`` and ``"action"`` where the source dataset had them.
    """

    features: torch.Tensor
    score: torch.Tensor
    ids: list[str]
    judge_scores: torch.Tensor | None = None
    difficulty: torch.Tensor | None = None
    actions: list[str] | None = None

    def __len__(self) -> int:
        return self.features.shape[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {
            "features": self.features[index],
            "score": self.score[index],
            "id": self.ids[index],
        }
        if self.judge_scores is not None:
            item["judge_scores"] = self.judge_scores[index]
        if self.difficulty is not None:
            item["difficulty"] = self.difficulty[index]
        if self.actions is not None:
            item["action"] = self.actions[index]
        return item

    def save(self, path: Path, meta: Mapping[str, Any] | None = None) -> None:
        """Write the set atomically (``torch.save`` of tensors, strings and ``meta``)."""
        save_state({"meta": dict(meta or {}), **self.__dict__}, path)

    @classmethod
    def load(cls, path: Path) -> FeatureSet:
        """Read a set written by :meth:`save` (tensors and strings only: ``weights_only``)."""
        state = load_state(path, "a cached feature set", ("features", "score", "ids"))
        state.pop("meta", None)
        return cls(**state)


def extract_features(
    encoder: nn.Module,
    dataset: Iterable[Mapping[str, Any]],
    batch_size: int = 8,
    desc: str = "features",
    device: str | torch.device = "cpu",
) -> FeatureSet:
    """Run a (frozen) encoder over a dataset once, in eval mode without gradients.

    Args:
        encoder: e.g. a :class:`ClipEncoder`; moved to ``device``.
        dataset: a ``Dataset`` of ``vidio.datasets`` items.
        batch_size: clips per forward pass.
        desc: progress-bar label.
        device: where the encoder runs; clips are pinned and copied there asynchronously,
            the features come back to the CPU.

    Returns:
        A :class:`FeatureSet` in the dataset's order.
    """
    device = torch.device(device)
    was_training = encoder.training
    encoder.to(device).eval()
    feats, scores, judges, dds, ids, actions = [], [], [], [], [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, pin_memory=device.type == "cuda")
    with torch.no_grad():
        for batch in tqdm(loader, desc=desc, leave=False, disable=None):
            feats.append(encoder(batch["video"].to(device, non_blocking=True).float()).float().cpu())
            scores.append(torch.as_tensor(batch["score"], dtype=torch.float32))
            ids += [str(i) for i in batch["id"]]
            if "judge_scores" in batch:
                judges.append(torch.as_tensor(batch["judge_scores"], dtype=torch.float32))
            if "difficulty" in batch:
                dds.append(torch.as_tensor(batch["difficulty"], dtype=torch.float32))
            if "action" in batch:
                actions += list(batch["action"])
    encoder.train(was_training)
    return FeatureSet(
        features=torch.cat(feats),
        score=torch.cat(scores),
        ids=ids,
        judge_scores=torch.cat(judges) if judges else None,
        difficulty=torch.cat(dds) if dds else None,
        actions=actions or None,
    )


def cache_key(**description: Any) -> str:
    """A short stable hash of everything that determines the cached features."""
    text = json.dumps(description, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def cached_features(
    cache_dir: Path, description: Mapping[str, Any], compute: Callable[[], FeatureSet]
) -> tuple[FeatureSet, bool]:
    """Load the features described by ``description`` from ``cache_dir``, or compute and store them.

    Args:
        cache_dir: folder of ``<key>.pt`` files.
        description: JSON-able facts that determine the features (dataset, root, split,
            backbone, its options and seed, segments).
        compute: zero-argument callable returning a :class:`FeatureSet`.

    Returns:
        ``(features, hit)`` where ``hit`` says whether they came from the cache.
    """
    path = Path(cache_dir) / f"{description.get('split', 'split')}-{cache_key(**description)}.pt"
    if path.exists():
        return FeatureSet.load(path), True
    features = compute()
    features.save(path, meta=description)
    return features, False
