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
    (tmp_path / "new.mp4").write_bytes(data)  # written while the old file exists: another inode
    os.replace(tmp_path / "new.mp4", path)
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


# --- annotations are validated on load ------------------------------------------------------------

MTL_INFO = DATA / "mtl_aqa" / "info"


def test_mtl_aqa_refuses_the_impossible_judge_score_of_the_real_dive_04_49():
    annotations = MTL_INFO / "augmented_final_annotations_dict.pkl"
    with pytest.raises(
        vidio.DatasetError,
        match=rf"MTL-AQA: '{re.escape(str(annotations))}' dive '04_49': judge_scores \(item 4 of 7: 45\) should be "
        r"a flat list or 1-D array of finite numbers in 0\.\.10, got \[2\.5, 4\.0, 4\.0, 45\.0, 3\.5, 5\.0, 4\.0\]; "
        r"correct the annotation or leave the dive out with exclude=\['04_49'\]",
    ):
        vidio.MTLAQA(DATA / "mtl_aqa", "train", layout="videos", check_files=False)
    train = vidio.MTLAQA(DATA / "mtl_aqa", "train", layout="videos", check_files=False, exclude="04_49")
    assert len(train) == 1058 and "04_49" not in {r.id for r in train.records}
    with pytest.raises(vidio.DatasetError, match=r"exclude names dive '4_49', which .* does not annotate"):
        vidio.MTLAQA(DATA / "mtl_aqa", "test", layout="videos", check_files=False, exclude=["4_49"])


def test_the_real_annotation_files_still_load():
    """tests/data holds the real MTL-AQA and JIGSAWS annotations, byte for byte (see its README)."""
    for split, count in (("train", 1058), ("test", 353)):
        data = vidio.MTLAQA(DATA / "mtl_aqa", split, layout="videos", check_files=False, exclude=["04_49"])
        assert len(data) == count
    for fold in range(4):
        sizes = [
            len(vidio.JIGSAWS(DATA / "jigsaws", s, fold=fold, check_files=False)) for s in ("train", "test")
        ]
        assert sum(sizes) == 103


def mtl_root(tmp_path: Path, entry: dict | None = None, key=(1, 2), split=None) -> Path:
    """An MTL-AQA root with one annotated dive: a valid entry updated with ``entry``."""
    good = {
        "final_score": 50.0,
        "difficulty": 2.0,
        "judge_scores": np.full(7, 5.0),
        "start_frame": 10,
        "end_frame": 120,
    }
    table = {key: {**good, **(entry or {})}} if entry is not None or key != (1, 2) else {key: good}
    (tmp_path / "info").mkdir(exist_ok=True)
    (tmp_path / "info" / "final_annotations_dict.pkl").write_bytes(pickle.dumps(table))
    (tmp_path / "info" / "test_split_0.pkl").write_bytes(pickle.dumps(split if split is not None else [key]))
    return tmp_path


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"final_score": float("nan")}, r"final_score should be a finite number in 0\.\.104\.5, got nan"),
        ({"final_score": float("inf")}, r"final_score should be a finite number in 0\.\.104\.5, got inf"),
        ({"final_score": 120.0}, r"final_score should be a finite number in 0\.\.104\.5, got 120\.0"),
        ({"final_score": "88.0"}, r"final_score should be a finite number in 0\.\.104\.5, got '88\.0'"),
        ({"difficulty": 0.0}, r"difficulty should be a finite number in 1\.\.5, got 0\.0"),
        ({"difficulty": True}, r"difficulty should be a finite number in 1\.\.5, got True"),
        ({"judge_scores": np.array([5.0, np.nan] * 3 + [5.0])}, r"judge_scores \(item 2 of 7: nan\)"),
        (
            {"judge_scores": np.full((7, 1), 5.0)},
            r"judge_scores should be a flat list or 1-D array .*got \[\[5\.0\]",
        ),
        ({"judge_scores": ["5"] * 7}, r"judge_scores should be a flat list or 1-D array of finite numbers"),
        ({"judge_scores": -0.5}, r"judge_scores should be a flat list or 1-D array"),
        ({"start_frame": 10.5}, r"start_frame \(1-based\) should be an integer of at least 1, got 10\.5"),
        ({"start_frame": 0}, r"start_frame \(1-based\) should be an integer of at least 1, got 0"),
        (
            {"end_frame": 5},
            r"end_frame \(1-based, not before start_frame\) should be an integer of at least 10",
        ),
    ],
)
def test_mtl_aqa_values_out_of_shape_or_range_name_the_file_and_the_dive(tmp_path, entry, message):
    root = mtl_root(tmp_path, entry)
    with pytest.raises(
        vidio.DatasetError, match=rf"MTL-AQA: '.*final_annotations_dict\.pkl' dive '01_02': {message}"
    ):
        vidio.MTLAQA(root, "test", layout="videos", check_files=False)


