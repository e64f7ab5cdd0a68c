"""The decord backend, made safe: decord runs in a child process and only gets files it reads exactly.

decord's known failure modes, and what this module does about each:

- It can hang forever inside native code while holding the GIL (asked for frames past the
  real end of a file, or on some damaged files); no thread or signal can interrupt that.
  Here decord runs in a separate process (``_decord_server.py``); every reply must arrive
  within ``timeout`` seconds of the previous one, else the process is killed and a
  :class:`~vidio.VideoTimeoutError` names the file. Requests are split per keyframe group, so
  the timeout bounds the time without progress, not the size of a request.
- A crash (segfault) in decord kills only that process: :class:`~vidio.VideoDecodeError`,
  and the next request starts a fresh one.
- After a read, a decord reader keeps decoding the rest of the file on its own thread and
  holds every frame, costing CPU and memory while the caller trains: the last request of
  every read tells the process to seek the reader back, which stops it (decord issue 208).
- Its memory could still grow with repeated batch reads: the process reports its resident
  memory after every read and is replaced once it has grown by ``MAX_SERVER_GROWTH`` bytes.
- It returns wrong frames after seeks in some files: it counts decoded frames instead of
  matching timestamps, so MP4 edit lists, open GOPs and MPEG-TS shift its frames, and it
  applies rotation metadata. Such files are recognised from the probe and from decord's own
  frame table, and handed to PyAV (with a :class:`~vidio.DecoderFallbackWarning`).
- It can report more frames than the file holds: indices are checked against the probe,
  whose count comes from the packets actually present.
- It fails outright on some output widths (8, 12, 16, 24, 48 and 72 pixels in decord 0.6.0)
  and on damaged packets. Whenever decord reports an error, PyAV decodes the same frames
  and its answer, frames or error, stands.

The ``decord`` module comes from one of two distributions: ``decord`` (0.6.0, 2021) or its
maintained fork ``decord2``, which installs the same module. :func:`decord_provider` tells
which one is on disk without importing it. The child process is started with inherited file
descriptors, which Windows lacks, so this backend runs on Linux and macOS only.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import json
import logging
import mmap
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import warnings
from importlib import metadata
from multiprocessing import BufferTooShort
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ._backend import DEFAULT_TIMEOUT, Decoder
from ._errors import (
    DecoderFallbackWarning,
    DecoderUnavailableError,
    UnsupportedVideoError,
    VideoDecodeError,
    VideoTimeoutError,
)
from ._probe import VideoInfo
from ._pyav import PyAVDecoder

logger = logging.getLogger(__name__)

SERVER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_decord_server.py")
MAX_SERVER_GROWTH = 512 * 2**20
PROGRESS_BYTES = 8
SHARED_LIMIT = 32 * 2**20
# Containers whose seeking decord handles exactly, as verified frame by frame against PyAV.
EXACT_CONTAINERS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "flv"})
_FIX_DAMAGED = "The file is probably damaged; read it with backend='pyav' or re-encode it"
_NOT_POSIX = (
    "the 'decord' decoder runs decord in a child process that inherits file descriptors, which "
    "needs Linux or macOS; pass backend='pyav' (the default) or backend='torchcodec'"
)


def _structural_problem(info: VideoInfo) -> str | None:
    """Why decord's frame counting would return wrong frames for this file, or None."""
    if info.container not in EXACT_CONTAINERS:
        return f"decord does not seek exactly in '{info.container}' files"
    if info.open_gop:
        return "it has open GOPs (frames shown before the keyframe they follow), after which decord miscounts frames"
    if info.discarded:
        return f"its container marks {info.discarded} packets to be dropped (an edit list) that decord counts as frames"
    if info.duplicate_pts:
        return f"{info.duplicate_pts} of its packets repeat another packet's timestamp"
    if info.rotation:
        return f"it carries a {info.rotation} degree display rotation, which decord applies and PyAV does not"
    return None


