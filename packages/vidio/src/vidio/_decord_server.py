"""The decord process: decord runs here, away from the caller, so a hang or crash stays here.

vidio starts it as ``python -I _decord_server.py <request fd> <reply fd> <frames fd>``. It
imports only the standard library, numpy and decord (never torch or vidio), so it starts in
a fraction of a second. It keeps a few decord readers open, answers one request at a time,
and exits when the caller closes its end of the request pipe (including when the caller dies).

Requests and replies are JSON messages on the pipes. Frames go through a file shared with
the caller (``<frames fd>``, in RAM under /dev/shm when it has room): its first 8 bytes count
the pieces written so far, the caller's sign of progress; the frames follow.

- ``{"op": "open", ...}`` -> ``{"ok": true, "num_frames": n}``, then the float64 start time of
  every frame as decord indexes it (raw bytes on the reply pipe).
- ``{"op": "read", ..., "pieces": [[i, ...], ...], "shared_bytes": n, "rewind": bool}`` -> the
  frames of every piece, one after the other, in the shared file; then
  ``{"ok": true, "rss": bytes}``. With ``rewind`` (the last request of a read), the reader then
  seeks back to frame 0: after ``get_batch`` a decord reader keeps decoding the rest of the file
  on its own thread, holding every frame in memory, until it is next told to seek (decord
  issue 208). Seeking stops that thread and drops its queue; it runs after the reply, while the
  caller is busy with the frames.
- Any failure -> ``{"ok": false, "error": "..."}``.
"""

import json
import mmap
import os
import re
import struct
import sys
from collections import OrderedDict
from multiprocessing.connection import Connection

CACHE_SIZE = 4
PROGRESS_BYTES = 8


def _rss_bytes():
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _describe(exc):
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # decord prefixes each message with "[hh:mm:ss] /path/of/source.cc:line: ", once per nesting level
    text = re.sub(r"\[\d{2}:\d{2}:\d{2}\] \S+?:\d+: ", "", lines[0] if lines else "")
    return f"{type(exc).__name__}: {text[:400]}"


class _Readers:
    """A small LRU of open decord readers keyed by file, file stamp, output size and threads."""

    def __init__(self, decord):
        self._decord = decord
        self._open = OrderedDict()

    def get(self, request):
        key = (
            request["path"],
            tuple(request["stamp"]),
            request["height"],
            request["width"],
            request["threads"],
        )
        reader = self._open.pop(key, None)
        if reader is None:
            reader = self._decord.VideoReader(
                request["path"],
                ctx=self._decord.cpu(0),
                width=request["width"],
                height=request["height"],
                num_threads=request["threads"],
            )
        self._open[key] = reader
        while len(self._open) > CACHE_SIZE:
            self._open.popitem(last=False)
        return key, reader

    def drop(self, key):
        self._open.pop(key, None)


class _Shared:
    """The caller's frame file, mapped at the size the caller asks for."""

    def __init__(self, fd):
        self._fd = fd
        self.map = None

    def ensure(self, size):
        if self.map is None or len(self.map) < size:
            if self.map is not None:
                self.map.close()
            if os.fstat(self._fd).st_size < size:
                os.ftruncate(self._fd, size)
            self.map = mmap.mmap(self._fd, size)
        return self.map


def _serve(requests, replies, frames_fd, decord, np):
    readers = _Readers(decord)
    shared = _Shared(frames_fd)
    while True:
        try:
            request = json.loads(requests.recv_bytes())
        except EOFError:
            return
        key = None
        try:
            key, reader = readers.get(request)
            if request["op"] == "open":
                count = len(reader)
                stamps = reader.get_frame_timestamp(np.arange(count))[:, 0].astype(np.float64)
                replies.send_bytes(json.dumps({"ok": True, "num_frames": count}).encode())
                replies.send_bytes(np.ascontiguousarray(stamps))
            else:
                block = shared.ensure(request["shared_bytes"])
                offset = PROGRESS_BYTES
                for done, piece in enumerate(request["pieces"], 1):
                    frames = np.ascontiguousarray(reader.get_batch(piece).asnumpy())
                    block[offset : offset + frames.nbytes] = memoryview(frames).cast("B")
                    offset += frames.nbytes
                    struct.pack_into("<q", block, 0, done)
                replies.send_bytes(json.dumps({"ok": True, "rss": _rss_bytes(), "bytes": offset}).encode())
        except Exception as exc:  # report every decord failure to the caller, keep serving
            readers.drop(key)
            replies.send_bytes(json.dumps({"ok": False, "error": _describe(exc)}).encode())
            continue
        if request["op"] == "read" and request["rewind"]:
            try:
                reader.seek(0)
            except Exception:  # the reply is sent; a reader that cannot seek is closed instead
                readers.drop(key)


def main():
    sys.path[:0] = [p for p in json.loads(os.environ.get("VIDIO_SYS_PATH", "[]")) if p not in sys.path]
    requests = Connection(int(sys.argv[1]), writable=False)
    replies = Connection(int(sys.argv[2]), readable=False)
    frames_fd = int(sys.argv[3])
    try:
        import decord
        import numpy as np
    except Exception as exc:  # tell the caller why, for every request, instead of dying silently
        message = json.dumps({"ok": False, "error": f"cannot import decord ({_describe(exc)})"}).encode()
        while True:
            try:
                requests.recv_bytes()
            except EOFError:
                return
            replies.send_bytes(message)
    _serve(requests, replies, frames_fd, decord, np)


if __name__ == "__main__":
    main()
