"""MTL-AQA (Parmar & Morris, CVPR 2019): Olympic dives with seven judges' scores and difficulty."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from .._errors import DatasetError
from .._safepickle import load_pickle
from .._sampling import ClipSampler, RandomShift, SegmentSampler
from .base import ClipDataset, ClipOptions, ClipRecord, check_split, first_existing, require_root, video_index
from .checks import integer, number, numbers

if sys.version_info >= (3, 11):
    from typing import Unpack
else:
    from typing_extensions import Unpack


HOW_TO_GET = (
    "MTL-AQA has no download: its annotations and the YouTube links of the source videos are at "
    "https://github.com/ParitoshParmar/MTL-AQA (MTL-AQA_dataset_release); fetch and cut the videos "
    "yourself, or use MUSDL's prepared frames (https://github.com/nzl-thu/MUSDL#mtl-aqa-dataset)"
)
SCORE_RANGE = (0.0, 104.5)
JUDGE_RANGE = (0.0, 10.0)
# Wider than any diving table; MTL-AQA's own degrees of difficulty span 1.5 .. 4.1.
DIFFICULTY_RANGE = (1.0, 5.0)
EXPECTED_ENTRY = (
    "a dict with final_score (0..104.5), difficulty (1..5), judge_scores (a flat array of the judges' "
    "scores, 0..10) and, for videos, start_frame and end_frame (1-based frame numbers)"
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

    Every annotation is checked when the dataset is built: scores in 0..104.5, judge scores
    in 0..10, difficulty in 1..5, integer ids and frame numbers. The real annotations have one
    impossible judge score, 45.0 in dive ``04_49`` (of the training split), which stops the
    load with an error naming it: leave that dive out with ``exclude=["04_49"]`` (or correct
    the file).

    Args:
        root: dataset folder.
        split: ``"train"`` or ``"test"``.
        layout: ``"auto"``, ``"videos"`` or ``"frames"``.
        annotations, split_file, videos, frames: override the paths above.
        exclude: ids of dives to leave out (``"04_49"``, or a list), each annotated in the file.
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
        exclude: str | Sequence[str] | None = None,
        frame_size: tuple[int, int] | None = (256, 455),
        crop_size: int | Sequence[int] | None = 224,
        hflip: bool = True,
        **kwargs: Unpack[ClipOptions],
    ):
        root = os.fspath(root)
        check_split("MTL-AQA", split, ("train", "test"))
        require_root("MTL-AQA", root, HOW_TO_GET)
        info = os.path.join(root, "info")
        annotations = (
            os.fspath(annotations)
            if annotations
            else first_existing(
                "MTL-AQA",
                [
                    os.path.join(info, "augmented_final_annotations_dict.pkl"),
                    os.path.join(info, "final_annotations_dict.pkl"),
                ],
                "annotation pickle",
                HOW_TO_GET,
            )
        )
        split_file = os.fspath(split_file or os.path.join(info, f"{split}_split_0.pkl"))
        videos = os.fspath(videos or os.path.join(root, "videos"))
        frames = os.fspath(frames or os.path.join(root, "frames"))
        layout = _pick_layout("MTL-AQA", layout, root, videos, frames)
        table = load_pickle(annotations)
        keys = load_pickle(split_file)
        records = _mtl_aqa_records(table, keys, layout, videos, frames, annotations, split_file, exclude)
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
            score_range=SCORE_RANGE,
            judge_range=JUDGE_RANGE,
            frame_size=frame_size,
            crop_size=crop_size,
            hflip=hflip,
            layout_hint=f"'{videos}/NN.mp4' (one per competition video)"
            if layout == "videos"
            else f"'{frames}/NN_MM/' (one folder of frames per dive)",
            **kwargs,
        )


def _mtl_aqa_records(
    table: Any,
    keys: Any,
    layout: str,
    videos: str,
    frames: str,
    annotations: str,
    split_file: str,
    exclude: str | Sequence[str] | None,
) -> list[ClipRecord]:
    if not isinstance(table, dict):
        raise DatasetError(
            f"MTL-AQA: '{annotations}' should hold a dict (video, dive) -> annotation, got a {type(table).__name__}"
        )
    if not isinstance(keys, (list, tuple)):
        raise DatasetError(
            f"MTL-AQA: '{split_file}' should hold a list of (video, dive) keys, got a {type(keys).__name__}"
        )
    annotated = {_dive_id(key, f"MTL-AQA: '{annotations}' key {key!r}"): key for key in table}
    left_out = _excluded(exclude, annotated, annotations)
    index = video_index(videos) if layout == "videos" else {}
    records, seen = [], set()
    for position, key in enumerate(keys):
        ident = _dive_id(key, f"MTL-AQA: '{split_file}' item {position + 1} ({key!r})")
        if ident in seen:
            raise DatasetError(f"MTL-AQA: '{split_file}' lists dive {ident} twice")
        seen.add(ident)
        if ident not in annotated:
            raise DatasetError(
                f"MTL-AQA: '{split_file}' lists dive {ident}, which '{annotations}' does not annotate"
            )
        if ident in left_out:
            continue
        entry = table[annotated[ident]]
        records.append(
            _dive_record(
                ident, entry, layout, index, videos, frames, f"MTL-AQA: '{annotations}' dive '{ident}'"
            )
        )
    return records


def _dive_id(key: Any, where: str) -> str:
    if not isinstance(key, tuple) or len(key) != 2:
        raise DatasetError(f"{where}: a dive is keyed by a (video, dive) tuple of two integers")
    video = integer(key[0], where=where, what="the video number", low=0)
    dive = integer(key[1], where=where, what="the dive number", low=0)
    return f"{video:02d}_{dive:02d}"


def _excluded(exclude: str | Sequence[str] | None, annotated: dict[str, Any], annotations: str) -> set[str]:
    names = [exclude] if isinstance(exclude, str) else list(exclude or ())
    for name in names:
        if name not in annotated:
            raise DatasetError(
                f"MTL-AQA: exclude names dive {name!r}, which '{annotations}' does not annotate "
                "(ids are '<video>_<dive>', e.g. '04_49')"
            )
    return set(names)


def _dive_record(
    ident: str, entry: Any, layout: str, index: dict[str, str], videos: str, frames: str, where: str
) -> ClipRecord:
    needed = ("final_score", "difficulty", "judge_scores") + (
        ("start_frame", "end_frame") if layout == "videos" else ()
    )
    if not isinstance(entry, dict):
        raise DatasetError(
            f"{where}: the annotation should be {EXPECTED_ENTRY}, got a {type(entry).__name__}"
        )
    missing = [k for k in needed if k not in entry]
    if missing:
        raise DatasetError(
            f"{where}: the annotation lacks {', '.join(missing)}; it should be {EXPECTED_ENTRY}"
        )
    fix = f"correct the annotation or leave the dive out with exclude=['{ident}']"
    judges = numbers(
        entry["judge_scores"],
        where=where,
        what="judge_scores",
        low=JUDGE_RANGE[0],
        high=JUDGE_RANGE[1],
        fix=fix,
    )
    score = number(
        entry["final_score"],
        where=where,
        what="final_score",
        low=SCORE_RANGE[0],
        high=SCORE_RANGE[1],
        fix=fix,
    )
    difficulty = number(
        entry["difficulty"],
        where=where,
        what="difficulty",
        low=DIFFICULTY_RANGE[0],
        high=DIFFICULTY_RANGE[1],
        fix=fix,
    )
    if layout == "videos":
        video = ident.split("_")[0]
        path = index.get(video, os.path.join(videos, f"{video}.mp4"))
        first = integer(entry["start_frame"], where=where, what="start_frame (1-based)", low=1, fix=fix)
        start, stop = (
            first - 1,
            integer(
                entry["end_frame"],
                where=where,
                what="end_frame (1-based, not before start_frame)",
                low=first,
                fix=fix,
            ),
        )
    else:
        path, start, stop = os.path.join(frames, ident), 0, None
    return ClipRecord(
        id=ident, source=path, score=score, start=start, stop=stop, judge_scores=judges, difficulty=difficulty
    )


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
