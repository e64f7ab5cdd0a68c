"""What a video holds, learned cheaply and safely before any backend touches it.

``probe`` demuxes the whole file with PyAV (reading packets, not decoding them) and decodes
only the first frame. That pass yields the frame table every backend shares: frame ``i`` is
the ``i``-th packet in presentation order, identified by its timestamp. It also answers the
questions that decide whether a file can be trusted to a backend at all: is it empty, cut
short, without timestamps, open-GOP, rotated, edited with discarded packets. FFmpeg's
demuxers report damage as errors, so this pass fails fast and never hangs; vidio opens the
file itself and hands PyAV the open file, which ``_files`` guarantees is a regular file
(a FIFO or device would block the open forever).
"""

from __future__ import annotations

import functools
import io
import os
import stat
from dataclasses import dataclass, field
from fractions import Fraction
from typing import BinaryIO, NamedTuple

import numpy as np

from localkit_registry import natural_key

from . import _files
from ._errors import CorruptVideoError, VideoError, VideoNotFoundError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_FRAMES_CONTAINER = "image folder"


class _Packet(NamedTuple):
    pts: int | None
    keyframe: bool
    discard: bool
    corrupt: bool
    duration: int | None


@dataclass(frozen=True, eq=False)
class VideoInfo:
    """The frame table and properties of one video file or frame folder.

    Attributes:
        path: the file or folder.
        container: FFmpeg's demuxer name (``"mov,mp4,m4a,3gp,3g2,mj2"``, ``"matroska,webm"``,
            ``"avi"``, ...) or ``"image folder"``.
        codec: the video codec (``"h264"``, ``"vp9"``, ...) or the image file extension.
        width, height: stored frame size in pixels (rotation metadata is not applied).
        num_frames: decodable frames, i.e. packets that carry a frame.
        fps: average frame rate (0.0 when unknown, e.g. for a frame folder).
        time_base: unit of ``pts``.
        start_pts: the stream's start time in ``time_base`` units.
        pts: presentation timestamp of every frame, strictly increasing, ``(num_frames,)`` int64.
        keyframes: indices of frames a decoder can start from, increasing, int64.
        open_gop: a keyframe is followed in decode order by frames shown before it, so
            decoding from that keyframe cannot produce them.
        rotation: degrees of the display-matrix rotation stored with the frames.
        discarded: packets the container marks to be dropped (MP4 edit lists).
        duplicate_pts: packets that repeat another packet's timestamp (dropped from the table).
        stream_index: the video stream's index in the container.
        files: for a frame folder, the image files in frame order.
        signature: device, inode, size and modification time of the file or folder when it
            was probed; a reader checks it around every read (empty: not checked).
    """

    path: str
    container: str
    codec: str
    width: int
    height: int
    num_frames: int
    fps: float
    time_base: Fraction
    start_pts: int
    pts: np.ndarray
    keyframes: np.ndarray
    open_gop: bool = False
    rotation: int = 0
    discarded: int = 0
    duplicate_pts: int = 0
    stream_index: int = 0
    files: tuple[str, ...] = field(default=(), repr=False)
    signature: tuple[int, ...] = field(default=(), repr=False)

    @property
    def is_frame_folder(self) -> bool:
        """True when the frames are image files in a folder."""
        return self.container == _FRAMES_CONTAINER

    @property
    def timestamps(self) -> np.ndarray:
        """Presentation time of every frame in seconds from the stream start, float64."""
        return (self.pts - self.start_pts).astype(np.float64) * float(self.time_base)

    @property
    def duration(self) -> float:
        """Seconds from the first frame to the end of the last one (frames / fps when unknown)."""
        if self.num_frames == 0:
            return 0.0
        if self.fps <= 0:
            return 0.0
        stamps = self.timestamps
        return float(stamps[-1] - stamps[0]) + 1.0 / self.fps

    def keyframe_before(self, index: int) -> int:
        """The last keyframe at or before frame ``index`` (0 when none is marked)."""
        pos = int(np.searchsorted(self.keyframes, index, side="right")) - 1
        return int(self.keyframes[pos]) if pos >= 0 else 0


def probe(path: str | os.PathLike) -> VideoInfo:
    """Read the frame table and properties of a video file or a folder of frame images.

    Results are cached per process, keyed by the path, size and modification time.

    Args:
        path: a video file FFmpeg can demux, or a folder of ``.jpg``/``.png`` frames whose
            names sort in frame order (``000001.jpg``, ``img_00002.jpg``, ...).

    Returns:
        The :class:`VideoInfo`.

    Raises:
        VideoNotFoundError: the path does not exist.
        CorruptVideoError: the file is empty, not a video, truncated, without timestamps, or
            no frame of it can be decoded; the folder holds no images.

    Example:
        >>> info = vidio.probe("match.mp4")  # doctest: +SKIP
        >>> info.num_frames, info.fps, (info.height, info.width)  # doctest: +SKIP
        (750, 25.0, (720, 1280))
    """
    path = os.fspath(path)
    try:
        found = _files.stat_path(path)
    except _files.PathProblem as exc:
        if exc.missing:
            raise VideoNotFoundError.about(
                path, "no such file or folder", "Check the path and the dataset root"
            ) from None
        raise VideoError.about(path, exc.reason, "Point to a video file or a folder of frames") from None
    signature = _files.signature(found)
    if stat.S_ISDIR(found.st_mode):
        return _probe_folder_cached(os.path.abspath(path), signature)
    if not stat.S_ISREG(found.st_mode):
        raise VideoError.about(
            path, _files.not_regular(found.st_mode).reason, "Point to a video file or a folder of frames"
        )
    if found.st_size == 0:
        raise CorruptVideoError.about(path, "the file is empty (0 bytes)", "Copy or download it again")
    return _probe_file_cached(os.path.abspath(path), signature)


