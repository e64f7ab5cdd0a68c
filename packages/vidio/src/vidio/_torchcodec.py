"""The torchcodec backend: PyTorch's own decoder, on the CPU or (with NVDEC) on CUDA GPUs.

torchcodec decodes with the FFmpeg libraries installed on the system (versions 4 to 9 as
of torchcodec 0.17), not with a copy of its own, so it needs both ``pip install
'localkit-vidio[torchcodec]'`` and FFmpeg's shared libraries; when either is missing, the
backend says which.

vidio hands torchcodec its own frame table (the probe's timestamps and keyframes, as
torchcodec's ``custom_frame_mappings``), so torchcodec neither scans the file again nor
numbers frames differently, and checks the timestamp of every frame it returns. At the
stored size its frames equal PyAV's bit for bit. Sizes are scaled while decoding by
torchcodec's ``Resize``, one decoder per output size; it converts to RGB first and then
scales the RGB image (as torchvision would), where PyAV and decord scale the YUV planes
and convert after, so resized frames differ from PyAV's by a few grey levels on average,
more along sharp edges.

Files torchcodec does not read exactly (measured on the test videos: rotation metadata,
which it applies and PyAV does not; open GOPs in AVI and MPEG-TS files, where it runs out
of frames) go to PyAV with a :class:`~vidio.DecoderFallbackWarning`, and so do the frames
of any read torchcodec fails on: PyAV's frames, or PyAV's error, are the answer.
"""

from __future__ import annotations

import functools
import gc
import importlib.util
import json
import os
import warnings
import weakref
from collections import OrderedDict
from importlib import metadata
from typing import Any

import numpy as np

from ._backend import DEFAULT_TIMEOUT, Decoder
from ._errors import DecoderFallbackWarning, DecoderUnavailableError, UnsupportedVideoError, VideoDecodeError
from ._probe import VideoInfo
from ._pyav import PyAVDecoder

MAX_SIZES = 4
_INSTALL = "pip install 'localkit-vidio[torchcodec]'"
_INSTALL_FFMPEG = (
    "install FFmpeg's shared libraries (versions 4 to 9): 'apt-get install ffmpeg' on Debian or "
    "Ubuntu, 'brew install ffmpeg' on macOS, 'conda install ffmpeg', or on Windows a 'shared' "
    "FFmpeg build whose bin folder is on PATH"
)

# As with PyAV (see _pyav.py): an FFmpeg decoder with threads cannot be used or freed in a
# forked child, so a child parks the torchcodec decoders it inherited and opens new ones.
_live: weakref.WeakSet = weakref.WeakSet()
_inherited: list = []


def _park_inherited_decoders() -> None:
    for decoder in list(_live):
        _inherited.append(decoder._decoders)
        decoder._decoders = OrderedDict()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=gc.collect, after_in_child=_park_inherited_decoders)


@functools.cache
def _torchcodec() -> tuple[Any, Any, str]:
    """torchcodec's ``VideoDecoder`` and ``Resize``, and a description of what it loaded.

    Raises:
        DecoderUnavailableError: torchcodec is not installed, or it cannot load FFmpeg.
    """
    if importlib.util.find_spec("torchcodec") is None:
        raise DecoderUnavailableError(
            f"the 'torchcodec' decoder needs the torchcodec package: {_INSTALL} (or pass backend='pyav')"
        )
    version = metadata.version("torchcodec")
    try:
        from torchcodec import _core
        from torchcodec.decoders import VideoDecoder
        from torchcodec.transforms import Resize

        ffmpeg = _core.get_ffmpeg_library_versions()
    except Exception as exc:  # torchcodec reports a missing or unusable FFmpeg in several ways
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise DecoderUnavailableError(
            f"the 'torchcodec' decoder (torchcodec {version}) cannot load FFmpeg: {first.strip()[:300]}. "
            f"torchcodec uses the system's FFmpeg: {_INSTALL_FFMPEG}"
        ) from exc
    return VideoDecoder, Resize, f"torchcodec {version} (FFmpeg {ffmpeg.get('ffmpeg_version', '?')})"


def _structural_problem(info: VideoInfo) -> str | None:
    """Why torchcodec would not return PyAV's frames for this file, or None."""
    if info.rotation:
        return f"it carries a {info.rotation} degree display rotation, which torchcodec applies and PyAV does not"
    if info.container == "mpegts":
        return "torchcodec does not seek exactly in MPEG-TS files"
    if info.open_gop and info.container == "avi":
        return "it has open GOPs in an AVI file, after which torchcodec runs out of frames"
    return None


