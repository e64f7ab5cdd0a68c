"""The interface every decoder backend implements.

It sits beneath everything that uses it: the backends (``_pyav``, ``_decord``, ``_frames``)
and the reader in ``_decoders`` import it, and it imports none of them.
"""

from __future__ import annotations

import abc
import os
from typing import Any, ClassVar

import numpy as np

from ._probe import VideoInfo

DEFAULT_TIMEOUT = 30.0


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def decoding_threads(threads: int | None) -> int:
    """The decoding threads a reader opened now uses: ``threads`` when given, else shared out.

    Not given (``None``): inside a DataLoader worker, the usable CPUs divided among the
    loader's workers (at least 1), so that two workers on two cores decode with one thread
    each instead of four threads fighting over two cores (measured on prepared copies: 25%
    more clips per second, docs/vidio.md); elsewhere 0, which lets FFmpeg decide. ``0`` given
    explicitly also means FFmpeg's choice.

    Raises:
        ValueError: ``threads`` is not ``None`` or an integer >= 0.
    """
    if threads is None:
        import torch.utils.data

        worker = torch.utils.data.get_worker_info()
        return 0 if worker is None else max(1, usable_cpus() // worker.num_workers)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(
            f"threads must be an integer >= 0 (0: FFmpeg decides) or None (shared out among "
            f"DataLoader workers), got {threads!r}"
        )
    return threads


class Decoder(abc.ABC):
    """A decoding backend for one open video; subclass it to add a backend as a plugin.

    Declare the subclass in the ``vidio.decoders`` entry-point group of your distribution.
    vidio probes the file first (:func:`vidio.probe`) and hands the backend the frame table:
    frame ``i`` is the frame whose presentation timestamp is ``info.pts[i]``. Import the
    backend's library inside ``__init__`` so that listing decoders stays cheap, and raise
    :class:`~vidio.DecoderUnavailableError` naming the package to install when it is missing.

    Args:
        info: the probed video.
        threads: decoding threads, an integer >= 0 (0 lets the library decide); vidio has
            already resolved a ``threads`` its caller left unset (:func:`vidio.open`).
        timeout: seconds the backend may go without progress before it must give up.
        **options: backend-specific options; unknown ones must be ignored. vidio passes
            ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...) when the caller asks for a
            device other than the CPU, and only to backends whose ``devices`` name its type.

    Raises:
        UnsupportedVideoError: from ``__init__`` when this backend cannot return exact frames
            for ``info``; vidio then reads the file with PyAV and warns.

    Attributes:
        name: the backend's name, as in the entry point.
        devices: the device types it decodes on (``("cpu",)`` unless it says more).
        frames_decoded: frames its decoder has produced so far for this video, when the
            backend can tell (``None`` otherwise); :attr:`VideoReader.frames_decoded` reports it.

    Example:
        >>> class MyDecoder(vidio.Decoder):  # doctest: +SKIP
        ...     name = "mine"
        ...     def read(self, indices, size):
        ...         return my_library.frames(self.info.path, indices, size)
    """

    name: ClassVar[str] = ""
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    frames_decoded: int | None = None

    def __init__(
        self, info: VideoInfo, *, threads: int = 0, timeout: float = DEFAULT_TIMEOUT, **options: Any
    ):
        self.info = info
        self.threads = threads
        self.timeout = timeout

    @classmethod
    def library(cls) -> str:
        """The library this backend decodes with and its version, e.g. ``"av 18.1.0 (FFmpeg 8.0)"``.

        Used by ``python -m vidio backends``; it may import the library, but must not open a file.

        Raises:
            DecoderUnavailableError: the library is missing or cannot load, naming what to install.
        """
        return "unknown"

    @abc.abstractmethod
    def read(self, indices: np.ndarray, size: tuple[int, int] | None) -> Any:
        """Decode frames.

        Args:
            indices: int64 frame indices, sorted, unique, each in ``[0, info.num_frames)``.
            size: ``(height, width)`` to scale to while decoding, or ``None`` for the stored size.

        Returns:
            uint8 frames ``(len(indices), height, width, 3)`` in RGB order: a numpy array, or a
            torch tensor (for instance on the GPU it decoded on).
        """

    def close(self) -> None:  # noqa: B027 - closing is optional for backends that hold nothing
        """Release files and decoder state."""
