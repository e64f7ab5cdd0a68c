"""Opening only what can be read: regular files, checked before and while they are opened.

A FIFO, socket or device where vidio expects a video, a frame image, an annotation or a
manifest would block ``open`` (a FIFO waits for a writer, forever) or never reach its end;
a symbolic link loop, a folder where a file belongs, or a path through a file fails with an
``OSError`` that names neither the file nor the fix. Every file vidio reads goes through
here: ``stat`` first, then an ``O_NONBLOCK`` open whose ``fstat`` must agree, so a file
swapped for a FIFO between the two cannot block either. Callers turn :class:`PathProblem`
into their own error (a video's or a dataset's), naming the path.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

_OPEN_FLAGS = (
    os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
)
_REASONS = {
    errno.ENOENT: "no such file or folder",
    errno.ELOOP: "it is a symbolic link loop (a link that leads back to itself)",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENAMETOOLONG: "the path is too long",
}


class PathProblem(Exception):
    """Why a path cannot be read; the message is the reason, without the path.

    ``missing`` is True when nothing exists at the path (callers report that as not found).
    """

    def __init__(self, reason: str, *, missing: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.missing = missing


class FileTooLarge(PathProblem):
    """The file is larger than the caller allows."""


def kind(mode: int) -> str:
    """What a ``stat`` mode says the path is, in words ("a FIFO (named pipe)", ...)."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "a special file"


def _problem(exc: OSError) -> PathProblem:
    reason = _REASONS.get(exc.errno, f"{exc.strerror or type(exc).__name__}")
    return PathProblem(reason, missing=exc.errno == errno.ENOENT)


def stat_path(path: str) -> os.stat_result:
    """``os.stat`` (following links), with every failure turned into a :class:`PathProblem`."""
    try:
        return os.stat(path)
    except OSError as exc:
        raise _problem(exc) from None
    except ValueError as exc:  # an embedded NUL byte
        raise PathProblem(f"the path is not valid ({exc})") from None


def not_regular(mode: int) -> PathProblem:
    """The problem of a path that exists but is not a regular file."""
    if stat.S_ISDIR(mode):
        return PathProblem("it is a folder, not a file")
    return PathProblem(f"it is not a regular file but {kind(mode)}")


def require_regular(path: str) -> os.stat_result:
    """``stat`` the path and insist that it is a regular file (after following links)."""
    info = stat_path(path)
    if not stat.S_ISREG(info.st_mode):
        raise not_regular(info.st_mode)
    return info


def _opener(path: str, flags: int) -> int:
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise _problem(exc) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise not_regular(mode)
    return fd


def open_regular(path: str, buffering: int = -1) -> BinaryIO:
    """Open a regular file for reading without ever blocking on a FIFO or device.

    ``stat`` runs first, so the common mistakes are reported without opening anything; the
    open itself uses ``O_NONBLOCK`` and checks ``fstat``, which closes the race with a file
    replaced in between. On regular files ``O_NONBLOCK`` changes nothing.
    """
    require_regular(path)
    return open(path, "rb", buffering=buffering, opener=_opener)


def read_regular(path: str, limit: int | None = None) -> bytes:
    """All bytes of a regular file; :class:`FileTooLarge` above ``limit``, :class:`PathProblem` if it changed."""
    with open_regular(path, buffering=0) as file:
        size = os.fstat(file.fileno()).st_size
        if limit is not None and size > limit:
            raise FileTooLarge(f"it is {size} bytes, more than the {limit} bytes allowed")
        data = file.read()
    if len(data) != size:
        raise changed(f"it was {size} bytes when opened and {len(data)} bytes could be read")
    return data


def changed(detail: str) -> PathProblem:
    """The problem of a file that was modified, truncated or replaced while vidio read it."""
    return PathProblem(f"the file changed while being read ({detail})")


def signature(info: os.stat_result) -> tuple[int, int, int, int]:
    """What identifies one version of a file: device, inode, size and modification time."""
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