def _frame_mappings(info: VideoInfo) -> str:
    """The probe's frame table in the JSON form torchcodec takes (ffprobe's field names)."""
    pts = info.pts
    gaps = np.diff(pts)
    last = int(np.median(gaps)) if len(gaps) else 1
    durations = np.append(gaps, max(last, 1))
    keys = np.zeros(len(pts), dtype=bool)
    keys[info.keyframes] = True
    frames = [
        {"pts": int(p), "duration": int(d), "key_frame": int(k)}
        for p, d, k in zip(pts.tolist(), durations.tolist(), keys.tolist())
    ]
    return json.dumps({"frames": frames})


class TorchCodecDecoder(Decoder):
    """Decode with torchcodec, on the CPU or on a CUDA GPU.

    Args:
        info: the probed video.
        threads: FFmpeg decoding threads on the CPU (0 lets FFmpeg decide).
        timeout: unused: torchcodec's calls return or raise.
        device: ``"cpu"`` (default), ``"cuda"`` or ``"cuda:N"``: decode with NVDEC, frames
            stay on that GPU (torchcodec falls back to the CPU for codecs NVDEC lacks).
        **options: ignored.

    Raises:
        DecoderUnavailableError: torchcodec is not installed, or cannot load FFmpeg.
    """

    name = "torchcodec"
    devices = ("cpu", "cuda")

    def __init__(
        self,
        info: VideoInfo,
        *,
        threads: int = 0,
        timeout: float = DEFAULT_TIMEOUT,
        device: str = "cpu",
        **options: Any,
    ):
        super().__init__(info, threads=threads, timeout=timeout)
        problem = _structural_problem(info)
        if problem:
            raise UnsupportedVideoError.about(info.path, f"torchcodec cannot return exact frames: {problem}")
        self._video_decoder, self._resize, _ = _torchcodec()
        self.device = device
        self._mappings = _frame_mappings(info)
        self._decoders: OrderedDict = OrderedDict()
        self._pyav: PyAVDecoder | None = None
        self._reference_sizes: set[tuple[int, int] | None] = set()
        _live.add(self)
        self._decoder(None)

    @classmethod
    def library(cls) -> str:
        """``"torchcodec <version> (FFmpeg <version>)"``; raises when it cannot run here."""
        return _torchcodec()[2]

    def _decoder(self, size: tuple[int, int] | None) -> Any:
        decoder = self._decoders.pop(size, None)
        if decoder is None:
            try:
                decoder = self._video_decoder(
                    self.info.path,
                    stream_index=self.info.stream_index,
                    dimension_order="NHWC",
                    num_ffmpeg_threads=self.threads,
                    device=self.device,
                    transforms=None if size is None else [self._resize(size)],
                    custom_frame_mappings=self._mappings,
                )
            except (RuntimeError, ValueError) as exc:
                raise VideoDecodeError.about(
                    self.info.path, f"torchcodec cannot open it ({type(exc).__name__}: {exc})"
                ) from exc
        self._decoders[size] = decoder
        while len(self._decoders) > MAX_SIZES:
            self._decoders.popitem(last=False)
        return decoder

    def read(self, indices: np.ndarray, size: tuple[int, int] | None) -> Any:
        """Decode ``indices`` (sorted, unique) into a uint8 tensor ``(len(indices), H, W, 3)``.

        When torchcodec raises, PyAV, the reference, decodes the same frames: its frames or its
        error are the answer (with a warning), and that output size stays with PyAV.
        """
        if size in self._reference_sizes:
            return self._reference().read(indices, size)
        try:
            batch = self._decoder(size).get_frames_at(indices.tolist())
        except RuntimeError as exc:
            warnings.warn(
                f"'{self.info.path}': torchcodec failed ({exc}); reading with {PyAVDecoder.name} instead",
                DecoderFallbackWarning,
                stacklevel=4,
            )
            self._reference_sizes.add(size)
            return self._reference().read(indices, size)
        expected = self.info.pts[indices].astype(np.float64) * float(self.info.time_base)
        got = batch.pts_seconds.cpu().numpy()
        wrong = ~np.isclose(got, expected, rtol=0, atol=1e-6 + 1e-9 * np.abs(expected))
        if wrong.any():
            first = int(np.flatnonzero(wrong)[0])
            raise VideoDecodeError.about(
                self.info.path,
                f"torchcodec returned the frame at {got[first]:.6f} s for frame {int(indices[first])}, "
                f"which is at {expected[first]:.6f} s",
                "Read this file with backend='pyav'",
            )
        return batch.data

    def _reference(self) -> PyAVDecoder:
        if self._pyav is None:
            self._pyav = PyAVDecoder(self.info, threads=self.threads, timeout=self.timeout)
        return self._pyav

    def close(self) -> None:
        """Close torchcodec's decoders (and the file), and the PyAV decoder of failed reads."""
        self._decoders.clear()
        if self._pyav is not None:
            self._pyav.close()
            self._pyav = None