@functools.lru_cache(maxsize=256)
def _probe_file_cached(path: str, signature: tuple[int, ...]) -> VideoInfo:
    return _probe_file(path, signature)


@functools.lru_cache(maxsize=256)
def _probe_folder_cached(path: str, signature: tuple[int, ...]) -> VideoInfo:
    return _probe_folder(path, signature)


def _corrupt(path: str, reason: str, fix: str = "Re-encode or download the file again") -> CorruptVideoError:
    return CorruptVideoError.about(path, reason, fix)


def _probe_file(path: str, signature: tuple[int, ...]) -> VideoInfo:
    try:
        file = _files.open_regular(path, buffering=0)
    except _files.PathProblem as exc:
        raise VideoError.about(path, exc.reason, "Point to a video file or a folder of frames") from None
    with file:
        if _files.signature(os.fstat(file.fileno())) != signature:
            raise VideoError.about(
                path, _files.changed("it was replaced or modified while being opened").reason, "Try again"
            )
        return _probe_open_file(path, file, signature)


def _probe_open_file(path: str, file: BinaryIO, signature: tuple[int, ...]) -> VideoInfo:
    import av

    size = signature[2]
    try:
        container = av.open(file, metadata_errors="ignore")
    except Exception as exc:  # PyAV raises many types (FFmpegError, UnicodeDecodeError, ...) for bad input
        raise _corrupt(
            path, f"FFmpeg cannot open it as a video container ({type(exc).__name__}: {exc})"
        ) from exc
    with container:
        stream = container.streams.best("video")
        if stream is None:
            raise _corrupt(
                path, "it contains no video stream", "Check that this is the video and not its audio"
            )
        declared = stream.frames
        # One frame needs no decoding threads, and a threadless decoder is safe to free in a forked child.
        stream.codec_context.thread_count = 1
        packets, first_frame, decode_error = _scan(path, container, stream)
        only_stream = len(container.streams) == 1
        container_end = None
        # Matroska's muxer writes the finished file's duration into its header, so a file cut
        # short still announces it; other containers estimate duration too loosely to compare.
        if container.duration is not None and only_stream and container.format.name == "matroska,webm":
            container_end = (container.start_time or 0) / av.time_base + container.duration / av.time_base
        info = _build(path, container.format.name, stream, packets, first_frame, decode_error, signature)
    _check_complete(path, info, declared, packets, container_end, size)
    return info


def _scan(path, container, stream):
    """Demux every packet of ``stream``; decode only until the first frame appears."""
    import av

    packets = []
    first_frame = None
    decode_error = None
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            packets.append(
                _Packet(packet.pts, packet.is_keyframe, packet.is_discard, packet.is_corrupt, packet.duration)
            )
            if first_frame is None:
                try:
                    frames = stream.decode(packet)
                except av.FFmpegError as exc:
                    decode_error = exc
                    continue
                if frames:
                    first_frame = frames[0]
        if first_frame is None and packets:
            try:
                frames = stream.decode(None)
            except av.FFmpegError as exc:
                decode_error = exc
                frames = []
            first_frame = frames[0] if frames else None
    except Exception as exc:  # a demuxer may fail in any way on damaged input; report where
        raise _corrupt(
            path, f"demuxing failed after {len(packets)} packets ({type(exc).__name__}: {exc})"
        ) from exc
    return packets, first_frame, decode_error


