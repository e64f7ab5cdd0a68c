"""Every unusable checkpoint file is one clear error, whatever the loader raised."""

from __future__ import annotations

import pickle

import pytest
from localkit_runs import CheckpointError, RunError, read_checkpoint


def load(path):
    return pickle.loads(path.read_bytes())


def test_a_good_checkpoint_is_returned(tmp_path):
    (tmp_path / "last.pt").write_bytes(pickle.dumps({"epoch": 3}))
    assert read_checkpoint(tmp_path / "last.pt", load) == {"epoch": 3}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"is empty \(0 bytes\): a write was cut short\. Delete it"),
        (pickle.dumps({"epoch": 3, "w": list(range(100))})[:40], "is corrupt or truncated .*Delete it"),
        (b"\x00" * 64, "is corrupt or truncated"),
    ],
)
def test_empty_truncated_or_garbage_files_are_named_with_the_fix(tmp_path, content, message):
    (tmp_path / "last.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(tmp_path / "last.pt", load)


def test_a_missing_file_or_a_folder_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nothing.pt", load)
    (tmp_path / "dir.pt").mkdir()
    with pytest.raises(CheckpointError, match="is not a regular file"):
        read_checkpoint(tmp_path / "dir.pt", load)
    assert issubclass(CheckpointError, RunError)
