"""The run folder on disk: one run at a time, atomic files, and errors that name the folder.

Every file of a run is written to a temporary name, flushed to disk and renamed over the
old one, so a crash or a failed write (disk full, read-only file system, no permission)
leaves the previous version intact and no temporary file behind; the error names the
folder and the cause. ``run.lock`` names the process that trains in the folder (pid and
host); a second run refuses to start, and a lock left by a process of this host that no
longer exists is taken over with a warning.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ._errors import RunFolderError

LOCK_NAME = "run.lock"
METRICS_NAME = "metrics.jsonl"

logger = logging.getLogger(__name__)

_CAUSES = {
    errno.ENOSPC: "the disk is full (no space left on device): free some space, then continue with --resume",
    errno.EDQUOT: "the disk quota is exceeded: free some space, then continue with --resume",
    errno.EROFS: "the file system is read-only: choose another --out",
    errno.EACCES: "permission denied: make the folder writable or choose another --out",
    errno.EPERM: "operation not permitted: make the folder writable or choose another --out",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another --out",
    errno.EEXIST: "it exists and is not a folder: choose another --out",
}


def folder_error(folder: Path, doing: str, exc: OSError) -> RunFolderError:
    """A :class:`RunFolderError` naming ``folder``, what failed and why."""
    cause = _CAUSES.get(exc.errno, exc.strerror or str(exc))
    return RunFolderError(f"run folder {folder}: cannot {doing}: {cause}")


def _os_error_in(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc``: torch.save reports a failed write as a RuntimeError."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def make_folder(folder: Path) -> None:
    """Create ``folder`` (and its parents), or say why it cannot be a run folder."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise folder_error(folder, "create it", exc) from exc


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through ``write(file)`` all or nothing.

    Raises:
        RunFolderError: the write failed (disk full, read-only, no permission); the old
            ``path`` is intact and the temporary file removed.
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        cause = _os_error_in(exc)
        if cause is None:
            raise
        raise folder_error(path.parent, f"write {path.name}", cause) from exc
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    # the rename itself reaches the disk only when the folder's entry is flushed
    if not hasattr(os, "O_DIRECTORY"):
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json(path: Path, data: dict) -> None:
    """``data`` as indented JSON, atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda f: f.write((json.dumps(data, indent=2, default=str) + "\n").encode()))


def record_metrics(folder: Path, metrics: dict) -> None:
    """Add the line of epoch ``metrics["epoch"]`` to metrics.jsonl, replacing that epoch's
    line and any later one: a run resumed from before an epoch it had logged logs it again."""
    path = folder / METRICS_NAME
    kept = []
    if path.exists():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            try:
                epoch = json.loads(line)["epoch"]
            except (ValueError, KeyError, TypeError) as exc:
                raise RunFolderError(
                    f"{path} line {number} is not a metrics record ({type(exc).__name__}: {exc}); "
                    "repair or delete that line"
                ) from exc
            if epoch < metrics["epoch"]:
                kept.append(line)
    kept.append(json.dumps(metrics))
    atomic_write(path, lambda f: f.write("".join(line + "\n" for line in kept).encode()))


def last_metrics(folder: Path) -> dict:
    """The last line of metrics.jsonl (``{}`` before the first epoch ends)."""
    path = folder / METRICS_NAME
    lines = path.read_text().splitlines() if path.exists() else []
    return json.loads(lines[-1]) if lines else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


class RunLock:
    """``run.lock`` in a run folder: held by one process from :meth:`acquire` to :meth:`release`.

    The file holds the holder's pid and host name as JSON.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.me = {"pid": os.getpid(), "host": socket.gethostname()}

    def acquire(self) -> RunLock:
        """Create the folder if needed and take the lock.

        Raises:
            RunFolderError: another run holds the lock, or the folder cannot be written.
        """
        make_folder(self.folder)
        holder = None
        for _ in range(3):
            if self._create():
                return self
            holder = self._holder()
            if holder == {}:  # released between our attempt and our look
                continue
            if holder is None or holder["host"] != self.me["host"] or _alive(holder["pid"]):
                break
            logger.warning(
                "%s was left by process %s on %s, which no longer runs; taking the run folder over",
                self.path,
                holder["pid"],
                holder["host"],
            )
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        who = (
            f"process {holder['pid']} on {holder['host']}"
            if holder
            else "a process whose lock file cannot be read"
        )
        raise RunFolderError(
            f"{self.folder} is in use by another run ({who}): wait for it to finish or choose "
            f"another --out. If that run no longer exists, delete {self.path}."
        )

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise folder_error(self.folder, f"create {LOCK_NAME}", exc) from exc
        try:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(self.me) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise folder_error(self.folder, f"write {LOCK_NAME}", exc) from exc
        return True

    def _holder(self) -> dict | None:
        try:
            holder = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return None
        valid = (
            isinstance(holder, dict)
            and isinstance(holder.get("pid"), int)
            and holder["pid"] > 0
            and isinstance(holder.get("host"), str)
        )
        return holder if valid else None

    def release(self) -> None:
        """Remove the lock if this process still holds it."""
        if self._holder() == self.me:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
