"""vidio: fast, safe video clips for training.

Read frames straight from video files (decord by default, PyAV as the reference), sample
clips, and transform them as batched tensors.

Example:
    >>> import vidio
    >>> with vidio.open("dive.mp4") as video:  # doctest: +SKIP
    ...     frames = video.get(vidio.UniformSampler(16)(len(video)), size=(224, 224))
"""

from importlib import metadata as _metadata

from ._decoders import Decoder, VideoReader, list_decoders
from ._decoders import open_video as open
from ._errors import (
    CorruptVideoError,
    DecoderFallbackWarning,
    DecoderUnavailableError,
    FrameIndexError,
    UnsupportedVideoError,
    VideoDecodeError,
    VideoError,
    VideoNotFoundError,
    VideoTimeoutError,
    VidioError,
)
from ._probe import VideoInfo, probe
from ._sampling import ClipSampler, RandomShift, SegmentSampler, SlidingWindowSampler, UniformSampler
from ._transforms import CenterCrop, Compose, Normalize, RandomCrop, RandomHorizontalFlip, Resize, ToFloatClip

__version__ = _metadata.version("vidio")

__all__ = [
    "CenterCrop",
    "ClipSampler",
    "Compose",
    "CorruptVideoError",
    "Decoder",
    "DecoderFallbackWarning",
    "DecoderUnavailableError",
    "FrameIndexError",
    "Normalize",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomShift",
    "Resize",
    "SegmentSampler",
    "SlidingWindowSampler",
    "ToFloatClip",
    "UniformSampler",
    "UnsupportedVideoError",
    "VideoDecodeError",
    "VideoError",
    "VideoInfo",
    "VideoNotFoundError",
    "VideoReader",
    "VideoTimeoutError",
    "VidioError",
    "list_decoders",
    "open",
    "probe",
]
