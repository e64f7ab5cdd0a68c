"""Hostile inputs: files that are not files, files that change under a reader, annotations that
lie, manifests that are not UTF-8 text, pickles that ask for gigabytes (issue 16).

Every test here would have hung, crashed, or returned a wrong answer before the fix.
"""

from __future__ import annotations

import faulthandler
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import vidio
from vidio._frames import FrameFolderDecoder
from vidio._pyav import PyAVDecoder

pytestmark = pytest.mark.hostile
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")
DATA = Path(__file__).parent / "data"
HANG_LIMIT_S = 240


@pytest.fixture
def no_hang():
    """Abort the whole run, with every thread's stack, if the test blocks (a hang must fail, not wait)."""
    faulthandler.dump_traceback_later(HANG_LIMIT_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def frames_folder(tmp_path, make_frame_folder):
    return make_frame_folder(tmp_path / "frames", 6, 16, 16)


# --- never hang: only regular files are opened ---------------------------------------------------


@needs_fifo
def test_a_fifo_given_as_the_video_is_not_a_regular_file(tmp_path, no_hang):
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    for backend in vidio.list_decoders():
        with pytest.raises(vidio.VideoError, match=r"'.*clip\.mp4': it is not a regular file but a FIFO"):
            vidio.open(fifo, backend=backend, timeout=2)
    with pytest.raises(vidio.VideoError, match="FIFO") as info:
        vidio.probe(fifo)
    assert "empty" not in str(info.value) and info.value.path == str(fifo)


@needs_fifo
@pytest.mark.parametrize("position", [0, 3])
def test_a_fifo_among_the_frames_is_refused_when_the_folder_is_opened(frames_folder, position, no_hang):
    entry = frames_folder / f"{position + 1:06d}.png"
    entry.unlink()
    os.mkfifo(entry)
    with pytest.raises(
        vidio.VideoError, match=rf"its frame image '{entry.name}': it is not a regular file but a FIFO"
    ):
        vidio.open(frames_folder, timeout=2)


@needs_fifo
def test_a_frame_swapped_for_a_fifo_after_opening_never_blocks(frames_folder, no_hang):
    video = vidio.open(frames_folder, timeout=2)
    entry = frames_folder / "000004.png"
    entry.unlink()
    os.mkfifo(entry)
    with pytest.raises(vidio.VideoDecodeError, match="the file changed while being read"):
        video.get([3])
    # Below the reader's check, the decoder itself opens without blocking and refuses the FIFO.
    decoder = FrameFolderDecoder(video.info, timeout=2)
    with pytest.raises(
        vidio.VideoDecodeError, match=r"000004\.png.*frame image 3: it is not a regular file but a FIFO"
    ):
        decoder.read(np.array([2, 3]), None)


@needs_fifo
def test_a_video_swapped_for_a_fifo_after_probing_never_blocks(videos, tmp_path, no_hang):
    path = tmp_path / "clip.mp4"
    shutil.copy(videos["h264.mp4"], path)
    info = vidio.probe(path)
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(vidio.VideoDecodeError, match="it is not a regular file but a FIFO"):
        PyAVDecoder(info)


@needs_fifo
def test_decord_gives_up_on_a_fifo_within_the_timeout(videos, tmp_path, no_hang):
    """decord opens files in its own process: one blocked on a FIFO is stopped after ``timeout``."""
    from vidio._decord import DecordDecoder

    path = tmp_path / "clip.mp4"
    shutil.copy(videos["h264.mp4"], path)
    info = vidio.probe(path)
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(vidio.VideoTimeoutError, match=r"no progress for 1 s while opening the file"):
        DecordDecoder(info, timeout=1)


def test_a_symlink_loop_is_named_as_such(tmp_path, frames_folder):
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)
    with pytest.raises(vidio.VideoError, match=r"'.*loop\.mp4': it is a symbolic link loop"):
        vidio.open(loop)
    (frames_folder / "000002.png").unlink()
    (frames_folder / "000002.png").symlink_to(frames_folder / "000002.png")
    with pytest.raises(vidio.VideoError, match=r"its frame image '000002\.png': it is a symbolic link loop"):
        vidio.open(frames_folder)
    (frames_folder / "000002.png").unlink()
    (frames_folder / "000002.png").symlink_to(tmp_path / "gone.png")
    with pytest.raises(vidio.VideoError, match=r"'000002\.png': it is a broken symbolic link"):
        vidio.open(frames_folder)


