"""Datasets of scored clips: MTL-AQA, JIGSAWS, AQA-7, and any dataset described by a CSV file.

Each dataset is a list of :class:`ClipRecord` (which video, which frames, which scores)
turned into items by :class:`ClipDataset`. The classes are the factories of the
``vidio.datasets`` entry-point group: ``factory(root, split, **options)``, with items and
attributes as ``docs/plugins.md`` specifies. Their options are their keyword parameters
plus the :class:`ClipOptions` they pass on to :class:`ClipDataset`
(``**options: Unpack[ClipOptions]``), so a misspelled option is an error naming them.

Randomness (temporal shift, crop, flip) is drawn per item from a generator seeded by
``torch.initial_seed()``, the item index and a per-process draw counter. A DataLoader gives
every worker its own initial seed each epoch, so workers never repeat each other's draws,
epochs differ, and ``torch.manual_seed`` makes a whole run reproducible. Test splits seed
the generator with the item index alone, so evaluation sees the same clips every time.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import numpy as np
import torch

from localkit_registry import Registry

from ._decoders import DECODERS, DEFAULT_TIMEOUT, open_video
from ._errors import DatasetError
from ._safepickle import load_pickle
from ._sampling import ClipSampler, RandomShift, SegmentSampler, UniformSampler
from ._transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CenterCrop,
    Compose,
    Normalize,
    RandomHorizontalFlip,
    ToFloatClip,
)

if sys.version_info >= (3, 11):
    from typing import Unpack
else:
    from typing_extensions import Unpack

DATASETS = Registry(
    "vidio.datasets",
    owner="localkit-vidio",
    kind="dataset",
    hint="Built-in datasets are 'mtl-aqa', 'jigsaws', 'aqa-7' and 'csv'.",
    contract="factory(root, split, **options)",
)
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv")


def list_datasets(pattern: str | Iterable[str] = "*", exclude: str | Iterable[str] = ()) -> list[str]:
    """Names of the installed clip datasets, without importing plugins.

    Args:
        pattern: fnmatch pattern(s) to include.
        exclude: fnmatch pattern(s) to leave out.

    Returns:
        Naturally sorted names.

    Example:
        >>> vidio.list_datasets()  # doctest: +SKIP
        ['aqa-7', 'csv', 'jigsaws', 'mtl-aqa']
    """
    return DATASETS.names(pattern, exclude)


def create_dataset(name: str, root: str | os.PathLike, split: str, **kw: Any) -> torch.utils.data.Dataset:
    """Build a clip dataset by name from the ``vidio.datasets`` entry-point group.

    Args:
        name: a name from :func:`list_datasets`, e.g. ``"mtl-aqa"``.
        root: the dataset folder (or, for ``"csv"``, the manifest file).
        split: ``"train"`` or ``"test"``.
        **kw: options of that dataset (``fold=`` for JIGSAWS, ``backend=``, ...).

    Returns:
        The dataset; items are dicts with ``video``, ``score``, ``id`` and, where the data
        has them, ``judge_scores``, ``difficulty`` and ``action``.

    Raises:
        UnknownEntryError: no dataset of that name is installed.
        OptionError: an option the dataset does not accept; the message names the accepted ones.
        DatasetError: files are missing or annotations are malformed.

    Example:
        >>> train = vidio.create_dataset("jigsaws", "data/JIGSAWS", "train", fold=0)  # doctest: +SKIP
    """
    return DATASETS.create(name, root, split, **kw)


def provenance() -> dict[str, dict[str, dict[str, str]]]:
    """Which distribution and version supplied each decoder and dataset used so far.

    Returns:
        ``{"vidio.decoders": {name: record}, "vidio.datasets": {name: record}}``, for run metadata.

    Example:
        >>> vidio.provenance()["vidio.datasets"]["csv"]["distribution"]  # doctest: +SKIP
        'localkit-vidio'
    """
    return {"vidio.decoders": DECODERS.provenance(), "vidio.datasets": DATASETS.provenance()}


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
    threads: int
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
        backend, threads, timeout: passed to :func:`vidio.open`.
        check_files: fail at construction when sources are missing.
        layout_hint: how sources should be laid out, quoted when some are missing.

    Raises:
        DatasetError: no records, inconsistent judge scores, or missing sources.

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
        threads: int = 0,
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
        self.score_range = (float(score_range[0]), float(score_range[1]))
        self.judge_range = None if judge_range is None else (float(judge_range[0]), float(judge_range[1]))
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


def _check_sources(name: str, records: Sequence[ClipRecord], layout_hint: str) -> None:
    missing = [r.source for r in records if not os.path.exists(r.source)]
    if missing:
        shown = ", ".join(f"'{m}'" for m in missing[:3])
        raise DatasetError(
            f"{name}: {len(missing)} of {len(records)} videos or frame folders are missing (e.g. {shown}). "
            + (f"Expected layout: {layout_hint}. " if layout_hint else "")
            + "Pass check_files=False to build the dataset anyway."
        )


def _check_split(name: str, split: str, allowed: Sequence[str]) -> None:
    if split not in allowed:
        raise DatasetError(f"{name} has splits {', '.join(map(repr, allowed))}, not {split!r}")


def _first_existing(name: str, candidates: Sequence[str], what: str) -> str:
    for candidate in candidates:
        if os.path.exists(candidate):
            return candidate
    raise DatasetError(f"{name}: no {what} found; looked for {', '.join(map(repr, candidates))}")


def _video_index(folder: str) -> dict[str, str]:
    """Map file stems to video paths in ``folder`` (empty when it does not exist)."""
    if not os.path.isdir(folder):
        return {}
    found = {}
    for name in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(name)
        if ext.lower() in VIDEO_EXTENSIONS:
            found.setdefault(stem, os.path.join(folder, name))
    return found


def _pick_layout(name: str, layout: str, root: str, videos: str, frames: str) -> str:
    if layout not in ("auto", "videos", "frames"):
        raise DatasetError(f"{name}: layout must be 'auto', 'videos' or 'frames', not {layout!r}")
    if layout != "auto":
        return layout
    if os.path.isdir(videos):
        return "videos"
    if os.path.isdir(frames):
        return "frames"
    raise DatasetError(
        f"{name}: found neither '{videos}' (videos) nor '{frames}' (frame folders) under '{root}'"
    )


class MTLAQA(ClipDataset):
    """MTL-AQA (Parmar & Morris, CVPR 2019): 1,412 Olympic dives, 7 judges, difficulty.

    Layouts under ``root`` (``layout="auto"`` picks the one present)::

        info/augmented_final_annotations_dict.pkl   (or final_annotations_dict.pkl)
        info/train_split_0.pkl, info/test_split_0.pkl
        videos/01.mp4, videos/02.mp4, ...           whole competition videos ("videos")
        frames/01_01/*.jpg, frames/01_02/*.jpg, ... one folder per dive ("frames", MUSDL)

    With videos, only the dive is decoded: the ``window`` frames that end at the dive's
    ``end_frame`` (1-based frame numbers, as the reference loader reads them), shifted by
    ``[-3, 3]`` at random when training. With frame folders, the window starts at the first
    frame, shifted by ``[0, 6]`` when training (MUSDL). The window is cut into ``segments``
    clips of ``segment_length`` frames: items hold ``video`` ``(10, 3, 16, 224, 224)`` by
    default; ``segments=None`` gives one clip ``(3, 103, 224, 224)``.

    Args:
        root: dataset folder.
        split: ``"train"`` or ``"test"``.
        layout: ``"auto"``, ``"videos"`` or ``"frames"``.
        annotations, split_file, videos, frames: override the paths above.
        window, segments, segment_length: temporal layout (103, 10, 16 in the reference).
        temporal_shift: ``(low, high)`` training shift; ``None`` picks the reference one.
        frame_size: decode-time resize, ``(256, 455)`` as in the reference.
        crop_size, hflip: see :class:`ClipDataset`; ``**kwargs``: its :class:`ClipOptions`.

    Example:
        >>> train = vidio.MTLAQA("data/MTL-AQA", "train")  # doctest: +SKIP
        >>> train[0]["video"].shape, train[0]["judge_scores"].shape  # doctest: +SKIP
        (torch.Size([10, 3, 16, 224, 224]), torch.Size([7]))
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        *,
        layout: str = "auto",
        annotations: str | os.PathLike | None = None,
        split_file: str | os.PathLike | None = None,
        videos: str | os.PathLike | None = None,
        frames: str | os.PathLike | None = None,
        window: int = 103,
        segments: int | None = 10,
        segment_length: int = 16,
        temporal_shift: tuple[int, int] | None = None,
        frame_size: tuple[int, int] | None = (256, 455),
        crop_size: int | Sequence[int] | None = 224,
        hflip: bool = True,
        **kwargs: Unpack[ClipOptions],
    ):
        root = os.fspath(root)
        _check_split("MTL-AQA", split, ("train", "test"))
        info = os.path.join(root, "info")
        annotations = annotations or _first_existing(
            "MTL-AQA",
            [
                os.path.join(info, "augmented_final_annotations_dict.pkl"),
                os.path.join(info, "final_annotations_dict.pkl"),
            ],
            "annotation pickle",
        )
        split_file = split_file or os.path.join(info, f"{split}_split_0.pkl")
        videos = os.fspath(videos or os.path.join(root, "videos"))
        frames = os.fspath(frames or os.path.join(root, "frames"))
        layout = _pick_layout("MTL-AQA", layout, root, videos, frames)
        table = load_pickle(annotations)
        keys = load_pickle(split_file)
        records = _mtl_aqa_records(table, keys, layout, videos, frames, annotations)
        anchor = "end" if layout == "videos" else "start"
        sampler: Any = (
            SegmentSampler(window, segments, segment_length, anchor=anchor)
            if segments
            else ClipSampler(window, position=anchor)
        )
        train = split == "train"
        if train:
            low, high = temporal_shift or ((-3, 3) if layout == "videos" else (0, 6))
            sampler = RandomShift(sampler, low, high)
        self.layout = layout
        super().__init__(
            records,
            sampler=kwargs.pop("sampler", None) or sampler,
            train=train,
            score_range=(0.0, 104.5),
            judge_range=(0.0, 10.0),
            frame_size=frame_size,
            crop_size=crop_size,
            hflip=hflip,
            layout_hint=f"'{videos}/NN.mp4' (one per competition video)"
            if layout == "videos"
            else f"'{frames}/NN_MM/' (one folder of frames per dive)",
            **kwargs,
        )


def _mtl_aqa_records(
    table: Any, keys: Any, layout: str, videos: str, frames: str, source: str
) -> list[ClipRecord]:
    if not isinstance(table, dict) or not isinstance(keys, (list, tuple)):
        raise DatasetError(
            f"'{source}' is not an MTL-AQA annotation dict or its split file is not a list of keys"
        )
    index = _video_index(videos) if layout == "videos" else {}
    records = []
    for key in keys:
        if key not in table:
            raise DatasetError(f"MTL-AQA split lists {key!r}, which '{source}' does not annotate")
        video, dive = (int(k) for k in key)
        entry = table[key]
        ident = f"{video:02d}_{dive:02d}"
        if layout == "videos":
            path = index.get(f"{video:02d}", os.path.join(videos, f"{video:02d}.mp4"))
            start, stop = max(int(entry["start_frame"]) - 1, 0), int(entry["end_frame"])
        else:
            path, start, stop = os.path.join(frames, ident), 0, None
        records.append(
            ClipRecord(
                id=ident,
                source=path,
                score=float(entry["final_score"]),
                start=start,
                stop=stop,
                judge_scores=tuple(float(s) for s in np.asarray(entry["judge_scores"]).reshape(-1)),
                difficulty=float(entry["difficulty"]),
            )
        )
    return records


class JIGSAWS(ClipDataset):
    """JIGSAWS (Gao et al., 2014): robotic surgery trials with 6 skill sub-scores (1..5 each).

    Layout under ``root``::

        label.pkl, splits.pkl                           (or info/label.pkl, info/splits.pkl)
        Suturing/video/Suturing_B001_capture1.avi ...   the official release ("videos"), or
        videos/Suturing_B001_capture1.avi ...           all trials in one folder ("videos"), or
        frames/Suturing_B001_capture1/*.jpg ...         MUSDL's frame folders ("frames")

    ``splits.pkl`` holds 4 folds per task: fold ``k`` is the test set of the ``k``-th
    cross-validation round and the other three are its training set. The score is the sum of
    the sub-scores (6..30); ``judge_scores`` are the 6 sub-scores. Clips are ``num_frames``
    frames spread uniformly over the trial (160, as in the reference).

    Args:
        root: dataset folder.
        split: ``"train"`` or ``"test"``.
        fold: cross-validation round, 0..3.
        task: ``"Knot_Tying"``, ``"Needle_Passing"``, ``"Suturing"``, a list of them, or
            ``None`` for all three.
        view: camera (1 = left, the view the reference uses).
        layout: ``"auto"``, ``"videos"`` or ``"frames"``.
        labels, splits: override the annotation paths.
        num_frames, frame_size, crop_size, hflip: see :class:`ClipDataset`; ``**kwargs``: its :class:`ClipOptions`.

    Example:
        >>> test = vidio.JIGSAWS("data/JIGSAWS", "test", fold=2, task="Suturing")  # doctest: +SKIP
        >>> test[0]["judge_scores"]  # doctest: +SKIP
        tensor([4., 4., 3., 4., 3., 4.])
    """

    TASKS = ("Knot_Tying", "Needle_Passing", "Suturing")

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        *,
        fold: int = 0,
        task: str | Sequence[str] | None = None,
        view: int = 1,
        layout: str = "auto",
        labels: str | os.PathLike | None = None,
        splits: str | os.PathLike | None = None,
        num_frames: int = 160,
        frame_size: tuple[int, int] | None = None,
        crop_size: int | Sequence[int] | None = 224,
        hflip: bool = False,
        **kwargs: Unpack[ClipOptions],
    ):
        root = os.fspath(root)
        _check_split("JIGSAWS", split, ("train", "test"))
        labels = labels or _first_existing(
            "JIGSAWS", [os.path.join(root, "label.pkl"), os.path.join(root, "info", "label.pkl")], "label.pkl"
        )
        splits = splits or _first_existing(
            "JIGSAWS",
            [os.path.join(root, "splits.pkl"), os.path.join(root, "info", "splits.pkl")],
            "splits.pkl",
        )
        frames = os.path.join(root, "frames")
        if layout == "auto":
            layout = "frames" if os.path.isdir(frames) else "videos"
        if layout not in ("videos", "frames"):
            raise DatasetError(f"JIGSAWS: layout must be 'auto', 'videos' or 'frames', not {layout!r}")
        scores, folds = load_pickle(labels), load_pickle(splits)
        tasks = _jigsaws_tasks(task, folds, splits)
        shared = _video_index(os.path.join(root, "videos")) if layout == "videos" else {}
        records = []
        for name in tasks:
            rounds = folds[name]
            if not 0 <= fold < len(rounds):
                raise DatasetError(f"JIGSAWS: fold must be in 0..{len(rounds) - 1}, got {fold}")
            chosen = [rounds[fold]] if split == "test" else [r for k, r in enumerate(rounds) if k != fold]
            folder = (
                {**_video_index(os.path.join(root, name, "video")), **shared} if layout == "videos" else {}
            )
            for trial in (t for group in chosen for t in group):
                if trial not in scores:
                    raise DatasetError(
                        f"JIGSAWS: '{splits}' lists trial {trial!r}, which '{labels}' does not score"
                    )
                clip = f"{trial}_capture{view}"
                source = (
                    os.path.join(frames, clip)
                    if layout == "frames"
                    else folder.get(clip, os.path.join(root, name, "video", clip + ".avi"))
                )
                subs = tuple(float(s) for s in scores[trial])
                records.append(
                    ClipRecord(id=trial, source=source, score=sum(subs), judge_scores=subs, action=name)
                )
        self.fold, self.tasks, self.layout = fold, tasks, layout
        super().__init__(
            records,
            sampler=kwargs.pop("sampler", None) or UniformSampler(num_frames),
            train=split == "train",
            score_range=(6.0, 30.0),
            judge_range=(1.0, 5.0),
            frame_size=frame_size,
            crop_size=crop_size,
            hflip=hflip,
            layout_hint="'<root>/<Task>/video/<trial>_capture1.avi' or '<root>/frames/<trial>_capture1/'",
            **kwargs,
        )


def _jigsaws_tasks(task: str | Sequence[str] | None, folds: Any, source: str) -> list[str]:
    if not isinstance(folds, dict):
        raise DatasetError(f"'{source}' is not a JIGSAWS splits dict (task -> folds)")
    tasks = (
        [t for t in JIGSAWS.TASKS if t in folds]
        if task is None
        else [task]
        if isinstance(task, str)
        else list(task)
    )
    unknown = [t for t in tasks if t not in folds]
    if unknown:
        raise DatasetError(f"JIGSAWS: unknown task(s) {unknown}; '{source}' has {sorted(folds)}")
    return tasks


class AQA7(ClipDataset):
    """AQA-7 (Parmar & Morris, WACV 2019): six actions, one score per sample.

    Layout under ``root`` (the released AQA-7.zip)::

        Split_4/split_4_train_list.mat, Split_4/split_4_test_list.mat
                                   rows (action 1..6, sample number, score)
        Actions/diving/001.avi ...  per-action video folders ("videos"), or
        frames/diving-out/001/img_00001.jpg ...  frame folders ("frames"; ``<action>-out``
                                   directly under ``root`` works too)

    Actions 1..6 are diving, gym_vault, ski_big_air, snowboard_big_air, sync_diving_3m and
    sync_diving_10m. Items carry ``action``. ``score_range`` spans the scores of the chosen
    actions in both splits; ``action_score_ranges`` gives each action's. Reading the
    ``.mat`` files needs scipy (``pip install 'localkit-vidio[aqa7]'``).

    Args:
        root: dataset folder.
        split: ``"train"`` or ``"test"``.
        actions: action names (or numbers 1..6) to include; ``None`` for all six.
        layout: ``"auto"``, ``"videos"`` or ``"frames"``.
        num_frames: frames spread uniformly over each sample (103).
        frame_size, crop_size, hflip: see :class:`ClipDataset`; ``**kwargs``: its :class:`ClipOptions`.

    Example:
        >>> dives = vidio.AQA7("data/AQA-7", "train", actions=["diving"])  # doctest: +SKIP
    """

    ACTIONS = ("diving", "gym_vault", "ski_big_air", "snowboard_big_air", "sync_diving_3m", "sync_diving_10m")

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        *,
        actions: Sequence[str | int] | str | None = None,
        layout: str = "auto",
        num_frames: int = 103,
        frame_size: tuple[int, int] | None = None,
        crop_size: int | Sequence[int] | None = 224,
        hflip: bool = True,
        **kwargs: Unpack[ClipOptions],
    ):
        root = os.fspath(root)
        _check_split("AQA-7", split, ("train", "test"))
        chosen = _aqa7_actions(actions)
        rows = {s: _read_aqa7_split(root, s) for s in ("train", "test")}
        videos, frames = os.path.join(root, "Actions"), os.path.join(root, "frames")
        if layout == "auto":
            layout = "videos" if os.path.isdir(videos) else "frames"
        if layout not in ("videos", "frames"):
            raise DatasetError(f"AQA-7: layout must be 'auto', 'videos' or 'frames', not {layout!r}")
        frames = frames if os.path.isdir(frames) else root
        indexes = {a: _video_index(os.path.join(videos, a)) for a in chosen} if layout == "videos" else {}
        records = []
        for number, sample, score in rows[split]:
            action = self.ACTIONS[number - 1]
            if action not in chosen:
                continue
            name = f"{sample:03d}"
            source = (
                indexes[action].get(name, os.path.join(videos, action, name + ".avi"))
                if layout == "videos"
                else os.path.join(frames, f"{action}-out", name)
            )
            records.append(ClipRecord(id=f"{action}_{name}", source=source, score=score, action=action))
        ranges = {}
        for action in chosen:
            scores = [s for part in rows.values() for n, _, s in part if self.ACTIONS[n - 1] == action]
            if scores:
                ranges[action] = (min(scores), max(scores))
        self.action_score_ranges = ranges
        self.layout = layout
        low = min((r[0] for r in ranges.values()), default=0.0)
        high = max((r[1] for r in ranges.values()), default=0.0)
        super().__init__(
            records,
            sampler=kwargs.pop("sampler", None) or UniformSampler(num_frames),
            train=split == "train",
            score_range=(low, high),
            frame_size=frame_size,
            crop_size=crop_size,
            hflip=hflip,
            layout_hint="'<root>/Actions/<action>/NNN.avi' or '<root>/frames/<action>-out/NNN/'",
            **kwargs,
        )


def _aqa7_actions(actions: Sequence[str | int] | str | None) -> list[str]:
    if actions is None:
        return list(AQA7.ACTIONS)
    chosen = []
    for action in [actions] if isinstance(actions, (str, int)) else actions:
        if isinstance(action, int) and 1 <= action <= len(AQA7.ACTIONS):
            chosen.append(AQA7.ACTIONS[action - 1])
        elif action in AQA7.ACTIONS:
            chosen.append(action)
        else:
            raise DatasetError(f"AQA-7 has no action {action!r}; choose from {AQA7.ACTIONS} or 1..6")
    return chosen


def _read_aqa7_split(root: str, split: str) -> list[tuple[int, int, float]]:
    path = os.path.join(root, "Split_4", f"split_4_{split}_list.mat")
    if not os.path.exists(path):
        raise DatasetError(f"AQA-7: '{path}' does not exist; point root at the unpacked AQA-7 folder")
    try:
        from scipy.io import loadmat
    except ImportError as exc:
        raise ImportError(
            f"reading AQA-7's '{path}' needs scipy: pip install 'localkit-vidio[aqa7]'"
        ) from exc
    try:
        table = np.asarray(loadmat(path)[f"consolidated_{split}_list"], dtype=np.float64)
    except Exception as exc:  # scipy raises several types for damaged or unexpected files
        raise DatasetError(f"AQA-7: cannot read '{path}' ({type(exc).__name__}: {exc})") from exc
    if table.ndim != 2 or table.shape[1] < 3:
        raise DatasetError(
            f"AQA-7: '{path}' should hold rows (action, sample, score), got shape {table.shape}"
        )
    rows = []
    for action, sample, score in table[:, :3]:
        if not 1 <= action <= len(AQA7.ACTIONS):
            raise DatasetError(f"AQA-7: '{path}' has action number {action}, expected 1..6")
        rows.append((int(action), int(sample), float(score)))
    return rows


class CSVDataset(ClipDataset):
    """Any scored video dataset, described by a CSV manifest: bring your own data without code.

    ``root`` is a CSV file, or a folder holding ``<split>.csv``. Columns (header row):

    ============== ======== =========================================================
    ``path``       required video file or frame folder, relative to the CSV's folder
    ``score``      required final score
    ``judge_1`` .. optional per-judge scores (any number, the same for every row)
    ``difficulty`` optional degree of difficulty
    ``start``      optional first frame of the sample (0-based, default 0)
    ``end``        optional one past its last frame (default: end of the video)
    ``id``         optional identity (default: ``path`` without extension, plus the range)
    ``action``     optional action name (items then carry ``action``)
    ``split``      optional; with a single CSV file, rows whose ``split`` differs are skipped
    ============== ======== =========================================================

    Args:
        root: the CSV file or the folder of ``<split>.csv`` files.
        split: the split to load.
        num_frames: frames spread uniformly over each sample (when no ``sampler`` is given).
        score_range, judge_range: defaults are the min and max found in the manifest.
        frame_size, crop_size, hflip: see :class:`ClipDataset`; ``**kwargs``: its :class:`ClipOptions`.

    Example:
        >>> data = vidio.CSVDataset("my_scores.csv", "train", num_frames=32)  # doctest: +SKIP
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str,
        *,
        num_frames: int = 16,
        score_range: tuple[float, float] | None = None,
        judge_range: tuple[float, float] | None = None,
        frame_size: tuple[int, int] | None = None,
        crop_size: int | Sequence[int] | None = 224,
        hflip: bool = False,
        **kwargs: Unpack[ClipOptions],
    ):
        root = os.fspath(root)
        manifest = os.path.join(root, f"{split}.csv") if os.path.isdir(root) else root
        rows = _read_manifest(manifest)
        base = os.path.dirname(os.path.abspath(manifest))
        in_split = [row.get("split", split) == split for _, row in rows]
        if not any(in_split):
            raise DatasetError(f"'{manifest}' has no rows for split {split!r}")
        all_records = [_csv_record(row, line, base, manifest) for line, row in rows]
        records = [r for r, keep in zip(all_records, in_split) if keep]
        scores = [r.score for r in all_records]
        judges = [s for r in all_records for s in (r.judge_scores or ())]
        self.manifest = manifest
        super().__init__(
            records,
            sampler=kwargs.pop("sampler", None) or UniformSampler(num_frames),
            train=split == "train",
            score_range=score_range or (min(scores), max(scores)),
            judge_range=judge_range or ((min(judges), max(judges)) if judges else None),
            frame_size=frame_size,
            crop_size=crop_size,
            hflip=hflip,
            layout_hint=f"paths relative to '{base}'",
            **kwargs,
        )


def _read_manifest(path: str) -> list[tuple[int, dict[str, str]]]:
    try:
        with open(path, newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            rows = [
                (line, {k.strip(): (v or "").strip() for k, v in row.items() if k})
                for line, row in enumerate(reader, 2)
            ]
            columns = {c.strip() for c in reader.fieldnames or ()}
    except FileNotFoundError:
        raise DatasetError(f"CSV manifest '{path}' does not exist") from None
    missing = {"path", "score"} - columns
    if missing:
        raise DatasetError(
            f"CSV manifest '{path}' lacks the column(s) {sorted(missing)}; it has {sorted(columns)}"
        )
    return rows


def _number(row: dict[str, str], column: str, line: int, manifest: str, kind: type = float) -> Any:
    text = row.get(column, "")
    if text == "":
        return None
    try:
        return kind(text)
    except ValueError:
        raise DatasetError(
            f"'{manifest}' line {line}: column '{column}' should be a number, got {text!r}"
        ) from None


def _csv_record(row: dict[str, str], line: int, base: str, manifest: str) -> ClipRecord:
    if not row.get("path"):
        raise DatasetError(f"'{manifest}' line {line}: empty 'path'")
    score = _number(row, "score", line, manifest)
    if score is None:
        raise DatasetError(f"'{manifest}' line {line}: empty 'score'")
    judge_columns = sorted(
        (c for c in row if c.startswith("judge_") and c[6:].isdigit()), key=lambda c: int(c[6:])
    )
    judges = tuple(_number(row, c, line, manifest) for c in judge_columns)
    if any(j is None for j in judges):
        raise DatasetError(f"'{manifest}' line {line}: every judge_* column needs a value")
    start = _number(row, "start", line, manifest, int) or 0
    stop = _number(row, "end", line, manifest, int)
    path = os.path.join(base, row["path"])
    ident = row.get("id") or os.path.splitext(row["path"])[0] + (
        f"_{start}-{stop}" if row.get("start") or row.get("end") else ""
    )
    return ClipRecord(
        id=ident,
        source=path,
        score=score,
        start=start,
        stop=stop,
        judge_scores=judges or None,
        difficulty=_number(row, "difficulty", line, manifest),
        action=row.get("action") or None,
    )
