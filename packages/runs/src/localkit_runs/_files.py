"""Files of a run folder written all or nothing, with errors that name the folder and the cause."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from ._errors import RunFolderError

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
    """A :class:`RunFolderError` naming ``folder``, what failed and why.

    Example:
        >>> import errno
        >>> print(folder_error(Path("runs/a"), "write last.pt", OSError(errno.ENOSPC, "No space")))
        run folder runs/a: cannot write last.pt: the disk is full (no space left on device): free some space, then continue with --resume
    """
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


def make_folder(folder: str | Path) -> None:
    """Create ``folder`` (and its parents), or say why it cannot be a run folder.

    Raises:
        RunFolderError: the folder cannot be created (a file in the way, read-only, ...).

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "a-file").write_text("")
        0
        >>> make_folder(root / "a-file" / "run")
        Traceback (most recent call last):
        ...
        localkit_runs._errors.RunFolderError: run folder .../a-file/run: cannot create it: a part of the path is a file, not a folder: choose another --out
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise folder_error(folder, "create it", exc) from exc


def _new_file_mode() -> int:
    """The mode ``open()`` gives a new file: 0o666 less the process's umask."""
    umask = os.umask(0o022)  # the umask can only be read by setting it; set it straight back
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through ``write(file)`` all or nothing.

    The data goes to a temporary file beside ``path`` (mode as any new file, not
    ``mkstemp``'s private 0600), is flushed to disk and renamed over ``path``; the folder
    entry is flushed too. Concurrent writers never share a temporary file.

    Args:
        path: the file to replace; its folder must exist.
        write: called with the open binary temporary file.

    Raises:
        RunFolderError: the write failed for a reason of the file system (disk full,
            read-only, no permission); the old ``path`` is intact and the temporary file
            removed. Any other exception of ``write`` propagates, with the same cleanup.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "notes.txt"
        >>> atomic_write(target, lambda f: f.write(b"kept whole"))
        >>> target.read_text()
        'kept whole'
    """
    path = Path(path)
    tmp = None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(name)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), _new_file_mode())
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
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


def write_text(path: str | Path, text: str) -> None:
    """``text`` as UTF-8, atomically (see :func:`atomic_write`).

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "a.txt"
        >>> write_text(target, "déjà vu")
        >>> target.read_text(encoding="utf-8")
        'déjà vu'
    """
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path: str | Path, data: Any, *, sort_keys: bool = True) -> None:
    """``data`` as indented JSON (values JSON cannot hold written with ``str``), atomically
    (see :func:`atomic_write`); keys sorted unless ``sort_keys=False`` keeps their order.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "summary.json"
        >>> write_json(target, {"b": 1, "a": Path("x")})
        >>> print(target.read_text(), end="")
        {
          "a": "x",
          "b": 1
        }
    """
    write_text(path, json.dumps(data, indent=2, sort_keys=sort_keys, default=str) + "\n")