def test_a_folder_where_a_frame_image_belongs(frames_folder):
    (frames_folder / "000003.png").unlink()
    (frames_folder / "000003.png").mkdir()
    with pytest.raises(vidio.VideoError, match=r"its frame image '000003\.png': it is a folder, not a file"):
        vidio.open(frames_folder)


def test_a_path_through_a_file(videos):
    with pytest.raises(vidio.VideoError, match="a part of the path is a file, not a folder"):
        vidio.open(videos["h264.mp4"] / "frames")


@pytest.mark.parametrize("backend", vidio.list_decoders())
def test_a_file_truncated_under_an_open_reader(videos, tmp_path, backend, no_hang):
    path = tmp_path / "clip.mp4"
    shutil.copy(videos["h264.mp4"], path)
    size = path.stat().st_size
    with vidio.open(path, backend=backend, timeout=5) as video:
        assert video.get([0, 39]).shape[0] == 2
        with open(path, "r+b") as file:
            file.truncate(size // 3)
        with pytest.raises(
            vidio.VideoDecodeError,
            match=rf"the file changed while being read \(it was {size} bytes when opened and is {size // 3} bytes now\)",
        ):
            video.get([30, 39])


def test_a_file_rewritten_or_replaced_under_an_open_reader(videos, tmp_path):
    path = tmp_path / "clip.mp4"
    shutil.copy(videos["h264.mp4"], path)
    video = vidio.open(path, backend="pyav")
    data = path.read_bytes()
    path.write_bytes(data)  # same bytes, new modification time: the reader cannot know it is the same
    os.utime(path, ns=(0, 0))
    with pytest.raises(vidio.VideoDecodeError, match=r"changed while being read \(it was modified\)"):
        video.get([1])
    video = vidio.open(path, backend="pyav")
    path.unlink()
    path.write_bytes(data)
    with pytest.raises(
        vidio.VideoDecodeError, match=r"changed while being read \(it was replaced by another file\)"
    ):
        video.get([1])
    video = vidio.open(path, backend="pyav")
    path.unlink()
    with pytest.raises(
        vidio.VideoDecodeError, match=r"changed while being read \(now: no such file or folder\)"
    ):
        video.get([1])


@needs_fifo
def test_a_csv_dataset_in_dataloader_workers_reports_a_fifo(tmp_path, make_frame_folder, long_video, no_hang):
    make_frame_folder(tmp_path / "dive", 8, 16, 16)
    (tmp_path / "dive" / "000005.png").unlink()
    os.mkfifo(tmp_path / "dive" / "000005.png")
    shutil.copy(long_video, tmp_path / "a.mp4")
    os.mkfifo(tmp_path / "b.mp4")
    (tmp_path / "train.csv").write_text("path,score\na.mp4,1\ndive,2\nb.mp4,3\n")
    with pytest.raises(
        vidio.DatasetError,
        match=r"1 of 3 .*cannot be read: '.*b\.mp4' \(it is not a video file or folder but a FIFO",
    ):
        vidio.CSVDataset(tmp_path, "train")
    data = vidio.CSVDataset(tmp_path, "train", num_frames=4, crop_size=8, check_files=False, timeout=2)
    for index, message in [
        (1, r"frame image '000005\.png': it is not a regular file"),
        (2, "not a regular file but a FIFO"),
    ]:
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(data, [0, index]), batch_size=1, num_workers=2
        )
        with pytest.raises(vidio.VideoError, match=message):
            list(loader)
