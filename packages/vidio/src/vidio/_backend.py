"""The interface every decoder backend implements.

It sits beneath everything that uses it: the backends (``_pyav``, ``_decord``, ``_frames``)
and the reader in ``_decoders`` import it, and it imports none of them.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np

from ._probe import VideoInfo

DEFAULT_TIMEOUT = 30.0


class Decoder(abc.ABC):
    """A decoding backend for one open video; subclass it to add a backend as a plugin.

    Declare the subclass in the ``vidio.decoders`` entry-point group of your distribution.
    vidio probes the file first (:func:`vidio.probe`) and hands the backend the frame table:
    frame ``i`` is the frame whose presentation timestamp is ``info.pts[i]``. Import the
    backend's library inside ``__init__`` so that listing decoders stays cheap, and raise
    :class:`~vidio.DecoderUnavailableError` naming the package to install when it is missing.

    Args:
        info: the probed video.
        threads: decoding threads (0 lets the library decide).
        timeout: seconds the backend may go without progress before it must give up.
        **options: backend-specific options; unknown ones must be ignored.

    Raises:
        UnsupportedVideoError: from ``__init__`` when this backend cannot return exact frames
            for ``info``; vidio then reads the file with PyAV and warns.

    Example:
        >>> class MyDecoder(vidio.Decoder):  # doctest: +SKIP
        ...     name = "mine"
        ...     def read(self, indices, size):
        ...         return my_library.frames(self.info.path, indices, size)
    """

    name: ClassVar[str] = ""

    def __init__(
        self, info: VideoInfo, *, threads: int = 0, timeout: float = DEFAULT_TIMEOUT, **options: Any
    ):
        self.info = info
        self.threads = threads
        self.timeout = timeout

    @abc.abstractmethod
    def read(self, indices: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
        """Decode frames.

        Args:
            indices: int64 frame indices, sorted, unique, each in ``[0, info.num_frames)``.
            size: ``(height, width)`` to scale to while decoding, or ``None`` for the stored size.

        Returns:
            uint8 array ``(len(indices), height, width, 3)`` in RGB order.
        """

    def close(self) -> None:  # noqa: B027 - closing is optional for backends that hold nothing
        """Release files and decoder state."""
