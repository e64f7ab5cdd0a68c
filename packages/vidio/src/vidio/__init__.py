"""vidio: fast, safe video clips for training.

Read frames straight from video files (PyAV by default and as the reference; decord and
torchcodec on request), sample clips, transform them as batched tensors, load the
action-quality datasets MTL-AQA, JIGSAWS and AQA-7 or any dataset described by a CSV
manifest, and prepare videos for training (``python -m vidio prepare``).

Example:
    >>> import vidio
    >>> with vidio.open("dive.mp4") as video:  # doctest: +SKIP
    ...     frames = video.get(vidio.UniformSampler(16)(len(video)), size=(224, 224))
"""

from ._backend import Decoder
from ._datasets import (
    AQA7,
    JIGSAWS,
    MTLAQA,
    ClipDataset,
    ClipRecord,
    CSVDataset,
    create_dataset,
    list_datasets,
    provenance,
)
from ._decoders import DecoderStatus, VideoReader, decoder_status, list_decoders
from ._decoders import open_video as open
from ._errors import (
    CorruptVideoError,
    DatasetError,
    DecoderFallbackWarning,
    DecoderUnavailableError,
    FrameIndexError,
    UnsafePickleError,
    UnsupportedVideoError,
    VideoDecodeError,
    VideoError,
    VideoNotFoundError,
    VideoTimeoutError,
    VidioError,
)
from ._probe import VideoInfo, probe
from ._safepickle import load_pickle
from ._sampling import ClipSampler, RandomShift, SegmentSampler, SlidingWindowSampler, UniformSampler
from ._transforms import CenterCrop, Compose, Normalize, RandomCrop, RandomHorizontalFlip, Resize, ToFloatClip

__version__ = "0.1.0"

__all__ = [
    "AQA7",
    "JIGSAWS",
    "MTLAQA",
    "CSVDataset",
    "CenterCrop",
    "ClipDataset",
    "ClipRecord",
    "ClipSampler",
    "Compose",
    "CorruptVideoError",
    "DatasetError",
    "Decoder",
    "DecoderFallbackWarning",
    "DecoderStatus",
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
    "UnsafePickleError",
    "UnsupportedVideoError",
    "VideoDecodeError",
    "VideoError",
    "VideoInfo",
    "VideoNotFoundError",
    "VideoReader",
    "VideoTimeoutError",
    "VidioError",
    "create_dataset",
    "decoder_status",
    "list_datasets",
    "list_decoders",
    "load_pickle",
    "open",
    "probe",
    "provenance",
]