def _shared_dir() -> str | None:
    """/dev/shm (RAM) when it has room for a few shared files, else the default temporary folder.

    Containers often give /dev/shm only 64 MiB, and writing past a full tmpfs kills the writer.
    """
    try:
        stat = os.statvfs("/dev/shm")
    except (OSError, AttributeError):
        return None
    roomy = stat.f_bavail * stat.f_frsize >= 8 * SHARED_LIMIT
    return "/dev/shm" if roomy and os.access("/dev/shm", os.W_OK) else None


def _stamp(path: str) -> list[int]:
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]


class _Server:
    """The decord process of the calling process; one request at a time.

    Frames come back through a file both processes map (in RAM under /dev/shm when it has
    room), so a read wakes the caller once instead of once per pipe-buffer of pixels; the
    file's first bytes count the pieces written, which is how a slow read is told from a
    stuck one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._requests: Connection | None = None
        self._replies: Connection | None = None
        self._shared_file: Any = None
        self._shared: mmap.mmap | None = None
        self._baseline = 0
        self.starts = 0

    @property
    def pid(self) -> int | None:
        """Process id of the running decord process, if any."""
        return None if self._proc is None else self._proc.pid

    def _start(self) -> None:
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        self._shared_file = tempfile.TemporaryFile(dir=_shared_dir())  # noqa: SIM115 - lives with the process
        frames_fd = self._shared_file.fileno()
        env = dict(os.environ, VIDIO_SYS_PATH=json.dumps([os.path.abspath(p) for p in sys.path if p]))
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", SERVER_SCRIPT, str(request_r), str(reply_w), str(frames_fd)],
                pass_fds=(request_r, reply_w, frames_fd),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        finally:
            os.close(request_r)
            os.close(reply_w)
        self._requests = Connection(request_w, readable=False)
        self._replies = Connection(reply_r, writable=False)
        self._baseline = 0
        self.starts += 1
        logger.debug("started decord process %d (start %d of this process)", self._proc.pid, self.starts)

    def _release(self) -> None:
        for conn in (self._requests, self._replies):
            if conn is not None:
                conn.close()
        if self._shared is not None:
            self._shared.close()
        if self._shared_file is not None:
            self._shared_file.close()
        self._requests = self._replies = self._shared = self._shared_file = None

    def stop(self, kill: bool = False) -> None:
        """End the process: politely (close its request pipe) or, after a hang, by SIGKILL."""
        proc, self._proc = self._proc, None
        self._release()
        if proc is None:
            return
        if kill:
            proc.kill()
        try:
            proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def abandon(self) -> None:
        """Forget the process without touching it (in a forked child, it belongs to the parent)."""
        self._release()
        self._proc = None

    def _ensure_running(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            self.stop()
            self._start()

    def _send(self, path: str, request: dict) -> None:
        try:
            self._requests.send_bytes(json.dumps(request).encode())
        except OSError as exc:
            code = self._exit_code()
            self.stop(kill=True)
            raise VideoDecodeError.about(
                path, f"the decord process died ({_exit_reason(code)}) before a request", _FIX_DAMAGED
            ) from exc

    def _progress(self) -> int:
        return struct.unpack_from("<q", self._shared, 0)[0] if self._shared is not None else 0

    def _wait(self, path: str, timeout: float, doing: str) -> None:
        """Wait for a reply; give up when ``timeout`` passes with no reply and no new piece."""
        seen = self._progress()
        while not self._replies.poll(timeout):
            now = self._progress()
            if now == seen:
                self.stop(kill=True)
                raise VideoTimeoutError.about(
                    path,
                    f"decord made no progress for {timeout:g} s while {doing}; its process was stopped",
                    _FIX_DAMAGED + ", or raise timeout= for very large frames",
                )
            seen = now

    def _receive(self, path: str, timeout: float, doing: str, into: memoryview | None = None) -> Any:
        self._wait(path, timeout, doing)
        try:
            if into is None:
                return self._replies.recv_bytes()
            return self._replies.recv_bytes_into(into)
        except BufferTooShort as exc:
            self.stop(kill=True)
            raise VideoDecodeError.about(
                path, f"decord returned more data than expected while {doing}", _FIX_DAMAGED
            ) from exc
        except (EOFError, OSError) as exc:
            code = self._exit_code()
            self.stop(kill=True)
            raise VideoDecodeError.about(
                path, f"the decord process died ({_exit_reason(code)}) while {doing}", _FIX_DAMAGED
            ) from exc

    def _exit_code(self) -> int | None:
        try:
            return self._proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            return None

    def _header(self, path: str, timeout: float, doing: str) -> dict:
        header = json.loads(self._receive(path, timeout, doing))
        if not header["ok"]:
            raise _DecordFailure.about(path, f"decord failed while {doing} ({header['error']})", _FIX_DAMAGED)
        return header

    def open(self, base: dict, timeout: float) -> tuple[int, np.ndarray]:
        """Open the file in decord; return decord's frame count and frame start times."""
        with self._lock:
            self._ensure_running()
            self._send(base["path"], {"op": "open", **base})
            doing = "opening the file"
            count = self._header(base["path"], timeout, doing)["num_frames"]
            times = np.empty(count, dtype=np.float64)
            self._receive(base["path"], timeout, doing, memoryview(times).cast("B"))
            return count, times

    def _map(self, size: int) -> mmap.mmap:
        if self._shared is None or len(self._shared) < size:
            if self._shared is not None:
                self._shared.close()
            os.ftruncate(self._shared_file.fileno(), size)
            self._shared = mmap.mmap(self._shared_file.fileno(), size)
        return self._shared

    def read(
        self, base: dict, pieces: list[np.ndarray], out: np.ndarray, timeout: float, *, rewind: bool
    ) -> None:
        """Fill ``out`` with the frames of ``pieces`` (consecutive runs of the sorted indices).

        ``rewind`` marks the last request of a read: the reader stops decoding ahead after it.
        """
        path = base["path"]
        frame_bytes = out[0].nbytes
        target = memoryview(out.reshape(-1))

        with self._lock:
            self._ensure_running()
            size = PROGRESS_BYTES + len(out) * frame_bytes
            shared = self._map(size)
            struct.pack_into("<q", shared, 0, 0)
            doing = f"decoding frames {int(pieces[0][0])}..{int(pieces[-1][-1])}"
            self._send(
                path,
                {
                    "op": "read",
                    **base,
                    "pieces": [p.tolist() for p in pieces],
                    "shared_bytes": size,
                    "rewind": rewind,
                },
            )
            header = self._header(path, timeout, doing)
            if header["bytes"] != size:
                self.stop(kill=True)
                raise VideoDecodeError.about(
                    path,
                    f"decord returned {header['bytes'] - PROGRESS_BYTES} bytes "
                    f"of frames while {doing}, expected {size - PROGRESS_BYTES}",
                )
            with memoryview(shared) as view:
                target[:] = view[PROGRESS_BYTES:size]
            rss = header["rss"]
            if not self._baseline:
                self._baseline = rss
            elif rss - self._baseline > MAX_SERVER_GROWTH:
                logger.warning(
                    "replacing the decord process %d: its memory grew by %d MiB (limit %d MiB)",
                    self._proc.pid,
                    (rss - self._baseline) // 2**20,
                    MAX_SERVER_GROWTH // 2**20,
                )
                self.stop()