def test_mtl_aqa_malformed_structures_name_the_file_the_dive_and_the_expected_structure(tmp_path):
    expected = r"a dict with final_score \(0\.\.104\.5\), difficulty \(1\.\.5\), judge_scores"
    info = tmp_path / "info"
    cases = [
        (
            {(1, 2): {"final_score": 50.0}},
            [(1, 2)],
            rf"dive '01_02': the annotation lacks difficulty, judge_scores, start_frame, end_frame; it should be {expected}",
        ),
        ({(1, 2): [50.0, 2.0]}, [(1, 2)], rf"dive '01_02': the annotation should be {expected}.*got a list"),
        ([((1, 2), {})], [(1, 2)], r"should hold a dict \(video, dive\) -> annotation, got a list"),
        (
            {(1.5, 2): {}},
            [(1, 2)],
            r"key \(1\.5, 2\): the video number should be an integer of at least 0, got 1\.5",
        ),
        ({"01_02": {}}, [(1, 2)], r"key '01_02': a dive is keyed by a \(video, dive\) tuple of two integers"),
    ]
    for table, keys, message in cases:
        shutil.rmtree(info, ignore_errors=True)
        info.mkdir()
        (info / "final_annotations_dict.pkl").write_bytes(pickle.dumps(table))
        (info / "test_split_0.pkl").write_bytes(pickle.dumps(keys))
        with pytest.raises(vidio.DatasetError, match=message):
            vidio.MTLAQA(tmp_path, "test", layout="videos", check_files=False)
    mtl_root(tmp_path, split={"keys": [(1, 2)]})
    with pytest.raises(
        vidio.DatasetError, match=r"test_split_0\.pkl' should hold a list of \(video, dive\) keys, got a dict"
    ):
        vidio.MTLAQA(tmp_path, "test", layout="videos", check_files=False)
    mtl_root(tmp_path, split=[(1, 2), (1, 2.0)])
    with pytest.raises(vidio.DatasetError, match=r"test_split_0\.pkl' lists dive 01_02 twice"):
        vidio.MTLAQA(tmp_path, "test", layout="videos", check_files=False)
    mtl_root(tmp_path, split=[(1, 2.5)])
    with pytest.raises(
        vidio.DatasetError,
        match=r"test_split_0\.pkl' item 1 \(\(1, 2\.5\)\): the dive number should be an integer",
    ):
        vidio.MTLAQA(tmp_path, "test", layout="videos", check_files=False)


def jigsaws_root(tmp_path: Path, labels=None, splits=None) -> Path:
    with open(DATA / "jigsaws" / "label.pkl", "rb") as file:
        real_labels = pickle.load(file)
    with open(DATA / "jigsaws" / "splits.pkl", "rb") as file:
        real_splits = pickle.load(file)
    (tmp_path / "label.pkl").write_bytes(pickle.dumps(real_labels if labels is None else labels(real_labels)))
    (tmp_path / "splits.pkl").write_bytes(
        pickle.dumps(real_splits if splits is None else splits(real_splits))
    )
    return tmp_path


