"""Every problem vidio reports: one hierarchy, messages that name the thing and the fix."""

from __future__ import annotations

import os


class VidioError(Exception):
    """Base class of every error vidio raises."""


class VideoError(VidioError):
    """A video (file or frame folder) could not be read.

    The message names the file and the reason; ``path`` and ``reason`` hold them separately.
    The constructor takes the full message first so that the error survives being re-raised
    from a DataLoader worker, which rebuilds exceptions from their message alone.
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None, reason: str | None = None):
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)
        self.reason = reason

    @classmethod
    def about(cls, path: str | os.PathLike, reason: str, fix: str = "") -> VideoError:
        """Build the error for ``path`` with a uniform message: file, reason, then the fix."""
        message = f"cannot read video '{os.fspath(path)}': {reason}"
        if fix:
            message += f". {fix}"
        return cls(message, path=path, reason=reason)


class VideoNotFoundError(VideoError, FileNotFoundError):
    """The path does not exist."""


class CorruptVideoError(VideoError):
    """The file is empty, truncated, not a video, or has no decodable video stream."""


class VideoDecodeError(VideoError):
    """Decoding failed part way: a damaged packet, a frame that never decodes, a crashed decoder."""


class VideoTimeoutError(VideoError, TimeoutError):
    """A decoder made no progress for longer than the reader's ``timeout``; it was stopped."""


class FrameIndexError(VideoError, IndexError):
    """A requested frame index is not an integer in ``[0, num_frames)``."""


class UnsupportedVideoError(VideoError):
    """A decoder backend cannot return exact frames for this file (vidio then falls back to PyAV)."""


class DecoderUnavailableError(VidioError, ImportError):
    """A decoder backend's library is not installed."""


class DatasetError(VidioError, ValueError):
    """A dataset's files are missing or its annotations are malformed."""


class UnsafePickleError(DatasetError):
    """An annotation pickle refers to something other than builtins and numpy arrays."""


class DecoderFallbackWarning(UserWarning):
    """The requested decoder cannot read a file exactly, so PyAV reads it instead."""