class _DecordFailure(VideoDecodeError):
    """decord itself reported an error (as opposed to hanging or crashing)."""


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "unknown exit status"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


_server: _Server | None = None
_server_pid = 0
_server_lock = threading.Lock()
_verdicts: dict[tuple, str | None] = {}


def _current_server() -> _Server:
    """This process's decord process, started on first use (each DataLoader worker gets its own)."""
    global _server, _server_pid
    with _server_lock:
        if _server is None or _server_pid != os.getpid():
            _server = _Server()
            _server_pid = os.getpid()
        return _server


def _forget_after_fork() -> None:
    global _server
    if _server is not None:
        _server.abandon()
    _server = None


def _stop_at_exit() -> None:
    if _server is not None and _server_pid == os.getpid():
        _server.stop()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(_stop_at_exit)


@functools.cache
def _decord_installed() -> bool:
    """Whether decord can be imported; asked once per process, as the search costs about a
    millisecond and a DataLoader opens a file per clip."""
    return importlib.util.find_spec("decord") is not None


_INSTALL = (
    "pip install decord (Linux x86_64), pip install 'localkit-vidio[decord2]' (Linux aarch64, macOS "
    "on Apple silicon), or pass backend='pyav'"
)
PROVIDERS = ("decord", "decord2")


class DecordProvider(NamedTuple):
    """Which distribution installed the ``decord`` module that the decord process imports."""

    distribution: str
    version: str
    installed: tuple[str, ...]


