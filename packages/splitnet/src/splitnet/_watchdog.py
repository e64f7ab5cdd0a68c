"""When a process of a distributed run stops, every other one says which before it goes.

torchrun stops the remaining processes of a run as soon as one fails: SIGTERM to each
(SIGKILL 30 s later). A process blocked in a collective never gets to run a Python signal
handler, so each keeps a watcher thread that Python's own signal handling wakes at once
(``signal.set_wakeup_fd``). It reads the note the failed process left in
``<out>/.failures`` (written before that process exits, so before anyone is told to stop)
or, when a process died without a note (killed, out of memory), finds which process of
this host is gone; prints ``rank R (stage s, replica r) stops because <that>``; and ends
the process. A process whose own collective fails first (the failed peer's connections
closed) says the same from its main thread. Either way it is said once.

Every process registers ``alive-rank{R}.json`` (pid, host) in the same folder at start
and removes it when it finishes, so a process that is gone without a note can be named.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from localkit_runs import process_exists

from ._distributed import Topology, clear_failures, first_failure

_said = threading.Lock()
_state = {"said": False, "owner": None}


def _folder(out: Path) -> Path:
    return Path(out) / ".failures"


def _alive_note(out: Path, rank: int) -> Path:
    return _folder(out) / f"alive-rank{rank}.json"


def gone_peers(out: Path, topology: Topology) -> list[str]:
    """The other processes of this host that registered and no longer run."""
    host, found = socket.gethostname(), []
    for note in sorted(_folder(out).glob("alive-rank*.json")):
        try:
            peer = json.loads(note.read_text())
        except (OSError, ValueError):
            continue
        if (
            peer.get("rank") != topology.rank
            and peer.get("host") == host
            and not process_exists(int(peer["pid"]))
        ):
            found.append(
                f"{peer['who']} is gone without a word: its process {peer['pid']} on {host} no longer exists"
            )
    return found


def cause(out: Path, topology: Topology, wait_s: float) -> str | None:
    """Why the run stops: another process's note (waiting up to ``wait_s`` for one), or a peer
    of this host that died without one; ``None`` when neither is found."""
    note = first_failure(Path(out), topology, wait_s)
    if note is not None:
        return note
    dead = gone_peers(out, topology)
    if dead:
        return "; ".join(dead) + " (killed by a signal, perhaps the out-of-memory killer)"
    return None


def clear(out: Path) -> None:
    """Forget the notes of an earlier attempt (rank 0, before any other process registers)."""
    clear_failures(Path(out))
    for note in _folder(out).glob("alive-rank*.json"):
        note.unlink(missing_ok=True)


def say_once(message: str) -> bool:
    """Print ``message`` to stderr unless this process already said why it stops."""
    with _said:
        if _state["said"]:
            return False
        _state["said"] = True
    print(message, file=sys.stderr, flush=True)
    return True


def quiet() -> None:
    """This process failed itself: its note says so, and torchrun's stop needs no other word."""
    with _said:
        _state["said"] = True


def _reset_in_child() -> None:
    # a forked child (a DataLoader worker) must not wake its parent's watcher, nor ignore SIGTERM
    if _state["owner"] is not None and _state["owner"] != os.getpid():
        with contextlib.suppress(ValueError):
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


os.register_at_fork(after_in_child=_reset_in_child)


@contextlib.contextmanager
def watch(out: Path, topology: Topology, on_stop: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Register this process and, until the block ends, answer torchrun's SIGTERM (see module doc).

    ``on_stop`` runs before the process ends on SIGTERM (rank 0 releases the run lock).
    Outside the main thread (where signals cannot be handled) only the registration is done.
    """
    note = _alive_note(out, topology.rank)
    note.parent.mkdir(parents=True, exist_ok=True)
    note.write_text(
        json.dumps(
            {
                "rank": topology.rank,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "who": topology.describe(),
            }
        )
    )
    _state["said"] = False
    if threading.current_thread() is not threading.main_thread():
        try:
            yield
        finally:
            note.unlink(missing_ok=True)
        return
    read, write = os.pipe()
    os.set_blocking(write, False)
    previous_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    previous_handler = signal.signal(signal.SIGTERM, lambda signum, frame: None) or signal.SIG_DFL
    _state["owner"] = os.getpid()

    def watcher() -> None:
        while True:
            got = os.read(read, 1)
            if not got or got[0] == 0:
                return  # the block ended
            if got[0] != signal.SIGTERM:
                continue
            why = cause(out, topology, wait_s=2.0)
            if why is None:
                why = (
                    "torchrun ended the run (SIGTERM) and no process left a note; torchrun's summary names "
                    "the one that failed"
                )
            say_once(f"{topology.describe()} stops because {why}")
            with contextlib.suppress(Exception):
                note.unlink(missing_ok=True)  # stopped, not gone without a word
                on_stop()
            os._exit(128 + signal.SIGTERM)

    thread = threading.Thread(target=watcher, name="splitnet-watchdog", daemon=True)
    thread.start()
    try:
        yield
    finally:
        os.write(write, b"\0")
        thread.join(timeout=5)
        signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGTERM, previous_handler)
        _state["owner"] = None
        os.close(read)
        os.close(write)
        note.unlink(missing_ok=True)
