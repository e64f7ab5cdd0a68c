"""Frame folders: the pre-extracted JPEG layout the reference AQA code reads.

Each image is decoded with FFmpeg's image decoders through PyAV, so a folder needs no
library beyond the ones vidio already depends on. vidio reads each image's bytes itself,
from a regular file opened without blocking (``_files``), and decodes them from memory: a
FIFO swapped in for a frame cannot block the read, and an image that changes while it is
read is reported as such.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from . import _files
from ._backend import DEFAULT_TIMEOUT, Decoder
from ._errors import VideoDecodeError
from ._probe import VideoInfo


class FrameFolderDecoder(Decoder):
    """Read frame ``i`` from the ``i``-th image of the folder (natural sort order)."""

    name = "frames"

    def __init__(
        self, info: VideoInfo, *, threads: int = 0, timeout: float = DEFAULT_TIMEOUT, **options: Any
    ):
        super().__init__(info, threads=threads, timeout=timeout)
        import av
        from av.video.reformatter import VideoReformatter

        self._av = av
        self._reformatter = VideoReformatter()

    def read(self, indices: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
        """Decode the images at ``indices`` into ``(len(indices), H, W, 3)`` uint8 RGB."""
        height, width = size or (self.info.height, self.info.width)
        out = np.empty((len(indices), height, width, 3), dtype=np.uint8)
        for k, index in enumerate(indices):
            file = self.info.files[index]
            try:
                data = _files.read_regular(file)
            except _files.PathProblem as exc:
                raise VideoDecodeError.about(file, f"frame image {index}: {exc.reason}") from None
            try:
                with self._av.open(io.BytesIO(data), metadata_errors="ignore") as image:
                    image.streams.video[0].codec_context.thread_count = 1
                    frame = next(image.decode(video=0))
                    rgb = self._reformatter.reformat(
                        frame, width=width, height=height, format="rgb24", interpolation="BILINEAR", threads=1
                    )
                    out[k] = rgb.to_ndarray()
            except (self._av.FFmpegError, StopIteration, OSError) as exc:
                raise VideoDecodeError.about(
                    file, f"frame image {index} cannot be decoded ({type(exc).__name__}: {exc})"
                ) from exc
        return out
