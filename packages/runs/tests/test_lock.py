"""One run per folder: the lock refuses a second run and takes over only a provably dead one."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from localkit_runs import LOCK_NAME, RunFolderError, RunLock, process_exists

HOLD = textwrap.dedent("""
    import sys, time
    from localkit_runs import RunLock
    RunLock(sys.argv[1]).acquire()
    print("held", flush=True)
    time.sleep(300)
""")


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_live_holder_is_named_and_a_dead_holders_lock_is_taken_over(tmp_path, caplog):
    folder = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    host = socket.gethostname()
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(
            RunFolderError, match=rf"in use by another run \(process {holder.pid} on {host}\)"
        ):
            RunLock(folder).acquire()
    finally:
        holder.kill()
        holder.wait()
    with caplog.at_level(logging.WARNING, logger="localkit_runs"), RunLock(folder):
        assert json.loads((folder / LOCK_NAME).read_text()) == {"pid": os.getpid(), "host": host}
    assert f"process {holder.pid} on {host}, which no longer runs" in caplog.text
    assert not (folder / LOCK_NAME).exists()


def test_a_lock_of_another_host_or_unreadable_is_never_taken_over(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_NAME).write_text(json.dumps({"pid": dead_pid(), "host": "elsewhere"}))
    with pytest.raises(RunFolderError, match=r"on elsewhere\): wait for it to finish .*delete .*run.lock"):
        RunLock(folder).acquire()
    for garbage in ("", "[1, 2]", '{"pid": -4, "host": "x"}', '{"pid": true, "host": "x"}'):
        (folder / LOCK_NAME).write_text(garbage)
        with pytest.raises(RunFolderError, match="a process whose lock file cannot be read"):
            RunLock(folder).acquire()


def test_release_leaves_a_lock_it_does_not_hold(tmp_path):
    folder = tmp_path / "run"
    lock = RunLock(folder).acquire()
    other = {"pid": os.getpid() + 1, "host": "elsewhere"}
    (folder / LOCK_NAME).write_text(json.dumps(other))
    lock.release()
    assert json.loads((folder / LOCK_NAME).read_text()) == other


def test_a_zombie_holder_counts_as_gone(tmp_path):
    # a holder killed but not yet reaped by its parent must not keep the folder locked
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        child.kill()
        deadline = time.monotonic() + 60
        while process_exists(child.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not process_exists(child.pid)  # a zombie until the wait() below
    finally:
        child.wait()
    assert process_exists(os.getpid())
