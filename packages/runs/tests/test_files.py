"""Atomic writes: all or nothing, no temporary left behind, errors that name folder and cause."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import tempfile
from pathlib import Path

import pytest
from localkit_runs import RunError, RunFolderError, atomic_write, make_folder, write_json, write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"the previous checkpoint")

    def disk_full(f):
        f.write(b"half of it")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(
        RunFolderError, match=rf"{re.escape(str(tmp_path))}: cannot write last.pt: the disk is full"
    ):
        atomic_write(path, disk_full)
    assert path.read_bytes() == b"the previous checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_an_os_error_wrapped_by_the_writer_is_still_named():
    # torch.save reports a failed write as RuntimeError raised from the OSError
    def wrapped(f):
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        except OSError as exc:
            raise RuntimeError("PytorchStreamWriter failed writing file") from exc

    folder = Path(tempfile.mkdtemp())
    with pytest.raises(RunFolderError, match="disk quota is exceeded"):
        atomic_write(folder / "x", wrapped)
    assert list(folder.iterdir()) == []


def test_an_interrupt_propagates_unchanged_and_cleans_up(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text("old")

    def interrupted(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, interrupted)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_bug_in_the_writer_is_not_disguised_as_a_folder_problem(tmp_path):
    with pytest.raises(ZeroDivisionError):
        atomic_write(tmp_path / "x", lambda f: 1 / 0)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("code", "cause"),
    [
        (errno.EROFS, "the file system is read-only: choose another --out"),
        (errno.EACCES, "permission denied: make the folder writable or choose another --out"),
        (errno.ENOSPC, "the disk is full"),
    ],
)
def test_a_folder_that_refuses_the_temporary_file_is_named_with_the_fix(tmp_path, monkeypatch, code, cause):
    # as root a chmod-ed folder stays writable, so the file system's refusal is simulated
    # where it happens: creating the temporary file
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(
        RunFolderError, match=rf"run folder {re.escape(str(tmp_path))}: cannot write a.json: {cause}"
    ):
        write_json(tmp_path / "a.json", {})
    assert list(tmp_path.iterdir()) == []


def test_a_path_through_a_file_is_named(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(RunFolderError, match="a part of the path is a file, not a folder"):
        make_folder(tmp_path / "file" / "run")
    with pytest.raises(RunFolderError, match="a part of the path is a file"):
        write_text(tmp_path / "file" / "a.txt", "x")
    assert issubclass(RunFolderError, RunError) and issubclass(RunError, RuntimeError)


def test_new_files_get_the_mode_of_any_new_file_not_mkstemps_private_one(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644


def test_write_json_keeps_or_sorts_keys_and_writes_what_json_cannot_hold_as_text(tmp_path):
    write_json(tmp_path / "sorted.json", {"b": 1, "a": tmp_path})
    write_json(tmp_path / "kept.json", {"b": 1, "a": 2}, sort_keys=False)
    assert list(json.loads((tmp_path / "sorted.json").read_text())) == ["a", "b"]
    assert json.loads((tmp_path / "sorted.json").read_text())["a"] == str(tmp_path)
    assert list(json.loads((tmp_path / "kept.json").read_text())) == ["b", "a"]