def _build(path, container_name, stream, packets, first_frame, decode_error, signature) -> VideoInfo:
    if not packets:
        raise _corrupt(path, "its video stream holds no frames")
    if first_frame is None:
        detail = f" ({type(decode_error).__name__}: {decode_error})" if decode_error else ""
        raise _corrupt(path, f"none of its {len(packets)} packets decodes to a frame{detail}")
    kept = [p for p in packets if not p.discard]
    discarded = len(packets) - len(kept)
    if any(p.pts is None for p in kept):
        raise _corrupt(
            path,
            "its packets carry no presentation timestamps (a raw elementary stream)",
            f"Put it in a container first: ffmpeg -i '{path}' -c copy out.mp4",
        )
    pts = np.array([p.pts for p in kept], dtype=np.int64)
    is_key = np.array([p.keyframe for p in kept], dtype=bool)
    order = np.argsort(pts, kind="stable")
    sorted_pts = pts[order]
    unique = np.ones(len(sorted_pts), dtype=bool)
    unique[1:] = sorted_pts[1:] != sorted_pts[:-1]
    keyframes = np.flatnonzero(is_key[order][unique]).astype(np.int64)
    if len(keyframes) == 0 or keyframes[0] != 0:
        keyframes = np.concatenate([[0], keyframes]).astype(np.int64)
    time_base = stream.time_base or Fraction(1, 1)
    fps = float(stream.average_rate) if stream.average_rate else 0.0
    table = sorted_pts[unique]
    if fps <= 0 and len(table) > 1:
        fps = (len(table) - 1) / (float(table[-1] - table[0]) * float(time_base))
    return VideoInfo(
        path=path,
        container=container_name,
        codec=stream.codec_context.name,
        width=first_frame.width,
        height=first_frame.height,
        num_frames=len(table),
        fps=fps,
        time_base=time_base,
        start_pts=stream.start_time if stream.start_time is not None else int(table[0]),
        pts=table,
        keyframes=keyframes,
        open_gop=_has_open_gop(pts, is_key),
        rotation=int(round(first_frame.rotation or 0)) % 360,
        discarded=discarded,
        duplicate_pts=int((~unique).sum()),
        stream_index=stream.index,
        signature=signature,
    )


def _has_open_gop(pts: np.ndarray, is_key: np.ndarray) -> bool:
    """True when a frame after a keyframe in decode order is shown before that keyframe."""
    keys = np.flatnonzero(is_key)
    bounds = np.append(keys, len(pts))
    return any(bool((pts[start + 1 : end] < pts[start]).any()) for start, end in zip(bounds[:-1], bounds[1:]))


def _check_complete(path, info, declared, packets, container_end, size) -> None:
    """Raise when the container says more frames, or a longer video, than the file holds."""
    if declared and len(packets) < declared:
        raise _corrupt(
            path,
            f"the file is truncated: its container lists {declared} frames but only {len(packets)} are "
            f"present ({size} bytes on disk)",
        )
    if packets[-1].corrupt:
        raise _corrupt(path, "the file is truncated: its last packet is cut off")
    if container_end is not None and info.fps > 0:
        last = packets[-1]
        end = (max(p.pts for p in packets) + (last.duration or 0)) * float(info.time_base)
        if end < container_end - 1.5 / info.fps - 1e-3:
            raise _corrupt(
                path,
                f"the file is truncated: its header gives a duration of {container_end:.2f} s but the "
                f"frames end at {end:.2f} s",
            )


def _probe_folder(path: str, signature: tuple[int, ...]) -> VideoInfo:
    import av

    try:
        with os.scandir(path) as listing:
            entries = [
                e for e in listing if e.name.lower().endswith(IMAGE_EXTENSIONS) and not e.name.startswith(".")
            ]
    except OSError as exc:
        raise VideoError.about(path, f"the folder cannot be listed ({exc.strerror})") from None
    entries.sort(key=lambda e: natural_key(e.name))
    if not entries:
        raise CorruptVideoError.about(
            path,
            f"the folder holds no frame images ({', '.join(IMAGE_EXTENSIONS)})",
            "Point to the folder that contains the extracted frames",
        )
    for entry in entries:
        # A FIFO among the frames would block the read of that frame forever: refuse the folder now.
        try:
            regular = entry.is_file()
        except OSError:  # a symbolic link loop
            regular = False
        if not regular:
            try:
                problem = _files.not_regular(_files.stat_path(entry.path).st_mode)
            except _files.PathProblem as exc:
                problem = _files.PathProblem("it is a broken symbolic link") if exc.missing else exc
            raise VideoError.about(
                path,
                f"its frame image '{entry.name}': {problem.reason}",
                "A frame folder must hold only image files",
            )
    files = tuple(e.path for e in entries)
    names = [e.name for e in entries]
    try:
        with av.open(io.BytesIO(_files.read_regular(files[0])), metadata_errors="ignore") as image:
            image.streams.video[0].codec_context.thread_count = 1
            frame = next(image.decode(video=0))
    except _files.PathProblem as exc:
        raise VideoError.about(files[0], exc.reason) from None
    except Exception as exc:  # any decoder failure on the first image means the folder is unusable
        raise CorruptVideoError.about(
            files[0], f"the first frame image cannot be decoded ({type(exc).__name__}: {exc})"
        ) from exc
    n = len(files)
    return VideoInfo(
        path=path,
        container=_FRAMES_CONTAINER,
        codec=os.path.splitext(names[0])[1].lstrip(".").lower(),
        width=frame.width,
        height=frame.height,
        num_frames=n,
        fps=0.0,
        time_base=Fraction(1, 1),
        start_pts=0,
        pts=np.arange(n, dtype=np.int64),
        keyframes=np.arange(n, dtype=np.int64),
        files=files,
        signature=signature,
    )
