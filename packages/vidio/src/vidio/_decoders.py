"""The decoder registry, :func:`vidio.open`, and the reader every backend sits behind.

A backend only has to turn sorted, unique, valid frame indices into uint8 RGB frames. The
:class:`VideoReader` around it does everything that must not differ between backends:
validating indices, repeating and reordering frames, converting to torch, and turning any
backend failure into a :class:`~vidio.VideoError` that names the file, and checking that
the file is still the one that was probed, before and after every read.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from localkit_registry import Registry, RegistryError

from . import _files
from ._backend import DEFAULT_TIMEOUT, Decoder, decoding_threads
from ._errors import (
    DecoderFallbackWarning,
    DecoderUnavailableError,
    FrameIndexError,
    UnsupportedVideoError,
    VideoDecodeError,
    VidioError,
)
from ._frames import FrameFolderDecoder
from ._probe import VideoInfo, probe

# PyAV is installed on every platform, it is the reference the others are checked against,
# and with keyframe-aware reading that skips unneeded non-reference frames it needs the least
# CPU per random clip of every backend measured (docs/benchmarks.md), so it is the default
# everywhere: the same backend, hence the same pixels, on every machine.
DEFAULT_DECODER = "pyav"
REFERENCE_DECODER = "pyav"

DECODERS = Registry(
    "vidio.decoders",
    owner="localkit-vidio",
    kind="decoder",
    hint="Built-in decoders are 'pyav', 'decord' and 'torchcodec'; a plugin adds one under "
    '[project.entry-points."vidio.decoders"].',
)


def list_decoders(pattern: str | Iterable[str] = "*", exclude: str | Iterable[str] = ()) -> list[str]:
    """Names of the installed decoder backends, without importing them.

    Args:
        pattern: fnmatch pattern(s) to include.
        exclude: fnmatch pattern(s) to leave out.

    Returns:
        Naturally sorted names, e.g. ``["decord", "pyav", "torchcodec"]``; whether each one's
        library is installed here is :func:`decoder_status`'s question.

    Example:
        >>> "pyav" in vidio.list_decoders()
        True
    """
    return DECODERS.names(pattern, exclude)


@dataclass(frozen=True)
class DecoderStatus:
    """Whether one decoder backend can run here, and with what.

    Attributes:
        name: the backend's name.
        available: its library imports and loads.
        library: what it decodes with and the version (``"av 18.1.0 (FFmpeg 8.0.1)"``,
            ``"decord 0.6.0 (from the decord distribution)"``), or why it cannot run and
            what to install.
        devices: the device types it decodes on.
        distribution: the distribution that declares the backend, and its version.
        default: it is the backend :func:`vidio.open` uses when none is named.
    """

    name: str
    available: bool
    library: str
    devices: tuple[str, ...]
    distribution: str
    default: bool


def decoder_status(pattern: str | Iterable[str] = "*") -> list[DecoderStatus]:
    """Every installed decoder backend, whether it can run here, its library's version.

    This imports each backend and its library (``python -m vidio backends`` prints it).

    Args:
        pattern: fnmatch pattern(s) of the backends to look at.

    Returns:
        One :class:`DecoderStatus` per backend, in :func:`list_decoders` order.

    Example:
        >>> [s.name for s in vidio.decoder_status() if s.default]
        ['pyav']
    """
    found = []
    for name in DECODERS.names(pattern):
        devices: tuple[str, ...] = ()
        declared = ", ".join(f"{e.distribution} {e.version}" for e in DECODERS.entries(name))
        try:
            cls = DECODERS.load(name)
            devices = tuple(cls.devices)
            library, available = cls.library(), True
        except (DecoderUnavailableError, RegistryError) as exc:
            library, available = str(exc), False
        found.append(
            DecoderStatus(
                name=name,
                available=available,
                library=library,
                devices=devices,
                distribution=declared,
                default=name == DEFAULT_DECODER,
            )
        )
    return found


def open_video(
    path: str | os.PathLike,
    *,
    backend: str | None = None,
    output: str = "numpy",
    threads: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    device: str = "cpu",
) -> VideoReader:
    """Open a video file or a folder of frame images for random access.

    Args:
        path: the video file, or a folder of frame images named in frame order.
        backend: a name from :func:`list_decoders`; default ``"pyav"`` (see
            :func:`decoder_status`). When the backend cannot return exact frames for this file
            (e.g. decord on open-GOP or MPEG-TS files), PyAV reads it instead and a
            :class:`~vidio.DecoderFallbackWarning` says why. Frame folders are always read
            with PyAV's image decoders.
        output: ``"numpy"`` or ``"torch"``: the type :meth:`VideoReader.get` returns.
        threads: decoding threads. Not given: inside a DataLoader worker the usable CPUs are
            shared out among the loader's workers (one thread each for two workers on two
            cores), elsewhere FFmpeg decides; ``0`` lets FFmpeg decide.
        timeout: seconds a decoder may make no progress before it is stopped and
            :class:`~vidio.VideoTimeoutError` is raised.
        device: where to decode: ``"cpu"``, or ``"cuda"`` / ``"cuda:N"`` with a backend that
            decodes on the GPU (``"torchcodec"``); with ``output="torch"`` the frames stay there.

    Returns:
        A :class:`VideoReader` (also a context manager).

    Raises:
        VideoNotFoundError: the path does not exist.
        VideoError: the path is not a regular file or folder (a FIFO, a device, a symbolic
            link loop), or cannot be read.
        CorruptVideoError: the file is empty, truncated or not a decodable video.
        DecoderUnavailableError: the backend's library is not installed.
        UnknownEntryError: no decoder of that name is installed.
        ValueError: the backend cannot decode on ``device``, ``output`` is unknown, or
            ``threads`` is not an integer >= 0.

    Example:
        >>> with vidio.open("match.mp4") as video:  # doctest: +SKIP
        ...     clip = video.get(range(16), size=(224, 224))
        >>> clip.shape  # doctest: +SKIP
        (16, 224, 224, 3)
    """
    if output not in ("numpy", "torch"):
        raise ValueError(f"output must be 'numpy' or 'torch', not {output!r}")
    threads = decoding_threads(threads)
    name = backend or DEFAULT_DECODER
    cls = DECODERS.load(name)
    device_type = str(device).split(":", 1)[0]
    if device_type not in cls.devices:
        raise ValueError(
            f"decoder '{name}' decodes on {', '.join(map(repr, cls.devices))}, not on {device!r}; "
            f"{_who_decodes_on(device_type)}"
        )
    info = probe(path)
    if info.is_frame_folder:
        if device_type != "cpu":
            raise ValueError(
                f"'{info.path}' is a folder of frame images, which vidio decodes on the CPU only"
            )
        decoder: Decoder = FrameFolderDecoder(info, threads=threads, timeout=timeout)
    else:
        options: dict[str, Any] = {"threads": threads, "timeout": timeout}
        if device_type != "cpu":
            options["device"] = device
        decoder = _create_decoder(name, info, **options)
    return VideoReader(info, decoder, output=output)


def _who_decodes_on(device_type: str) -> str:
    able = []
    for name in DECODERS.names():
        try:
            if device_type in DECODERS.load(name).devices:
                able.append(name)
        except RegistryError:
            continue
    if able:
        return f"backends that do: {', '.join(map(repr, able))}"
    return "no installed backend does (pip install 'localkit-vidio[torchcodec]' decodes on 'cuda')"


def _create_decoder(name: str, info: VideoInfo, **kw: Any) -> Decoder:
    cls = DECODERS.load(name)
    try:
        return cls(info, **kw)
    except UnsupportedVideoError as exc:
        if name == REFERENCE_DECODER or "device" in kw:
            raise
        warnings.warn(
            f"'{info.path}': {exc.reason}; reading it with {REFERENCE_DECODER} instead",
            DecoderFallbackWarning,
            stacklevel=3,
        )
        return DECODERS.load(REFERENCE_DECODER)(info, **kw)


class VideoReader:
    """Random access to the frames of one video; create it with :func:`vidio.open`.

    Frames are identified by index in presentation order, ``0 .. num_frames - 1``; every
    backend returns the same pixels for the same index.

    Example:
        >>> video = vidio.open("match.mp4", output="torch")  # doctest: +SKIP
        >>> len(video), video.fps, video.size  # doctest: +SKIP
        (750, 25.0, (720, 1280))
        >>> video[10].shape  # doctest: +SKIP
        torch.Size([720, 1280, 3])
    """

    def __init__(self, info: VideoInfo, decoder: Decoder, *, output: str = "numpy"):
        self.info = info
        self._decoder = decoder
        self._output = output

    @property
    def path(self) -> str:
        """The file or folder being read."""
        return self.info.path

    @property
    def backend(self) -> str:
        """Name of the decoder actually reading the file (after any fallback)."""
        return self._decoder.name

    @property
    def threads(self) -> int:
        """Decoding threads of this reader (``0``: FFmpeg decides), as resolved when it was opened."""
        return self._decoder.threads

    @property
    def frames_decoded(self) -> int | None:
        """Frames the decoder has produced for this reader so far, or ``None`` when the backend
        cannot tell. Compare with :meth:`VideoInfo.frames_to_decode`, the least any decoder
        starting from keyframes needs (the PyAV backend can need fewer: it skips the
        non-reference frames before each wanted frame)."""
        return self._decoder.frames_decoded

    @property
    def num_frames(self) -> int:
        """Number of decodable frames."""
        return self.info.num_frames

    @property
    def fps(self) -> float:
        """Average frame rate (0.0 for frame folders)."""
        return self.info.fps

    @property
    def width(self) -> int:
        """Stored frame width in pixels."""
        return self.info.width

    @property
    def height(self) -> int:
        """Stored frame height in pixels."""
        return self.info.height

    @property
    def size(self) -> tuple[int, int]:
        """Stored frame size as ``(height, width)``."""
        return (self.info.height, self.info.width)

    @property
    def timestamps(self) -> np.ndarray:
        """Presentation time of every frame in seconds (exact for variable frame rate)."""
        return self.info.timestamps

    def __len__(self) -> int:
        return self.info.num_frames

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, slice):
            return self.get(range(*key.indices(self.num_frames)))
        return self.get([key])[0]

    def get(self, indices: Iterable[int] | np.ndarray, size: tuple[int, int] | None = None) -> Any:
        """Decode frames by index.

        Args:
            indices: frame indices in any order, repeats allowed (a list, range, numpy array
                or torch tensor of integers).
            size: ``(height, width)`` to scale to while decoding (bilinear), or ``None``.

        Returns:
            uint8 RGB frames ``(len(indices), height, width, 3)``, a numpy array or a torch
            tensor depending on the reader's ``output``.

        Raises:
            FrameIndexError: an index is not an integer in ``[0, num_frames)``.
            VideoDecodeError: a requested frame cannot be decoded (damaged data, crashed decoder),
                or the file changed since it was opened.
            VideoTimeoutError: the decoder made no progress for ``timeout`` seconds.
        """
        wanted = self._check_indices(indices)
        height, width = self._check_size(size)
        unique, inverse = np.unique(wanted, return_inverse=True)
        if len(unique):
            frames = self._read(unique, None if size is None else (height, width))
        else:
            frames = np.empty((0, height, width, 3), dtype=np.uint8)
        expected = (len(unique), height, width, 3)
        is_tensor = not isinstance(frames, np.ndarray)
        dtype_ok = str(frames.dtype) in ("uint8", "torch.uint8")
        if tuple(frames.shape) != expected or not dtype_ok:
            raise VideoDecodeError.about(
                self.path,
                f"decoder '{self.backend}' returned {frames.dtype} frames of shape {tuple(frames.shape)}, "
                f"expected uint8 {expected}",
                "This is a bug in that decoder backend",
            )
        if len(unique) != len(wanted) or not np.array_equal(unique, wanted):
            order = inverse.reshape(-1)
            if is_tensor:
                import torch

                order = torch.from_numpy(order).to(frames.device)
            frames = frames[order]
        if self._output == "torch":
            import torch

            return frames.contiguous() if is_tensor else torch.from_numpy(np.ascontiguousarray(frames))
        return frames.cpu().numpy() if is_tensor else frames

    def _read(self, indices: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
        self._check_unchanged()
        try:
            frames = self._decoder.read(indices, size)
        except VidioError:
            self._check_unchanged()
            raise
        except Exception as exc:  # a backend may fail in any way; the caller needs the file named
            self._check_unchanged()
            raise VideoDecodeError.about(
                self.path, f"decoder '{self.backend}' failed ({type(exc).__name__}: {exc})"
            ) from exc
        self._check_unchanged()
        return frames

    def _check_unchanged(self) -> None:
        """Raise when the file (or frame folder) is no longer the version that was probed.

        A file truncated or rewritten under an open reader would otherwise give frames of the
        new content, wrong frames, or a decoder error that blames the wrong thing.
        """
        before = self.info.signature
        if not before:
            return
        try:
            now = _files.signature(_files.stat_path(self.path))
        except _files.PathProblem as exc:
            raise VideoDecodeError.about(
                self.path, _files.changed(f"now: {exc.reason}").reason, "Open it again once it is complete"
            ) from None
        if now == before:
            return
        if now[:2] != before[:2]:
            detail = "it was replaced by another file"
        elif now[2] != before[2]:
            detail = f"it was {before[2]} bytes when opened and is {now[2]} bytes now"
        else:
            detail = "it was modified"
        raise VideoDecodeError.about(
            self.path, _files.changed(detail).reason, "Open it again once it is complete"
        )

    def _check_indices(self, indices: Iterable[int] | np.ndarray) -> np.ndarray:
        if hasattr(indices, "numpy") and hasattr(indices, "detach"):
            indices = indices.detach().cpu().numpy()
        array = np.asarray(indices if isinstance(indices, np.ndarray) else list(indices))
        if array.size == 0:
            return np.empty(0, dtype=np.int64)
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise FrameIndexError.about(
                self.path,
                f"frame indices must be a flat sequence of integers, got {array.dtype} of shape {array.shape}",
                "Pass e.g. a list, range or int64 array",
            )
        array = array.astype(np.int64)
        bad = array[(array < 0) | (array >= self.num_frames)]
        if len(bad):
            raise FrameIndexError.about(
                self.path,
                f"frame index {int(bad[0])} is outside [0, {self.num_frames}) ({len(bad)} of "
                f"{len(array)} requested indices are)",
                f"The video has {self.num_frames} decodable frames",
            )
        return array

    def _check_size(self, size: tuple[int, int] | None) -> tuple[int, int]:
        if size is None:
            return self.info.height, self.info.width
        try:
            height, width = (int(v) for v in size)
        except (TypeError, ValueError):
            raise ValueError(f"size must be (height, width), got {size!r}") from None
        if height < 1 or width < 1:
            raise ValueError(f"size must be positive (height, width), got {size!r}")
        return height, width

    def close(self) -> None:
        """Release the backend's resources; the reader cannot be used afterwards."""
        self._decoder.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"VideoReader('{self.path}', frames={self.num_frames}, fps={self.fps:.3f}, "
            f"size={self.size}, backend='{self.backend}')"
        )
