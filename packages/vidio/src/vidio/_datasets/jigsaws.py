"""JIGSAWS (Gao et al., 2014): robotic surgery trials scored on six skills, four cross-validation folds."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from .._errors import DatasetError
from .._safepickle import load_pickle
from .._sampling import UniformSampler
from .base import ClipDataset, ClipOptions, ClipRecord, check_split, first_existing, require_root, video_index
from .checks import integer, numbers

if sys.version_info >= (3, 11):
    from typing import Unpack
else:
    from typing_extensions import Unpack


HOW_TO_GET = (
    "JIGSAWS cannot be downloaded automatically: it is released after filling in the registration "
    "form at https://cirl.lcsr.jhu.edu/research/hmm/datasets/jigsaws_release/. Unpack it and pass that "
    "folder as the root."
)
SUB_SCORES = 6
SUB_SCORE_RANGE = (1.0, 5.0)
EXPECTED_LABELS = "a dict trial name -> 6 sub-scores (numbers 1..5)"
EXPECTED_SPLITS = "a dict task -> list of folds, each a list of trial names"


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
        check_split("JIGSAWS", split, ("train", "test"))
        require_root("JIGSAWS", root, HOW_TO_GET)
        view = integer(view, where="JIGSAWS", what="view", low=1)
        labels = (
            os.fspath(labels)
            if labels
            else first_existing(
                "JIGSAWS",
                [os.path.join(root, "label.pkl"), os.path.join(root, "info", "label.pkl")],
                "label.pkl",
                HOW_TO_GET,
            )
        )
        splits = (
            os.fspath(splits)
            if splits
            else first_existing(
                "JIGSAWS",
                [os.path.join(root, "splits.pkl"), os.path.join(root, "info", "splits.pkl")],
                "splits.pkl",
                HOW_TO_GET,
            )
        )
        frames = os.path.join(root, "frames")
        if layout == "auto":
            layout = "frames" if os.path.isdir(frames) else "videos"
        if layout not in ("videos", "frames"):
            raise DatasetError(f"JIGSAWS: layout must be 'auto', 'videos' or 'frames', not {layout!r}")
        scores = _read_labels(load_pickle(labels), labels)
        folds = _read_splits(load_pickle(splits), splits)
        tasks = _jigsaws_tasks(task, folds, splits)
        shared = video_index(os.path.join(root, "videos")) if layout == "videos" else {}
        records = []
        for name in tasks:
            rounds = folds[name]
            if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < len(rounds):
                raise DatasetError(f"JIGSAWS: fold must be an integer in 0..{len(rounds) - 1}, got {fold!r}")
            chosen = [rounds[fold]] if split == "test" else [r for k, r in enumerate(rounds) if k != fold]
            folder = (
                {**video_index(os.path.join(root, name, "video")), **shared} if layout == "videos" else {}
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
                subs = scores[trial]
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


def _read_labels(table: Any, path: str) -> dict[str, tuple[float, ...]]:
    if not isinstance(table, dict):
        raise DatasetError(f"JIGSAWS: '{path}' should hold {EXPECTED_LABELS}, got a {type(table).__name__}")
    scores = {}
    for trial, subs in table.items():
        if not isinstance(trial, str):
            raise DatasetError(f"JIGSAWS: '{path}' has the key {trial!r}; it should hold {EXPECTED_LABELS}")
        scores[trial] = numbers(
            subs,
            where=f"JIGSAWS: '{path}' trial '{trial}'",
            what="the sub-scores",
            low=SUB_SCORE_RANGE[0],
            high=SUB_SCORE_RANGE[1],
            length=SUB_SCORES,
        )
    return scores


def _read_splits(folds: Any, path: str) -> dict[str, list[list[str]]]:
    if not isinstance(folds, dict):
        raise DatasetError(f"JIGSAWS: '{path}' should hold {EXPECTED_SPLITS}, got a {type(folds).__name__}")
    checked = {}
    for task, rounds in folds.items():
        where = f"JIGSAWS: '{path}' task {task!r}"
        if (
            not isinstance(task, str)
            or not isinstance(rounds, (list, tuple))
            or not all(isinstance(r, (list, tuple)) and all(isinstance(t, str) for t in r) for r in rounds)
        ):
            raise DatasetError(f"{where}: the file should hold {EXPECTED_SPLITS}")
        seen: dict[str, int] = {}
        for k, group in enumerate(rounds):
            for trial in group:
                if trial in seen:
                    raise DatasetError(f"{where}: trial '{trial}' is in fold {seen[trial]} and fold {k}")
                seen[trial] = k
        checked[task] = [list(r) for r in rounds]
    return checked


def _jigsaws_tasks(
    task: str | Sequence[str] | None, folds: dict[str, list[list[str]]], source: str
) -> list[str]:
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
