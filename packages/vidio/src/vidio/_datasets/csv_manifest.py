"""Any scored video dataset, described by a CSV manifest: bring your own data without code."""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Sequence
from typing import Any

from .._errors import DatasetError
from .._sampling import UniformSampler
from .base import ClipDataset, ClipOptions, ClipRecord

if sys.version_info >= (3, 11):
    from typing import Unpack
else:
    from typing_extensions import Unpack


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