def _set(table, key, value):
    return {**table, key: value}


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (
            lambda t: _set(t, "Suturing_B001", [4, 4, 3, 4, 3]),
            r"trial 'Suturing_B001': the sub-scores should be a flat list or 1-D array of 6 finite numbers in 1\.\.5",
        ),
        (
            lambda t: _set(t, "Suturing_B001", [4, 4, 3, 4, 3, 9]),
            r"trial 'Suturing_B001': the sub-scores \(item 6 of 6: 9\)",
        ),
        (
            lambda t: _set(t, "Suturing_B001", ["4", "4", "3", "4", "3", "4"]),
            r"trial 'Suturing_B001': the sub-scores should be .*got \['4', '4'",
        ),
        (
            lambda t: _set(t, "Suturing_B001", "4,4,3,4,3,4"),
            r"the sub-scores should be a flat list or 1-D array .*got '4,4,3,4,3,4'",
        ),
        (
            lambda t: _set(t, "Suturing_B001", [4, 4, 3, 4, 3, float("nan")]),
            r"the sub-scores \(item 6 of 6: nan\)",
        ),
        (
            lambda t: list(t.items()),
            r"label\.pkl' should hold a dict trial name -> 6 sub-scores \(numbers 1\.\.5\), got a list",
        ),
        (lambda t: _set(t, 7, [1] * 6), r"label\.pkl' has the key 7; it should hold a dict trial name"),
    ],
)
def test_jigsaws_labels_out_of_shape_or_range_name_the_file_and_the_trial(tmp_path, labels, message):
    with pytest.raises(vidio.DatasetError, match=rf"JIGSAWS: '.*{message}"):
        vidio.JIGSAWS(jigsaws_root(tmp_path, labels=labels), "train", check_files=False)


@pytest.mark.parametrize(
    ("splits", "message"),
    [
        (
            lambda s: list(s.values()),
            r"should hold a dict task -> list of folds, each a list of trial names, got a list",
        ),
        (
            lambda s: _set(s, "Suturing", "B001"),
            r"task 'Suturing': the file should hold a dict task -> list of folds",
        ),
        (lambda s: _set(s, "Suturing", [[1, 2]] * 4), r"task 'Suturing': the file should hold"),
        (
            lambda s: _set(s, "Suturing", [s["Suturing"][0]] * 4),
            r"task 'Suturing': trial 'Suturing_\w+' is in fold 0 and fold 1",
        ),
    ],
)
def test_jigsaws_splits_of_the_wrong_structure(tmp_path, splits, message):
    with pytest.raises(vidio.DatasetError, match=rf"JIGSAWS: '.*splits\.pkl'.*{message}"):
        vidio.JIGSAWS(jigsaws_root(tmp_path, splits=splits), "train", check_files=False)


@pytest.mark.parametrize("fold", [True, 1.0, "1", -1])
def test_jigsaws_fold_must_be_an_integer(fold):
    with pytest.raises(
        vidio.DatasetError, match=rf"fold must be an integer in 0\.\.3, got {re.escape(repr(fold))}"
    ):
        vidio.JIGSAWS(DATA / "jigsaws", "train", fold=fold, check_files=False)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([[1, 1.5, 80.5]], r"row 1: the sample number should be an integer of at least 1, got 1\.5"),
        ([[1.5, 1, 80.5]], r"row 1: the action number should be an integer of at least 1, got 1\.5"),
        ([[7, 1, 80.5]], r"row 1: the action number should be 1\.\.6, got 7"),
        ([[1, 1, np.nan]], r"row 1: the score should be a finite number of at least 0, got nan"),
        ([[1, 1, -3.0]], r"row 1: the score should be a finite number of at least 0, got -3\.0"),
        ([[1, 1, 80.5], [1, 1, 70.0]], r"row 2: sample 1 of action 1 is already in row 1"),
    ],
)
def test_aqa7_rows_are_checked(tmp_path, rows, message):
    scipy_io = pytest.importorskip("scipy.io")
    (tmp_path / "Split_4").mkdir()
    for split in ("train", "test"):
        table = np.array(rows if split == "train" else [[2, 1, 10.0]], dtype=np.float64)
        scipy_io.savemat(
            tmp_path / "Split_4" / f"split_4_{split}_list.mat", {f"consolidated_{split}_list": table}
        )
    with pytest.raises(vidio.DatasetError, match=rf"AQA-7: '.*split_4_train_list\.mat' {message}"):
        vidio.AQA7(tmp_path, "train", check_files=False)


