"""Any scored video dataset, described by a CSV manifest: bring your own data without code."""

from __future__ import annotations

import csv
import os
import re
import sys
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from .. import _files
from .._errors import DatasetError
from .._sampling import UniformSampler
from .base import ClipDataset, ClipOptions, ClipRecord
from .checks import integer, number

if sys.version_info >= (3, 11):
    from typing import Unpack
else:
    from typing_extensions import Unpack

# A manifest line is a few hundred bytes; a longer one means the file is not a manifest.
MAX_LINE_BYTES = 2**20
_BOM = b"\xef\xbb\xbf"
# What a number in a cell may look like: no "nan", "inf", "1_000", "0x10" or locale commas.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


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

    The file is UTF-8 text (a byte-order mark, as spreadsheet programs write, is fine). Every
    row must have as many fields as the header, column names must be unique, numbers must be
    written as plain decimals (no ``nan``, ``inf`` or ``1_000``), frames as integers; a
    value that breaks a rule is an error naming the file and the line.

    Args:
        root: the CSV file or the folder of ``<split>.csv`` files.
        split: the split to load.
        num_frames: frames spread uniformly over each sample (when no ``sampler`` is given).
        score_range, judge_range: defaults are the min and max of this split's rows (another
            split's scores never set them); when given, every score (judge score) of the
            manifest must lie within.
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
        all_records = [
            _csv_record(row, f"'{manifest}' line {line}", base, score_range, judge_range)
            for line, row in rows
        ]
        records = [r for r, keep in zip(all_records, in_split) if keep]
        # ranges from this split's rows only: another split's scores never size its bins
        scores = [r.score for r in records]
        judges = [s for r in records for s in (r.judge_scores or ())]
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
        file = _files.open_regular(path)
    except _files.PathProblem as exc:
        if exc.missing:
            raise DatasetError(f"CSV manifest '{path}' does not exist") from None
        raise DatasetError(f"CSV manifest '{path}' cannot be read: {exc.reason}") from None
    with file:
        reader = csv.reader(_text_lines(file, path))
        try:
            header = next(reader, None)
            if header is None:
                raise DatasetError(f"CSV manifest '{path}' is empty; its first line should name the columns")
            columns = _columns(header, path)
            rows = []
            for fields in reader:
                if not fields:
                    continue
                where = f"'{path}' line {reader.line_num}"
                if len(fields) != len(columns):
                    raise DatasetError(f"{where} has {len(fields)} fields, the header has {len(columns)}")
                row = {}
                for column, value in zip(columns, fields):
                    if column:
                        row[column] = value.strip()
                    elif value.strip():
                        raise DatasetError(
                            f"{where} has the value {value.strip()!r} in a column without a name"
                        )
                rows.append((reader.line_num, row))
        except csv.Error as exc:
            raise DatasetError(f"CSV manifest '{path}' line {reader.line_num}: {exc}") from None
    missing = {"path", "score"} - set(columns)
    if missing:
        raise DatasetError(
            f"CSV manifest '{path}' lacks the column(s) {sorted(missing)}; it has {sorted(c for c in columns if c)}"
        )
    return rows


def _text_lines(file: BinaryIO, path: str) -> Iterator[str]:
    """The file's lines as text, each decoded on its own so that an encoding error names its line."""
    for line, raw in enumerate(iter(lambda: file.readline(MAX_LINE_BYTES + 1), b""), 1):
        if len(raw) > MAX_LINE_BYTES:
            raise DatasetError(f"CSV manifest '{path}' line {line} is longer than {MAX_LINE_BYTES} bytes")
        if line == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DatasetError(
                f"CSV manifest '{path}' line {line} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                f"column {exc.start + 1}); save the manifest as UTF-8"
            ) from None


def _columns(header: list[str], path: str) -> list[str]:
    columns = [c.strip() for c in header]
    first: dict[str, int] = {}
    for position, column in enumerate(columns, 1):
        if column in first:
            raise DatasetError(
                f"CSV manifest '{path}' line 1: the column '{column}' appears twice (columns {first[column]} "
                f"and {position}); each column needs its own name"
            )
        if column:
            first[column] = position
    return columns


def _cell(row: dict[str, str], column: str, where: str) -> float | None:
    """The number in ``column``, or None when the cell is empty or the column absent."""
    text = row.get(column, "")
    if text == "":
        return None
    if not _NUMBER.fullmatch(text):
        raise DatasetError(f"{where}: column '{column}' should be a number, got {text!r}")
    return float(text)


def _csv_record(
    row: dict[str, str],
    where: str,
    base: str,
    score_range: tuple[float, float] | None,
    judge_range: tuple[float, float] | None,
) -> ClipRecord:
    if not row.get("path"):
        raise DatasetError(f"{where}: empty 'path'")
    score = _cell(row, "score", where)
    if score is None:
        raise DatasetError(f"{where}: empty 'score'")
    low, high = score_range or (None, None)
    score = number(score, where=where, what="column 'score'", low=low, high=high)
    judge_columns = sorted(
        (c for c in row if c.startswith("judge_") and c[6:].isdigit()), key=lambda c: int(c[6:])
    )
    low, high = judge_range or (None, None)
    judges = []
    for column in judge_columns:
        value = _cell(row, column, where)
        if value is None:
            raise DatasetError(f"{where}: every judge_* column needs a value ('{column}' is empty)")
        judges.append(number(value, where=where, what=f"column '{column}'", low=low, high=high))
    difficulty = _cell(row, "difficulty", where)
    if difficulty is not None and not number(difficulty, where=where, what="column 'difficulty'") > 0:
        raise DatasetError(
            f"{where}: column 'difficulty' should be a positive number, got {row['difficulty']!r}"
        )
    start = _cell(row, "start", where)
    start = 0 if start is None else integer(start, where=where, what="column 'start' (first frame)", low=0)
    stop = _cell(row, "end", where)
    if stop is not None:
        stop = integer(
            stop, where=where, what="column 'end' (one past the last frame, after start)", low=start + 1
        )
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
        judge_scores=tuple(judges) or None,
        difficulty=difficulty,
        action=row.get("action") or None,
    )
