"""Annotation pickles load exactly as pickle would, and a malicious one cannot run code."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

import vidio

DATA = Path(__file__).parent / "data"
REAL_FILES = [
    DATA / "mtl_aqa" / "info" / "augmented_final_annotations_dict.pkl",
    DATA / "mtl_aqa" / "info" / "train_split_0.pkl",
    DATA / "mtl_aqa" / "info" / "test_split_0.pkl",
    DATA / "jigsaws" / "label.pkl",
    DATA / "jigsaws" / "splits.pkl",
]


def assert_same(a, b):
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_real_annotation_files_load_as_with_pickle(path):
    with open(path, "rb") as file:
        expected = pickle.load(file)
    assert_same(vidio.load_pickle(path), expected)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_arrays_and_scalars_round_trip(tmp_path, protocol):
    data = {
        "floats": np.arange(6.0).reshape(2, 3),
        "ints": np.array([1, 2], dtype=np.int16),
        "objects": np.array([1, "two", None], dtype=object),
        "scalar": np.float32(2.5),
        "set": {1, 2},
        "bytes": b"\x00\xff",
    }
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    loaded = vidio.load_pickle(path)
    assert loaded.keys() == data.keys()
    for key in ("floats", "ints", "objects"):
        assert loaded[key].dtype == data[key].dtype
        np.testing.assert_array_equal(loaded[key], data[key])
    assert (
        loaded["scalar"] == data["scalar"]
        and loaded["set"] == data["set"]
        and loaded["bytes"] == data["bytes"]
    )


class _WritesAFile:
    """Unpickling this calls shutil.copyfile, which creates ``target``."""

    def __init__(self, source, target):
        self.source, self.target = str(source), str(target)

    def __reduce__(self):
        return (shutil.copyfile, (self.source, self.target))


def test_malicious_pickle_is_refused_before_it_runs(tmp_path):
    target = tmp_path / "pwned.txt"
    payload = {"judge_scores": [_WritesAFile(REAL_FILES[-1], target)]}
    path = tmp_path / "label.pkl"
    path.write_bytes(pickle.dumps(payload))
    pickle.loads(path.read_bytes())
    assert target.exists(), "the payload must really write a file when loaded with pickle"
    target.unlink()
    with pytest.raises(vidio.UnsafePickleError, match="shutil.copyfile"):
        vidio.load_pickle(path)
    assert not target.exists()


@pytest.mark.parametrize("name", ["eval", "exec", "getattr", "__import__", "open"])
def test_dangerous_builtins_are_refused(tmp_path, name):
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"\x80\x02cbuiltins\n" + name.encode() + b"\nq\x00.")
    with pytest.raises(vidio.UnsafePickleError, match=f"builtins.{name}"):
        vidio.load_pickle(path)


def test_missing_and_damaged_files_are_dataset_errors(tmp_path):
    with pytest.raises(vidio.DatasetError, match="does not exist"):
        vidio.load_pickle(tmp_path / "none.pkl")
    (tmp_path / "bad.pkl").write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(vidio.DatasetError, match="not a readable pickle"):
        vidio.load_pickle(tmp_path / "bad.pkl")