def test_aqa7_wrong_structures(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    (tmp_path / "Split_4").mkdir()
    path = tmp_path / "Split_4" / "split_4_train_list.mat"
    scipy_io.savemat(path, {"rows": np.zeros((2, 3))})
    expected = (
        r"should hold a variable 'consolidated_train_list' of rows \(action 1\.\.6, sample number, score\)"
    )
    with pytest.raises(vidio.DatasetError, match=rf"{expected}; it holds \['rows'\]"):
        vidio.AQA7(tmp_path, "train", check_files=False)
    scipy_io.savemat(path, {"consolidated_train_list": np.array(["a", "b"])})
    with pytest.raises(vidio.DatasetError, match=rf"{expected}, got <U1 of shape \(2,\)"):
        vidio.AQA7(tmp_path, "train", check_files=False)
    with pytest.raises(vidio.DatasetError, match=r"no action True"):
        vidio.AQA7(tmp_path, "train", actions=[True], check_files=False)


def test_records_built_by_hand_are_checked_too():
    def build(**kw):
        record = vidio.ClipRecord(**{"id": "a", "source": "a.mp4", "score": 5.0, **kw})
        return vidio.ClipDataset(
            [record],
            sampler=vidio.UniformSampler(4),
            score_range=(0, 10),
            judge_range=(0, 5),
            check_files=False,
        )

    for kw, message in [
        (
            {"score": float("nan")},
            r"ClipDataset: sample 'a': the score should be a finite number in 0\.\.10, got nan",
        ),
        ({"score": 11.0}, r"the score should be a finite number in 0\.\.10, got 11\.0"),
        ({"judge_scores": (1.0, 6.0)}, r"the judge scores \(item 2 of 2: 6\)"),
        ({"difficulty": float("inf")}, r"the difficulty should be a finite number, got inf"),
        ({"start": 1.5}, r"the first frame \(start\) should be an integer of at least 0, got 1\.5"),
        (
            {"start": 5, "stop": 5},
            r"the end of its frames \(stop\) should be an integer of at least 6, got 5",
        ),
    ]:
        with pytest.raises(vidio.DatasetError, match=message):
            build(**kw)


# --- CSV manifests --------------------------------------------------------------------------------


@pytest.fixture
def manifest_dir(tmp_path, long_video):
    shutil.copy(long_video, tmp_path / "a.mp4")
    return tmp_path


def test_a_csv_with_a_byte_order_mark_is_accepted(manifest_dir):
    (manifest_dir / "train.csv").write_bytes(b"\xef\xbb\xbfpath,score\r\na.mp4,7.5\r\n")
    data = vidio.CSVDataset(manifest_dir, "train")
    assert [(r.source, r.score) for r in data.records] == [(str(manifest_dir / "a.mp4"), 7.5)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"path,score\na.mp4,7.5\na.mp4,\xff\xfe\n",
            r"line 3 is not UTF-8 text \(byte 0xff at column 7\); save the manifest as UTF-8",
        ),
        ("path,score\na.mp4,7.5\n".encode("utf-16"), r"line 1 is not UTF-8 text \(byte 0xff at column 1\)"),
        (
            b'path,score\na.mp4,"' + b"9" * 200_000 + b'"\n',
            r"line 2: field larger than field limit \(131072\)",
        ),
        (b"path,score\n" + b"x" * (2**20 + 10) + b"\n", r"line 2 is longer than 1048576 bytes"),
        (b"path,score,path\na.mp4,1,b.mp4\n", r"line 1: the column 'path' appears twice \(columns 1 and 3\)"),
        (
            b"path,score,judge_1,judge_1\na.mp4,1,2,3\n",
            r"line 1: the column 'judge_1' appears twice \(columns 3 and 4\)",
        ),
        (b"path,score\na.mp4,1,2\n", r"line 2 has 3 fields, the header has 2"),
        (b"path,score,start\na.mp4,1\n", r"line 2 has 2 fields, the header has 3"),
        (b"path,score,\na.mp4,1,oops\n", r"line 2 has the value 'oops' in a column without a name"),
        (b"path,score\na.mp4,nan\n", r"line 2: column 'score' should be a number, got 'nan'"),
        (b"path,score\na.mp4,inf\n", r"line 2: column 'score' should be a number, got 'inf'"),
        (b"path,score\na.mp4,1_000\n", r"line 2: column 'score' should be a number, got '1_000'"),
        (b'path,score\na.mp4,"7,5"\n', r"line 2: column 'score' should be a number, got '7,5'"),
        (b"path,score\na.mp4,1e999\n", r"line 2: column 'score' should be a finite number, got inf"),
        (
            b"path,score,start\na.mp4,1,1.5\n",
            r"line 2: column 'start' \(first frame\) should be an integer of at least 0, got 1\.5",
        ),
        (
            b"path,score,start,end\na.mp4,1,10,10\n",
            r"line 2: column 'end' \(one past the last frame, after start\) should be an integer of at least 11",
        ),
        (
            b"path,score,difficulty\na.mp4,1,0\n",
            r"line 2: column 'difficulty' should be a positive number, got '0'",
        ),
        (b"path,score,judge_1\na.mp4,1,x\n", r"line 2: column 'judge_1' should be a number, got 'x'"),
        (b"", r"is empty; its first line should name the columns"),
    ],
)
def test_csv_manifest_errors_name_the_file_and_the_line(manifest_dir, content, message):
    (manifest_dir / "train.csv").write_bytes(content)
    with pytest.raises(
        vidio.DatasetError, match=rf"'{re.escape(str(manifest_dir / 'train.csv'))}'.*{message}"
    ):
        vidio.CSVDataset(manifest_dir, "train")


