"""Small videos written with PyAV, in the formats vidio must read exactly.

Every frame gets a distinct pattern (gradients moving at different speeds plus a moving
block), so a frame returned for the wrong index cannot go unnoticed. Sizes and lengths are
tiny: the whole set encodes in well under a second.
"""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np
import pytest

DATA = Path(__file__).parent / "data"


def pattern(index: int, height: int, width: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[..., 0] = (x * 3 + index * 7) % 256
    image[..., 1] = (y * 5 + index * 3) % 256
    image[..., 2] = ((x + y) * 2 + index * 11) % 256
    left = (index * 4) % max(1, width - 8)
    image[4:12, left : left + 8] = 255
    return image


def write_video(
    path: Path,
    codec: str = "libx264",
    frames: int = 40,
    width: int = 64,
    height: int = 48,
    fps: int = 25,
    pix_fmt: str = "yuv420p",
    options: dict | None = None,
    container_options: dict | None = None,
    frame_ms: list[int] | None = None,
    rotation: int = 0,
) -> Path:
    """Encode ``frames`` pattern frames; ``frame_ms`` gives per-frame durations (variable rate)."""
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = {"g": "10", **(options or {})}
        if rotation:
            stream.set_display_rotation(rotation)
        if frame_ms:
            stream.codec_context.time_base = fractions.Fraction(1, 1000)
        pts = 0
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(i, height, width), format="rgb24")
            if frame_ms:
                frame.pts, frame.time_base = pts, fractions.Fraction(1, 1000)
                pts += frame_ms[i % len(frame_ms)]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frame_folder(folder: Path, count: int, height: int, width: int, name: str = "{:06d}.png") -> Path:
    """Write pattern frames ``0 .. count - 1`` as PNG images named ``name.format(i + 1)``."""
    folder.mkdir(parents=True)
    for i in range(count):
        with av.open(str(folder / name.format(i + 1)), "w") as image:
            stream = image.add_stream("png")
            stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
            image.mux(stream.encode(av.VideoFrame.from_ndarray(pattern(i, height, width), format="rgb24")))
            image.mux(stream.encode())
    return folder


def decode_all(path: Path) -> np.ndarray:
    """The reference: every frame as PyAV decodes it front to back, RGB."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def write_edit_list(source: Path, path: Path, cut: int = 5) -> Path:
    """Remux ``source`` so that its first ``cut`` frames fall before zero: an MP4 edit list."""
    with av.open(str(source)) as src:
        stream = src.streams.video[0]
        step = int(round(1 / (stream.average_rate * stream.time_base)))
        with av.open(str(path), "w") as dst:
            out = dst.add_stream_from_template(stream)
            for packet in src.demux(stream):
                if packet.dts is None:
                    continue
                packet.pts -= cut * step
                packet.dts -= cut * step
                packet.stream = out
                dst.mux(packet)
    return path


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> dict[str, Path]:
    """Well-formed videos every backend must read exactly, by name."""
    root = tmp_path_factory.mktemp("videos")
    return {
        "h264.mp4": write_video(root / "h264.mp4"),
        "h264.mkv": write_video(root / "h264.mkv"),
        "mpeg4.avi": write_video(root / "mpeg4.avi", codec="mpeg4"),
        "vp9.webm": write_video(root / "vp9.webm", codec="libvpx-vp9"),
        "odd-size.mp4": write_video(root / "odd-size.mp4", width=67, height=45, pix_fmt="yuv444p"),
        "vfr.mp4": write_video(root / "vfr.mp4", frame_ms=[40, 40, 90, 20]),
        "vfr.mkv": write_video(root / "vfr.mkv", frame_ms=[40, 40, 90, 20]),
    }


@pytest.fixture(scope="session")
def tricky_videos(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """Files on which decord returns wrong frames, with the reason vidio gives for not using it."""
    root = tmp_path_factory.mktemp("tricky")
    plain = write_video(root / "plain.mp4", frames=60, options={"g": "25"})
    return {
        "open-gop.avi": (
            write_video(root / "open-gop.avi", codec="mpeg4", frames=60, options={"g": "12", "bf": "2"}),
            "open GOPs",
        ),
        "open-gop.mkv": (
            write_video(root / "open-gop.mkv", codec="mpeg4", frames=60, options={"g": "12", "bf": "2"}),
            "open GOPs",
        ),
        "mpegts.ts": (write_video(root / "mpegts.ts", frames=60), "does not seek exactly"),
        "edit-list.mp4": (write_edit_list(plain, root / "edit-list.mp4"), "edit list"),
        "rotated.mp4": (write_video(root / "rotated.mp4", rotation=90), "rotation"),
    }


@pytest.fixture(scope="session")
def long_video(tmp_path_factory) -> Path:
    """A longer H.264 video (200 frames) for samplers and datasets that need room."""
    return write_video(tmp_path_factory.mktemp("long") / "long.mp4", frames=200, width=40, height=32)


@pytest.fixture(scope="session")
def make_video():
    """The ``write_video`` helper, for tests that need a video of their own."""
    return write_video


@pytest.fixture(scope="session")
def make_frame_folder():
    """The ``write_frame_folder`` helper: a folder of pattern frames as PNG images."""
    return write_frame_folder


@pytest.fixture(scope="session")
def reference():
    """The ``decode_all`` helper: PyAV's front-to-back decode, the ground truth."""
    return decode_all


@pytest.fixture(scope="session")
def frame_pattern():
    """The ``pattern`` helper: the image written as frame ``i``."""
    return pattern
