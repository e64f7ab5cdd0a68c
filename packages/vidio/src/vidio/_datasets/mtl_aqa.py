"""MTL-AQA (Parmar & Morris, CVPR 2019): Olympic dives with seven judges' scores and difficulty."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._errors import DatasetError
from .._safepickle import load_pickle
from .._sampling import ClipSampler, RandomShift, SegmentSampler
from .base import ClipDataset, ClipOptions, ClipRecord, check_split, first_existing, video_index

if sys.version_info >= (3, 11):
    from typing import Unpack
else:
    from typing_extensions import Unpack


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
        check_split("MTL-AQA", split, ("train", "test"))
        info = os.path.join(root, "info")
        annotations = annotations or first_existing(
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
    index = video_index(videos) if layout == "videos" else {}
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
