"""The PyAV backend: always available, and the reference every other backend must match.

Frames are matched to indices by presentation timestamp, never by counting, so variable
frame rates, B-frames and decoders that drop frames after a seek (open GOPs) cannot shift
them. When a seek lands after the wanted frame, or the wanted frame never comes out, the
backend starts again from an earlier keyframe and finally from the beginning of the file.
"""

from __future__ import annotations

import gc
import os
import weakref
from typing import Any

import numpy as np

from . import _files
from ._backend import DEFAULT_TIMEOUT, Decoder
from ._errors import VideoDecodeError
from ._probe import VideoInfo

_RESTART = -1
# An FFmpeg decoder that runs threads cannot be freed in a forked child: its threads stayed
# in the parent, so freeing it waits for them forever (a DataLoader worker hangs). PyAV
# containers sit in reference cycles, so closed ones linger until the garbage collector
# runs, possibly in the child. Hence: collect garbage before every fork, and let the child
# park the decoders that are still in use, never to be freed, reopening files on next read.
# Scaling runs on the calling thread (threads=1) for the same reason: swscale's thread pool
# would not exist in the child.
_live: weakref.WeakSet = weakref.WeakSet()
_inherited: list = []


def _park_inherited_decoders() -> None:
    for decoder in list(_live):
        _inherited.append((decoder._container, decoder._stream, decoder._frames, decoder._file))
        decoder._container = decoder._stream = decoder._frames = decoder._file = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=gc.collect, after_in_child=_park_inherited_decoders)


class PyAVDecoder(Decoder):
    """Decode with PyAV (FFmpeg), scaling with swscale's bilinear filter when a size is asked.

    Args:
        info: the probed video.
        threads: decoding threads (0 lets FFmpeg decide).
        timeout: unused: FFmpeg calls made through PyAV return or raise, they do not hang.
        **options: ignored.
    """

    name = "pyav"

    def __init__(
        self, info: VideoInfo, *, threads: int = 0, timeout: float = DEFAULT_TIMEOUT, **options: Any
    ):
        super().__init__(info, threads=threads, timeout=timeout)
        import av
        from av.video.reformatter import VideoReformatter

        self._av = av
        self._reformatter = VideoReformatter()
        self._file = None
        self._container = None
        self._stream = None
        self._frames = None
        self._position = -1
        _live.add(self)
        self._restart()

    def _restart(self) -> None:
        self.close()
        try:
            # vidio opens the file, never blocking on a FIFO put in its place since the probe.
            self._file = _files.open_regular(self.info.path, buffering=0)
        except _files.PathProblem as exc:
            raise VideoDecodeError.about(self.info.path, exc.reason) from None
        self._container = self._av.open(self._file, metadata_errors="ignore")
        self._stream = self._container.streams.video[0]
        for stream in self._container.streams.video:
            if stream.index == self.info.stream_index:
                self._stream = stream
        self._stream.thread_type = "AUTO"
        self._stream.codec_context.thread_count = self.threads
        self._frames = self._container.decode(self._stream)
        self._position = -1

    def _seek(self, index: int) -> None:
        if index == 0 or index == _RESTART or self._container is None:
            self._restart()
            return
        self._container.seek(int(self.info.pts[index]), stream=self._stream, backward=True, any_frame=False)
        self._frames = self._container.decode(self._stream)
        self._position = -1

    def read(self, indices: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
        """Decode ``indices`` (sorted, unique) into ``(len(indices), H, W, 3)`` uint8 RGB."""
        height, width = size or (self.info.height, self.info.width)
        out = np.empty((len(indices), height, width, 3), dtype=np.uint8)
        if self._container is None:
            self._restart()
        done = 0
        while done < len(indices):
            done = self._fill(indices, done, out, (height, width))
        return out

    def _start_points(self, target: int) -> list[int | None]:
        """Where to decode ``target`` from: keep going (``None``), a keyframe, or the file start."""
        key = self.info.keyframe_before(target)
        points: list[int | None] = []
        if self._frames is not None and self._position < target and key <= self._position + 1:
            points.append(None)
        points.append(key)
        if key > 0:
            earlier = self.info.keyframe_before(key - 1)
            if earlier > 0:
                points.append(earlier)
            points.append(_RESTART)
        return points

    def _fill(self, indices: np.ndarray, done: int, out: np.ndarray, size: tuple[int, int]) -> int:
        target = int(indices[done])
        for start in self._start_points(target):
            if start is not None:
                self._seek(start)
            progressed = self._decode_into(indices, done, out, size)
            if progressed > done:
                return progressed
        raise VideoDecodeError.about(
            self.info.path,
            f"frame {target} (pts {int(self.info.pts[target])}) never came out of the {self.info.codec} "
            "decoder, even when decoding from the start of the file",
            "The file is probably damaged; re-encode it",
        )

    def _decode_into(self, indices: np.ndarray, done: int, out: np.ndarray, size: tuple[int, int]) -> int:
        """Decode forward from the current position, storing wanted frames; return the new count."""
        if self._frames is None:
            return done
        try:
            for frame in self._frames:
                index = self._index_of(frame)
                if index is None:
                    continue
                self._position = index
                target = int(indices[done])
                if index < target:
                    continue
                if index > target:
                    return done
                out[done] = self._to_rgb(frame, size)
                done += 1
                if done == len(indices):
                    return done
                if self.info.keyframe_before(int(indices[done])) > index + 1:
                    return done
        except self._av.FFmpegError as exc:
            self._frames = None
            raise VideoDecodeError.about(
                self.info.path,
                f"decoding failed near frame {self._position + 1} ({type(exc).__name__}: {exc})",
                "The file is probably damaged; re-encode it",
            ) from exc
        self._frames = None
        return done

    def _index_of(self, frame: Any) -> int | None:
        pts = frame.pts
        if pts is None:
            return None
        pos = int(np.searchsorted(self.info.pts, pts))
        if pos < self.info.num_frames and self.info.pts[pos] == pts:
            return pos
        return None

    def _to_rgb(self, frame: Any, size: tuple[int, int]) -> np.ndarray:
        height, width = size
        rgb = self._reformatter.reformat(
            frame, width=width, height=height, format="rgb24", interpolation="BILINEAR", threads=1
        )
        return rgb.to_ndarray()

    def close(self) -> None:
        """Close the container and the file."""
        if self._container is not None:
            self._container.close()
            self._container = None
            self._frames = None
        if self._file is not None:
            self._file.close()
            self._file = None