def decord_provider() -> DecordProvider | None:
    """The distribution whose ``decord`` module is on disk (``decord`` or ``decord2``), or None.

    Both install the same folder, so the module's own version (read from its source, not
    imported) says whose files are there; ``installed`` lists every provider pip knows of.
    """
    spec = importlib.util.find_spec("decord")
    if spec is None or not spec.submodule_search_locations:
        return None
    installed = []
    for name in PROVIDERS:
        try:
            installed.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    libinfo = Path(next(iter(spec.submodule_search_locations))) / "_ffi" / "libinfo.py"
    try:
        found = re.search(r'^__version__ = "([^"]+)"', libinfo.read_text(), re.MULTILINE)
    except OSError:
        found = None
    version = found.group(1) if found else "unknown"
    owner = next((name for name, v in installed if v == version), installed[0][0] if installed else "unknown")
    return DecordProvider(owner, version, tuple(f"{name} {v}" for name, v in installed))


class DecordDecoder(Decoder):
    """Decode with decord in a supervised child process; see the module notes for what it guards.

    Args:
        info: the probed video.
        threads: decord's ``num_threads`` (0 lets FFmpeg decide).
        timeout: seconds decord may go without returning the next group of frames.
        **options: ignored.

    Raises:
        DecoderUnavailableError: decord is not installed.
        UnsupportedVideoError: decord would return wrong frames for this file.
    """

    name = "decord"

    def __init__(
        self, info: VideoInfo, *, threads: int = 0, timeout: float = DEFAULT_TIMEOUT, **options: Any
    ):
        super().__init__(info, threads=threads, timeout=timeout)
        problem = _structural_problem(info)
        if problem:
            raise UnsupportedVideoError.about(info.path, f"decord cannot return exact frames: {problem}")
        if os.name != "posix":
            raise DecoderUnavailableError(_NOT_POSIX)
        if not _decord_installed():
            raise DecoderUnavailableError(f"the 'decord' decoder needs the decord module: {_INSTALL}")
        self._server = _current_server()
        self._stamp = _stamp(info.path)
        self._pyav: PyAVDecoder | None = None
        self._reference_sizes: set[tuple[int, int] | None] = set()
        problem = self._check_frame_table()
        if problem:
            raise UnsupportedVideoError.about(info.path, f"decord cannot return exact frames: {problem}")

    @classmethod
    def library(cls) -> str:
        """``"decord <version> (distribution <name> <version>)"``; raises when it cannot run here."""
        if os.name != "posix":
            raise DecoderUnavailableError(_NOT_POSIX)
        provider = decord_provider()
        if provider is None:
            raise DecoderUnavailableError(f"the 'decord' decoder needs the decord module: {_INSTALL}")
        text = f"decord {provider.version} (from the {provider.distribution} distribution)"
        if len(provider.installed) > 1:
            text += (
                f"; {' and '.join(provider.installed)} are both installed and write the same files: "
                "uninstall both, then install one"
            )
        return text

    def _request(self, size: tuple[int, int] | None) -> dict:
        height, width = size if size is not None else (-1, -1)
        return {
            "path": self.info.path,
            "stamp": self._stamp,
            "height": height,
            "width": width,
            "threads": self.threads,
        }

    def _check_frame_table(self) -> str | None:
        """Compare decord's frame table with the probe's, once per file and process."""
        key = (self.info.path, *self._stamp)
        if key not in _verdicts:
            try:
                count, times = self._server.open(self._request(None), self.timeout)
            except _DecordFailure as exc:
                _verdicts[key] = f"decord cannot open it ({exc.reason})"
                return _verdicts[key]
            _verdicts[key] = _compare_tables(count, times, self.info)
        return _verdicts[key]

    def read(self, indices: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
        """Decode ``indices`` (sorted, unique) into ``(len(indices), H, W, 3)`` uint8 RGB.

        When decord reports an error (rather than hanging or crashing), PyAV, the reference,
        decodes the same frames: its frames or its error are the answer. Output sizes decord
        failed on go straight to PyAV afterwards.
        """
        if size in self._reference_sizes:
            return self._reference().read(indices, size)
        height, width = size or (self.info.height, self.info.width)
        out = np.empty((len(indices), height, width, 3), dtype=np.uint8)
        try:
            for start, pieces in _batches(indices, self.info.keyframes, out[0].nbytes):
                count = sum(len(p) for p in pieces)
                self._server.read(
                    self._request(size),
                    pieces,
                    out[start : start + count],
                    self.timeout,
                    rewind=start + count == len(indices),
                )
        except _DecordFailure as exc:
            warnings.warn(
                f"'{self.info.path}': {exc.reason}; reading with {PyAVDecoder.name} instead",
                DecoderFallbackWarning,
                stacklevel=4,
            )
            self._reference_sizes.add(size)
            return self._reference().read(indices, size)
        return out

    def _reference(self) -> PyAVDecoder:
        if self._pyav is None:
            self._pyav = PyAVDecoder(self.info, threads=self.threads, timeout=self.timeout)
        return self._pyav

    def close(self) -> None:
        """Close the PyAV decoder used for frames decord failed on (the decord process stays)."""
        if self._pyav is not None:
            self._pyav.close()
            self._pyav = None


def _batches(
    indices: np.ndarray, keyframes: np.ndarray, frame_bytes: int
) -> list[tuple[int, list[np.ndarray]]]:
    """Cut sorted indices into pieces, one keyframe interval at most, and requests of ``SHARED_LIMIT`` bytes.

    A piece is the unit of progress the timeout watches; a request's frames fit the shared file.
    """
    per_request = max(1, SHARED_LIMIT // frame_bytes)
    groups = np.searchsorted(keyframes, indices, side="right")
    runs = np.split(indices, np.flatnonzero(np.diff(groups)) + 1)
    pieces = [run[i : i + per_request] for run in runs for i in range(0, len(run), per_request)]
    batches: list[tuple[int, list[np.ndarray]]] = []
    start = count = 0
    for piece in pieces:
        if batches and count + len(piece) <= per_request:
            batches[-1][1].append(piece)
            count += len(piece)
        else:
            start += count
            batches.append((start, [piece]))
            count = len(piece)
    return batches


def _compare_tables(count: int, times: np.ndarray, info: VideoInfo) -> str | None:
    if count != info.num_frames:
        return f"decord indexes {count} frames but the file holds {info.num_frames} decodable ones"
    expected = info.timestamps
    close = np.isclose(times, expected, rtol=1e-6, atol=1e-4)
    if not close.all():
        first = int(np.flatnonzero(~close)[0])
        return (
            f"decord's frame times differ from the container's (frame {first}: {times[first]:.6f} s "
            f"instead of {expected[first]:.6f} s)"
        )
    return None
