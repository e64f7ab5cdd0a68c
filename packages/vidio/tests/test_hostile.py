"""Hostile inputs: files that are not files, files that change under a reader, annotations that
lie, manifests that are not UTF-8 text, pickles that ask for gigabytes (issue 16).

Every test here would have hung, crashed, or returned a wrong answer before the fix.
"""

from __future__ import annotations

import faulthandler
import os
import pickle
import re
import shutil
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vidio
from vidio import _safepickle
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


# --- the restricted unpickler bounds memory ------------------------------------------------------

RECONSTRUCT = np.zeros(1).__reduce__()[0]
SCALAR = np.float64(0).__reduce__()[0]
SMALL_OBJECT = 2**20
SMALL_LOAD = 2**23


class Reduces:
    """Pickles as the given ``__reduce__`` value: a way to write any REDUCE/BUILD a file could hold."""

    def __init__(self, value):
        self.value = value

    def __reduce__(self):
        return self.value


def int_opcode(n: int) -> bytes:
    return pickle.dumps(n, protocol=2)[2:-1]


def hostile_pickle(kind: str, n: int) -> bytes:
    """A pickle of a few bytes that asks for about ``n`` bytes (or items) of memory in the way ``kind`` says."""
    return {
        "bytearray(n)": lambda: b"\x80\x02cbuiltins\nbytearray\n" + int_opcode(n) + b"\x85R.",
        "bytes(n)": lambda: b"\x80\x02c__builtin__\nbytes\n" + int_opcode(n) + b"\x85R.",
        "BYTEARRAY8": lambda: b"\x80\x05\x96" + struct.pack("<Q", n) + b".",
        "_reconstruct shape": lambda: pickle.dumps(
            Reduces((RECONSTRUCT, (np.ndarray, (n,), b"b"))), protocol=2
        ),
        "array state": lambda: pickle.dumps(
            Reduces((RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (n,), np.dtype("u1"), False, b"\x00"))),
            protocol=2,
        ),
        "object array state": lambda: pickle.dumps(
            Reduces((RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (n,), np.dtype("O"), False, [None]))),
            protocol=2,
        ),
        "ndarray(shape)": lambda: pickle.dumps(Reduces((np.ndarray, ((n,),))), protocol=2),
        "void dtype": lambda: pickle.dumps(
            Reduces((np.dtype, (f"V{min(n, 2**31 - 1)}", False, True))), protocol=2
        ),
        "empty sets": lambda: b"\x80\x04(" + b"\x8f" * min(n // 64, 2**16) + b"l.",
        "nested tuples": lambda: b"\x80\x04}K\x01" + b"\x85" * min(n, 2**16) + b"K\x02s.",
    }[kind]()


HOSTILE_KINDS = [
    "bytearray(n)",
    "bytes(n)",
    "BYTEARRAY8",
    "_reconstruct shape",
    "array state",
    "object array state",
    "ndarray(shape)",
    "void dtype",
    "empty sets",
    "nested tuples",
]


def peak_memory(function):
    """Run ``function``; return what it returned or raised, and the peak memory Python and numpy traced."""
    tracemalloc.start()
    try:
        try:
            outcome = function()
        except Exception as exc:  # the outcome is checked by the caller
            outcome = exc
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", [k for k in HOSTILE_KINDS if k != "empty sets"])  # sets: see below
def test_a_tiny_pickle_asking_for_gigabytes_is_refused_before_allocating(tmp_path, kind):
    path = tmp_path / "labels.pkl"
    path.write_bytes(hostile_pickle(kind, 2**33))  # 8 GiB, or as many items as fit the file
    assert path.stat().st_size < 200_000
    outcome, peak = peak_memory(lambda: vidio.load_pickle(path))
    assert isinstance(outcome, vidio.DatasetError), outcome
    assert re.match(rf"refusing to load annotation pickle '{re.escape(str(path))}': ", str(outcome))
    assert peak < 16 * 2**20


