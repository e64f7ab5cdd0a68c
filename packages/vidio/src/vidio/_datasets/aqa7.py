"""AQA-7 (Parmar & Morris, WACV 2019): six actions, one score per sample, splits in ``.mat`` files."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import numpy as np

from .. import _files
from .._errors import DatasetError
from .._sampling import UniformSampler
from .base import ClipDataset, ClipOptions, ClipRecord, check_split, require_root, video_index
from .checks import integer, number

if sys.version_info >= (3, 11):
    from typing import Unpack
else:
    from typing_extensions import Unpack


HOW_TO_GET = (
    "AQA-7 is not downloaded automatically: it is one zip file, http://rtis.oit.unlv.edu/datasets/AQA-7.zip "
    "(listed at http://rtis.oit.unlv.edu/datasets.html), served over plain http with no published "
    "checksum. Download and unpack it yourself and pass that folder as the root."
)


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
    actions in this split only (the test split's scores never size the training split's
    bins); ``action_score_ranges`` gives each action's. Reading the
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
        check_split("AQA-7", split, ("train", "test"))
        require_root("AQA-7", root, HOW_TO_GET)
        chosen = _aqa7_actions(actions)
        rows = {s: _read_aqa7_split(root, s) for s in ("train", "test")}
        videos, frames = os.path.join(root, "Actions"), os.path.join(root, "frames")
        if layout == "auto":
            layout = "videos" if os.path.isdir(videos) else "frames"
        if layout not in ("videos", "frames"):
            raise DatasetError(f"AQA-7: layout must be 'auto', 'videos' or 'frames', not {layout!r}")
        frames = frames if os.path.isdir(frames) else root
        indexes = {a: video_index(os.path.join(videos, a)) for a in chosen} if layout == "videos" else {}
        records = []
        for action_number, sample, score in rows[split]:
            action = self.ACTIONS[action_number - 1]
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
            scores = [s for n, _, s in rows[split] if self.ACTIONS[n - 1] == action]
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
        if isinstance(action, int) and not isinstance(action, bool) and 1 <= action <= len(AQA7.ACTIONS):
            chosen.append(AQA7.ACTIONS[action - 1])
        elif action in AQA7.ACTIONS:
            chosen.append(action)
        else:
            raise DatasetError(f"AQA-7 has no action {action!r}; choose from {AQA7.ACTIONS} or 1..6")
    return chosen


def _read_aqa7_split(root: str, split: str) -> list[tuple[int, int, float]]:
    path = os.path.join(root, "Split_4", f"split_4_{split}_list.mat")
    variable = f"consolidated_{split}_list"
    expected = f"a variable '{variable}' of rows (action 1..6, sample number, score)"
    if not os.path.lexists(path):
        raise DatasetError(
            f"AQA-7: '{path}' does not exist; point root at the unpacked AQA-7 folder. {HOW_TO_GET}"
        )
    try:
        from scipy.io import loadmat
    except ImportError as exc:
        raise ImportError(
            f"reading AQA-7's '{path}' needs scipy: pip install 'localkit-vidio[aqa7]'"
        ) from exc
    try:
        with _files.open_regular(path) as file:
            content = loadmat(file)
    except _files.PathProblem as exc:
        raise DatasetError(f"AQA-7: '{path}' cannot be read: {exc.reason}") from None
    except Exception as exc:  # scipy raises several types for damaged or unexpected files
        raise DatasetError(f"AQA-7: cannot read '{path}' ({type(exc).__name__}: {exc})") from exc
    if variable not in content:
        found = sorted(k for k in content if not k.startswith("__"))
        raise DatasetError(f"AQA-7: '{path}' should hold {expected}; it holds {found}")
    table = content[variable]
    if (
        not isinstance(table, np.ndarray)
        or table.dtype.kind not in "iuf"
        or table.ndim != 2
        or table.shape[1] < 3
    ):
        shown = (
            f"{table.dtype} of shape {table.shape}" if isinstance(table, np.ndarray) else type(table).__name__
        )
        raise DatasetError(f"AQA-7: '{path}' should hold {expected}, got {shown}")
    rows, seen = [], {}
    for line, (action, sample, score) in enumerate(table[:, :3].tolist(), 1):
        where = f"AQA-7: '{path}' row {line}"
        action = integer(action, where=where, what="the action number", low=1)
        if action > len(AQA7.ACTIONS):
            raise DatasetError(f"{where}: the action number should be 1..6, got {action}")
        sample = integer(sample, where=where, what="the sample number", low=1)
        score = number(score, where=where, what="the score", low=0.0)
        if (action, sample) in seen:
            raise DatasetError(
                f"{where}: sample {sample} of action {action} is already in row {seen[action, sample]}"
            )
        seen[action, sample] = line
        rows.append((action, sample, score))
    return rows
