"""One run per folder: ``run.lock`` names the process that trains there."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from pathlib import Path

from ._errors import RunFolderError
from ._files import folder_error, make_folder

LOCK_NAME = "run.lock"

logger = logging.getLogger(__name__)


def process_exists(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs (a zombie, dead but not yet reaped by
    its parent, does not; another user's process does).

    Example:
        >>> process_exists(os.getpid())
        True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(pid, 0) succeeded


class RunLock:
    """``run.lock`` in a run folder, held by one process from :meth:`acquire` to :meth:`release`.

    The file holds the holder's pid and host name as JSON. A second run on the folder
    refuses to start; a lock left by a process of this host that no longer exists is taken
    over with a warning (a lock of another host is never guessed dead). Usable as a context
    manager.

    Args:
        folder: the run folder (created by :meth:`acquire` if missing).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp()) / "run"
        >>> with RunLock(folder):
        ...     RunLock(folder).acquire()
        Traceback (most recent call last):
        ...
        localkit_runs._errors.RunFolderError: .../run is in use by another run (process ... on ...): wait for it to finish or choose another --out. If that run no longer exists, delete .../run/run.lock.
        >>> (folder / "run.lock").exists()
        False
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.me = {"pid": os.getpid(), "host": socket.gethostname()}

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def acquire(self) -> RunLock:
        """Create the folder if needed and take the lock.

        Returns:
            this lock.

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
            if holder is None or holder["host"] != self.me["host"] or process_exists(holder["pid"]):
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
            and type(holder.get("pid")) is int  # a JSON true is no pid
            and holder["pid"] > 0
            and isinstance(holder.get("host"), str)
        )
        return holder if valid else None

    def release(self) -> None:
        """Remove the lock if this process still holds it."""
        if self._holder() == self.me:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
