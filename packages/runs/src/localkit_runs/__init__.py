"""localkit-runs: the run folder that every localkit trainer shares.

Standard library only, so that splitnet and scoredist write runs the same way and raise
the same errors without importing each other:

- :func:`atomic_write`, :func:`write_text`, :func:`write_json`: files replaced all or
  nothing; a failed write is a :class:`RunFolderError` naming the folder and the cause.
- :class:`RunLock`: one run per folder (``run.lock`` names the holder's pid and host).
- :func:`record_metrics` / :func:`read_metrics`: ``metrics.jsonl`` never holds an epoch twice.
- :func:`read_checkpoint`: an empty, truncated or corrupt checkpoint is a
  :class:`CheckpointError` naming the file and the fix.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> run = Path(tempfile.mkdtemp()) / "run"
    >>> with RunLock(run):
    ...     record_metrics(run, {"epoch": 0, "split": "test", "spearman": 0.91})
    >>> read_metrics(run)
    [{'epoch': 0, 'split': 'test', 'spearman': 0.91}]
"""

from ._checkpoint import read_checkpoint
from ._errors import CheckpointError, RunError, RunFolderError
from ._files import atomic_write, folder_error, make_folder, write_json, write_text
from ._lock import LOCK_NAME, RunLock, process_exists
from ._metrics import METRICS_NAME, read_metrics, record_metrics

__version__ = "0.1.0"

__all__ = [
    "LOCK_NAME",
    "METRICS_NAME",
    "CheckpointError",
    "RunError",
    "RunFolderError",
    "RunLock",
    "atomic_write",
    "folder_error",
    "make_folder",
    "process_exists",
    "read_checkpoint",
    "read_metrics",
    "record_metrics",
    "write_json",
    "__version__",
    "write_text",
]
