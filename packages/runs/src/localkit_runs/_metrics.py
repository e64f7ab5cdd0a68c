"""``metrics.jsonl``: one JSON line per record, every record tagged with its epoch."""

from __future__ import annotations

import json
from pathlib import Path

from ._errors import RunFolderError
from ._files import atomic_write

METRICS_NAME = "metrics.jsonl"


def read_metrics(folder: str | Path) -> list[dict]:
    """Every record of ``folder/metrics.jsonl`` (``[]`` before the first epoch ends).

    Raises:
        RunFolderError: a line is not a JSON object with an integer ``epoch`` (file and line named).
    """
    path = Path(folder) / METRICS_NAME
    records = []
    if not path.exists():
        return records
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            record = json.loads(line)
            valid = isinstance(record, dict) and type(record.get("epoch")) is int
        except ValueError as exc:
            raise RunFolderError(
                f"{path} line {number} is not a metrics record ({exc}); repair or delete that line"
            ) from exc
        if not valid:
            raise RunFolderError(
                f"{path} line {number} is not a metrics record (a JSON object with an integer "
                "'epoch'); repair or delete that line"
            )
        records.append(record)
    return records


def record_metrics(folder: str | Path, *records: dict) -> None:
    """Write one epoch's ``records`` to metrics.jsonl, replacing that epoch's lines and any
    later ones: a run resumed from before an epoch it had logged logs it again, so the file
    never holds an epoch twice. The file is rewritten atomically.

    Args:
        folder: the run folder.
        records: dicts that share one integer ``"epoch"`` (one per split, for example).

    Raises:
        ValueError: no record, or records of different epochs.
        RunFolderError: the file holds a line that is not a record, or cannot be written.

    Example:
        >>> import tempfile
        >>> run = Path(tempfile.mkdtemp())
        >>> for epoch in (0, 1, 1):
        ...     record_metrics(run, {"epoch": epoch, "loss": 1.0 / (epoch + 1)})
        >>> [r["epoch"] for r in read_metrics(run)]
        [0, 1]
    """
    epochs = {record.get("epoch") for record in records}
    if len(epochs) != 1 or type(next(iter(epochs))) is not int:
        raise ValueError(
            f"record_metrics takes the records of one epoch (integer 'epoch'), got epochs {epochs}"
        )
    epoch = epochs.pop()
    kept = [r for r in read_metrics(folder) if r["epoch"] < epoch] + list(records)
    text = "".join(json.dumps(r) + "\n" for r in kept)
    atomic_write(Path(folder) / METRICS_NAME, lambda f: f.write(text.encode("utf-8")))
