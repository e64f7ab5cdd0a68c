"""What every vidio dataset is made of: records, the clip dataset that reads them, shared helpers.

A dataset module (``mtl_aqa.py``, ``jigsaws.py``, ...) only turns its annotation files into a
list of :class:`ClipRecord` (which video, which frames, which scores) and hands them, with a
sampler and the score ranges, to :class:`ClipDataset`, which opens the videos, samples,
decodes and transforms clips, and builds the items ``docs/plugins.md`` specifies.

Randomness (temporal shift, crop, flip) is drawn per item from a generator seeded by
``torch.initial_seed()``, the item index and a per-process draw counter. A DataLoader gives
every worker its own initial seed each epoch, so workers never repeat each other's draws,
epochs differ, and ``torch.manual_seed`` makes a whole run reproducible. Test splits seed
the generator with the item index alone, so evaluation sees the same clips every time.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
import torch

from .. import _files
from .._backend import DEFAULT_TIMEOUT
from .._decoders import open_video
from .._errors import DatasetError
from .._transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CenterCrop,
    Compose,
    Normalize,
    RandomHorizontalFlip,
    ToFloatClip,
)
from .checks import integer, number, numbers

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv")


@dataclass(frozen=True)
class ClipRecord:
    """One sample: where its frames are, which frames belong to it, and its scores.

    Attributes:
        id: identity of the sample (MTL-AQA ``"01_07"``, JIGSAWS ``"Suturing_B001"``).
        source: video file or frame folder.
        score: the final score.
        start: first frame of the annotated range (0-based).
        stop: one past its last frame; ``None`` for the end of the video.
        judge_scores: per-judge scores or sub-scores, if any.
        difficulty: degree of difficulty, if any.
        action: action or task name, if the dataset has several.
    """

    id: str
    source: str
    score: float
    start: int = 0
    stop: int | None = None
    judge_scores: tuple[float, ...] | None = None
    difficulty: float | None = None
    action: str | None = None


def _default_transform(
    train: bool,
    crop_size: int | Sequence[int] | None,
    hflip: bool,
    mean: Sequence[float],
    std: Sequence[float],
) -> Compose:
    """The reference preprocessing: [0, 1] floats, centre crop, random flip when training, normalise."""
    steps: list[Any] = [ToFloatClip()]
    if crop_size:
        steps.append(CenterCrop(crop_size))
    if train and hflip:
        steps.append(RandomHorizontalFlip())
    steps.append(Normalize(mean, std))
    return Compose(steps)


class ClipOptions(TypedDict, total=False):
    """The :class:`ClipDataset` options every built-in dataset passes on (see there)."""

    sampler: Callable[..., np.ndarray]
    transform: Callable[..., torch.Tensor]
    mean: Sequence[float]
    std: Sequence[float]
    backend: str
    threads: int | None
    timeout: float
    check_files: bool


class ClipDataset(torch.utils.data.Dataset):
    """Scored clips from videos (or frame folders): the machinery behind every vidio dataset.

    Use it directly to wrap your own list of records, or subclass it for a dataset plugin.

    Args:
        records: the samples.
        sampler: maps ``(num_frames, start, stop, rng)`` to frame indices, ``(T,)`` or ``(S, L)``.
        train: draw random augmentation (temporal shift in the sampler, flips).
        score_range: ``(low, high)`` of the final score.
        judge_range: ``(low, high)`` of one judge score, when records have judge scores.
        frame_size: ``(height, width)`` to scale frames to while decoding, or ``None``.
        crop_size: centre crop after decoding (int or ``(height, width)``), or ``None``.
        hflip: flip clips left-right at random when ``train``.
        transform: replaces the default preprocessing; called as ``transform(frames, rng)``
            with uint8 frames ``(..., T, H, W, 3)`` and must return the ``video`` tensor.
        mean, std: normalisation of the default preprocessing.
        backend, threads, timeout: passed to :func:`vidio.open` (``threads`` not given: shared
            out among DataLoader workers, see there).
        check_files: fail at construction when sources are missing.
        layout_hint: how sources should be laid out, quoted when some are missing.

    Raises:
        DatasetError: no records, inconsistent judge scores, a score, judge score or
            difficulty that is not a finite number in its range, a frame range that is not
            integers ``0 <= start < stop``, or missing sources.

    Example:
        >>> records = [vidio.ClipRecord(id="a", source="a.mp4", score=7.5)]  # doctest: +SKIP
        >>> data = vidio.ClipDataset(records, sampler=vidio.UniformSampler(16), score_range=(0, 10))  # doctest: +SKIP
        >>> data[0]["video"].shape  # doctest: +SKIP
        torch.Size([3, 16, 224, 224])
    """

    def __init__(
        self,
        records: Sequence[ClipRecord],
        *,
        sampler: Callable[..., np.ndarray],
        train: bool = False,
        score_range: tuple[float, float],
        judge_range: tuple[float, float] | None = None,
        frame_size: tuple[int, int] | None = None,
        crop_size: int | Sequence[int] | None = 224,
        hflip: bool = False,
        transform: Callable[..., torch.Tensor] | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        backend: str | None = None,
        threads: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        check_files: bool = True,
        layout_hint: str = "",
    ):
        self.records = list(records)
        if not self.records:
            raise DatasetError(f"{type(self).__name__} has no samples; check the root folder and the split")
        judges = {len(r.judge_scores) for r in self.records if r.judge_scores is not None}
        if len(judges) > 1 or (judges and any(r.judge_scores is None for r in self.records)):
            raise DatasetError(
                f"{type(self).__name__}: samples disagree on the number of judge scores ({judges})"
            )
        self.num_judges = judges.pop() if judges else 0
        self.score_range = _check_range(type(self).__name__, "score_range", score_range)
        self.judge_range = (
            None if judge_range is None else _check_range(type(self).__name__, "judge_range", judge_range)
        )
        for record in self.records:
            _check_record(type(self).__name__, record, self.score_range, self.judge_range)
        self.sampler = sampler
        self.train = train
        self.frame_size = None if frame_size is None else (int(frame_size[0]), int(frame_size[1]))
        self.mean, self.std = tuple(mean), tuple(std)
        self.transform = transform or _default_transform(train, crop_size, hflip, self.mean, self.std)
        self.multi_action = any(r.action for r in self.records)
        self._open_kw = {"backend": backend, "threads": threads, "timeout": timeout}
        self._draws = 0
        if check_files:
            _check_sources(type(self).__name__, self.records, layout_hint)

    def __len__(self) -> int:
        return len(self.records)

    def _rng(self, index: int) -> np.random.Generator:
        if not self.train:
            return np.random.default_rng(index)
        self._draws += 1
        return np.random.default_rng([torch.initial_seed(), index, self._draws])

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        rng = self._rng(index)
        with open_video(record.source, **self._open_kw) as video:
            stop = video.num_frames if record.stop is None else record.stop
            if not 0 <= record.start < stop <= video.num_frames:
                raise DatasetError(
                    f"sample '{record.id}': its frames [{record.start}, {stop}) do not fit '{record.source}', "
                    f"which has {video.num_frames} frames; the annotation does not match this video"
                )
            indices = np.asarray(
                self.sampler(video.num_frames, record.start, record.stop, rng), dtype=np.int64
            )
            frames = video.get(indices.reshape(-1), size=self.frame_size)
        frames = torch.from_numpy(frames).reshape(*indices.shape, *frames.shape[1:])
        item: dict[str, Any] = {
            "video": self.transform(frames, rng),
            "score": torch.tensor(record.score, dtype=torch.float32),
            "id": record.id,
            "frames": torch.from_numpy(indices),
        }
        if record.judge_scores is not None:
            item["judge_scores"] = torch.tensor(record.judge_scores, dtype=torch.float32)
        if record.difficulty is not None:
            item["difficulty"] = torch.tensor(record.difficulty, dtype=torch.float32)
        if self.multi_action:
            item["action"] = record.action or ""
        return item

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} samples, train={self.train}, sampler={self.sampler!r})"


def _check_range(name: str, what: str, given: Any) -> tuple[float, float]:
    low, high = numbers(given, where=name, what=what, length=2)
    if low > high:
        raise DatasetError(f"{name}: {what} should be (low, high) with low <= high, got {given!r}")
    return low, high


def _check_record(
    name: str, record: ClipRecord, score_range: tuple[float, float], judge_range: tuple[float, float] | None
) -> None:
    """The last line of defence for records built by hand or by a plugin: the loaders check first."""
    where = f"{name}: sample '{record.id}'"
    number(record.score, where=where, what="the score", low=score_range[0], high=score_range[1])
    if record.judge_scores is not None:
        low, high = judge_range or (None, None)
        numbers(record.judge_scores, where=where, what="the judge scores", low=low, high=high)
    if record.difficulty is not None:
        number(record.difficulty, where=where, what="the difficulty")
    start = integer(record.start, where=where, what="the first frame (start)", low=0)
    if record.stop is not None:
        integer(record.stop, where=where, what="the end of its frames (stop)", low=start + 1)


def require_root(name: str, root: str, how_to_get: str) -> None:
    """Raise :class:`~vidio.DatasetError` with ``how_to_get`` (where the data comes from) unless ``root`` is a folder."""
    try:
        found = _files.stat_path(root)
    except _files.PathProblem as exc:
        raise DatasetError(f"{name}: the root '{root}' cannot be used ({exc.reason}). {how_to_get}") from None
    if not stat.S_ISDIR(found.st_mode):
        raise DatasetError(
            f"{name}: the root '{root}' is {_files.kind(found.st_mode)}, not a folder. {how_to_get}"
        )


def _check_sources(name: str, records: Sequence[ClipRecord], layout_hint: str) -> None:
    missing, unusable = [], []
    for record in records:
        try:
            mode = _files.stat_path(record.source).st_mode
        except _files.PathProblem as exc:
            if exc.missing:
                missing.append(f"'{record.source}'")
            else:
                unusable.append(f"'{record.source}' ({exc.reason})")
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            unusable.append(f"'{record.source}' (it is not a video file or folder but {_files.kind(mode)})")
    if unusable:
        raise DatasetError(
            f"{name}: {len(unusable)} of {len(records)} videos or frame folders cannot be read: "
            + ", ".join(unusable[:3])
        )
    if missing:
        shown = ", ".join(missing[:3])
        raise DatasetError(
            f"{name}: {len(missing)} of {len(records)} videos or frame folders are missing (e.g. {shown}). "
            + (f"Expected layout: {layout_hint}. " if layout_hint else "")
            + "Pass check_files=False to build the dataset anyway."
        )


def check_split(name: str, split: str, allowed: Sequence[str]) -> None:
    """Raise :class:`~vidio.DatasetError` unless ``split`` is one of ``allowed`` (``name``: the dataset's)."""
    if split not in allowed:
        raise DatasetError(f"{name} has splits {', '.join(map(repr, allowed))}, not {split!r}")


def first_existing(name: str, candidates: Sequence[str], what: str, how_to_get: str = "") -> str:
    """The first of ``candidates`` that exists, else a :class:`~vidio.DatasetError` listing them all."""
    for candidate in candidates:
        if os.path.lexists(candidate):
            return candidate
    raise DatasetError(
        f"{name}: no {what} found; looked for {', '.join(map(repr, candidates))}"
        + (f". {how_to_get}" if how_to_get else "")
    )


def video_index(folder: str) -> dict[str, str]:
    """Map file stems to video paths in ``folder`` (empty when it does not exist)."""
    if not os.path.isdir(folder):
        return {}
    found = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(name)
        if ext.lower() in VIDEO_EXTENSIONS:
            found.setdefault(stem, os.path.join(folder, name))
    return found