def test_csv_scores_outside_a_given_range(manifest_dir):
    (manifest_dir / "train.csv").write_text("path,score,judge_1\na.mp4,7.5,3\na.mp4,12,3\n")
    with pytest.raises(
        vidio.DatasetError, match=r"line 3: column 'score' should be a finite number in 0\.\.10, got 12\.0"
    ):
        vidio.CSVDataset(manifest_dir, "train", score_range=(0, 10))
    with pytest.raises(
        vidio.DatasetError, match=r"line 2: column 'judge_1' should be a finite number in 0\.\.2, got 3\.0"
    ):
        vidio.CSVDataset(manifest_dir, "train", judge_range=(0, 2))


@pytest.mark.parametrize("kind", ["folder", "fifo", "loop"])
def test_a_manifest_that_is_not_a_file(manifest_dir, kind, no_hang):
    path = manifest_dir / "train.csv"
    if kind == "folder":
        path.mkdir()
        reason = "it is a folder, not a file"
    elif kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("needs named pipes")
        os.mkfifo(path)
        reason = r"it is not a regular file but a FIFO \(named pipe\)"
    else:
        path.symlink_to(path)
        reason = "it is a symbolic link loop"
    with pytest.raises(
        vidio.DatasetError, match=rf"CSV manifest '{re.escape(str(path))}' cannot be read: {reason}"
    ):
        vidio.CSVDataset(manifest_dir, "train")


@pytest.mark.parametrize("kind", ["folder", "fifo", "loop"])
def test_annotation_pickles_that_are_not_files(tmp_path, kind, no_hang):
    path = tmp_path / "label.pkl"
    if kind == "folder":
        path.mkdir()
        reason = "it is a folder, not a file"
    elif kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("needs named pipes")
        os.mkfifo(path)
        reason = r"it is not a regular file but a FIFO \(named pipe\)"
    else:
        path.symlink_to(path)
        reason = "it is a symbolic link loop"
    with pytest.raises(
        vidio.DatasetError, match=rf"annotation file '{re.escape(str(path))}' cannot be read: {reason}"
    ):
        vidio.load_pickle(path)
    shutil.copy(DATA / "jigsaws" / "splits.pkl", tmp_path / "splits.pkl")
    with pytest.raises(vidio.DatasetError, match=reason):
        vidio.JIGSAWS(tmp_path, "train", check_files=False)


# --- where the data comes from -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "jigsaws",
            "JIGSAWS cannot be downloaded automatically: it is released after filling in the registration form at "
            "https://cirl.lcsr.jhu.edu/research/hmm/datasets/jigsaws_release/. Unpack it and pass that folder as the root.",
        ),
        (
            "mtl-aqa",
            "MTL-AQA has no download: its annotations and the YouTube links of the source videos are at "
            "https://github.com/ParitoshParmar/MTL-AQA (MTL-AQA_dataset_release); fetch and cut the videos yourself, "
            "or use MUSDL's prepared frames (https://github.com/nzl-thu/MUSDL#mtl-aqa-dataset)",
        ),
        (
            "aqa-7",
            "AQA-7 is not downloaded automatically: it is one zip file, http://rtis.oit.unlv.edu/datasets/AQA-7.zip "
            "(listed at http://rtis.oit.unlv.edu/datasets.html), served over plain http with no published checksum.",
        ),
    ],
)
def test_a_missing_root_says_where_the_data_comes_from(tmp_path, name, message):
    missing = tmp_path / "nowhere"
    with pytest.raises(
        vidio.DatasetError,
        match=re.escape(f"the root '{missing}' cannot be used (no such file or folder). {message}"),
    ):
        vidio.create_dataset(name, missing, "train")
    with pytest.raises(vidio.DatasetError, match=re.escape(message)):
        vidio.create_dataset(name, tmp_path, "train")  # the folder exists but holds nothing
