"""vidio: fast, safe video clips for training.

Read frames straight from video files (decord by default, PyAV as the reference), sample
clips, transform them as batched tensors, and load the action-quality datasets MTL-AQA,
JIGSAWS and AQA-7, or any dataset described by a CSV manifest.

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
from ._decoders import VideoReader, list_decoders
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
    "list_datasets",
    "list_decoders",
    "load_pickle",
    "open",
    "probe",
    "provenance",
]
