"""The decord process: decord runs here, away from the caller, so a hang or crash stays here.

vidio starts it as ``python -I _decord_server.py <request fd> <reply fd>``. It imports only
the standard library, numpy and decord (never torch or vidio), so it starts in a fraction of
a second. It keeps a few decord readers open, answers one request at a time, and exits when
the caller closes its end of the request pipe (including when the caller dies).

Requests and reply headers are JSON messages; frames travel as raw bytes.

- ``{"op": "open", ...}`` -> ``{"ok": true, "num_frames": n}`` then the float64 start time of
  every frame as decord indexes it.
- ``{"op": "read", ..., "chunks": [[i, ...], ...]}`` -> per chunk ``{"ok": true}`` then its
  frames; finally ``{"ok": true, "rss": bytes}``.
- Any failure -> ``{"ok": false, "error": "..."}`` and nothing more for that request.
"""

import json
import os
import re
import sys
from collections import OrderedDict
from multiprocessing.connection import Connection

CACHE_SIZE = 4


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


def _serve(requests, replies, decord, np):
    readers = _Readers(decord)
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
                for chunk in request["chunks"]:
                    frames = np.ascontiguousarray(reader.get_batch(chunk).asnumpy())
                    replies.send_bytes(b'{"ok": true}')
                    replies.send_bytes(memoryview(frames).cast("B"))
                replies.send_bytes(json.dumps({"ok": True, "rss": _rss_bytes()}).encode())
        except Exception as exc:  # report every decord failure to the caller, keep serving
            readers.drop(key)
            replies.send_bytes(json.dumps({"ok": False, "error": _describe(exc)}).encode())


def main():
    sys.path[:0] = [p for p in json.loads(os.environ.get("VIDIO_SYS_PATH", "[]")) if p not in sys.path]
    requests = Connection(int(sys.argv[1]), writable=False)
    replies = Connection(int(sys.argv[2]), readable=False)
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
    _serve(requests, replies, decord, np)


if __name__ == "__main__":
    main()