def test_the_refusals_say_why(tmp_path):
    path = tmp_path / "labels.pkl"
    expected = {
        "bytearray(n)": r"a bytearray of 8589934592 bytes, more than the 67108864 bytes one object may take "
        r"\(max_object_bytes=67108864\)",
        "BYTEARRAY8": r"a bytearray of 8589934592 bytes",
        "_reconstruct shape": r"a numpy array of 8589934592 bytes",
        "array state": r"an array of shape \(8589934592,\) and dtype uint8 comes with b'\\x00' as its data",
        "object array state": r"an object array of shape \(8589934592,\) comes with list items",
        "ndarray(shape)": r"it calls numpy.ndarray directly",
        "nested tuples": r"it nests tuples more than 100 deep",
    }
    for kind, message in expected.items():
        path.write_bytes(hostile_pickle(kind, 2**33))
        with pytest.raises(vidio.DatasetError, match=message):
            vidio.load_pickle(path)
    path.write_bytes(hostile_pickle("empty sets", 2**30))
    with pytest.raises(
        vidio.DatasetError, match=r"would take more than 1048576 bytes of memory.*max_load_bytes=1048576"
    ):
        vidio.load_pickle(path, max_load_bytes=2**20)
    path.write_bytes(b"\x80\x04" + b"N" * (2**20) + b".")
    with pytest.raises(
        vidio.DatasetError, match=r"it is 1048579 bytes, more than the 174762 bytes allowed.*6 bytes"
    ):
        vidio.load_pickle(path, max_load_bytes=2**20)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x80\x04]K\x01K\x02s.", "it adds items to a list where pickle fills a dict"),
        (b"\x80\x04\x8f}b.", "it sets the state of a set"),
        (b"\x80\x02cbuiltins\nset\nK\x05\x85R.", "a set is built from a int"),
        (
            pickle.dumps(
                Reduces((np.dtype, ("f8", False, True), (3, "<", None, None, None, 99, 1, 0))), protocol=2
            ),
            r"a numpy dtype float64 comes with the state \(3, '<', None, None, None, 99, 1, 0\)",
        ),
        (pickle.dumps(np.zeros(2, dtype=[("a", "f4"), ("b", "i2")]), protocol=2), "structured dtype state"),
        (
            pickle.dumps(Reduces((SCALAR, (np.dtype("f8"), b"\x00"))), protocol=2),
            "a numpy scalar of float64 comes with",
        ),
    ],
)
def test_states_and_containers_numpy_never_writes_are_refused(tmp_path, payload, message):
    path = tmp_path / "labels.pkl"
    path.write_bytes(payload)
    with pytest.raises(vidio.UnsafePickleError, match=message):
        vidio.load_pickle(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(HOSTILE_KINDS), n=st.integers(0, 2**40))
def test_property_any_requested_size_stays_within_the_limits(kind, n):
    """Whatever size a hostile pickle names, the load stays within its limits: it loads or is refused."""
    data = hostile_pickle(kind, n)
    outcome, peak = peak_memory(lambda: _safepickle.unpickle(data, "x.pkl", SMALL_OBJECT, SMALL_LOAD))
    assert peak <= SMALL_LOAD + 2**20
    if isinstance(outcome, Exception):
        assert isinstance(
            outcome, (_safepickle._TooLarge, _safepickle._Refused, pickle.UnpicklingError, EOFError)
        ), outcome
        if kind in ("bytearray(n)", "bytes(n)", "_reconstruct shape") and n <= SMALL_OBJECT // 2:
            pytest.fail(f"{kind} of {n} bytes is within the limits but was refused: {outcome}")
    else:
        assert kind not in ("ndarray(shape)", "BYTEARRAY8") or n == 0


annotation_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.complex_numbers(allow_nan=False),
)
arrays = st.builds(
    lambda dtype, shape, seed: np.random.default_rng(seed).integers(0, 100, shape).astype(dtype),
    st.sampled_from(["f8", "f4", "i8", "u1", "b1", "O", "U5", "S3", ">i4", "M8[s]"]),
    st.lists(st.integers(0, 4), max_size=3).map(tuple),
    st.integers(0, 2**32 - 1),
)
annotations = st.recursive(
    st.one_of(annotation_leaves, arrays, arrays.filter(lambda a: a.size).map(lambda a: a.reshape(-1)[0])),
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.tuples(children, children),
        st.dictionaries(
            st.one_of(st.text(max_size=8), st.integers(), st.tuples(st.integers(), st.integers())),
            children,
            max_size=6,
        ),
        st.frozensets(st.integers(), max_size=6),
        st.sets(st.text(max_size=4), max_size=6),
        st.binary(max_size=8).map(bytearray),
    ),
    max_leaves=30,
)


def same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and bool(np.all((a == b) | (a != a)))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b or (a != a and b != b)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=annotations, protocol=st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_property_plain_data_loads_as_with_pickle_within_the_estimate(value, protocol):
    """Any mix of builtins and numpy arrays loads exactly as pickle loads it, never above the charged estimate."""
    data = pickle.dumps(value, protocol=protocol)
    (loaded, charged), peak = peak_memory(
        lambda: _safepickle.unpickle(data, "x.pkl", _safepickle.MAX_OBJECT_BYTES, _safepickle.MAX_LOAD_BYTES)
    )
    assert same(loaded, pickle.loads(data))
    assert peak <= charged
