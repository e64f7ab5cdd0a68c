"""Tensor files of runs and feature caches, written and read through localkit-runs.

Writes are atomic (a crash leaves the previous file or the new one, never half of one);
a file that cannot be read (empty, truncated, corrupt) is a ``CheckpointError`` naming
it, the same error splitnet gives, because both use localkit-runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from localkit_runs import CheckpointError, atomic_write, make_folder, read_checkpoint


def save_state(obj: Any, path: Path) -> None:
    """``torch.save(obj)`` to ``path`` atomically, creating its folder."""
    path = Path(path)
    make_folder(path.parent)
    atomic_write(path, lambda handle: torch.save(obj, handle))


def load_state(path: Path, what: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """A dict written by :func:`save_state`, read without running code, holding ``keys``.

    Raises:
        CheckpointError: the file is missing, empty, truncated or corrupt, or is not ``what``
            (a dict with ``keys``).
    """
    state = read_checkpoint(path, lambda p: torch.load(p, map_location="cpu", weights_only=True))
    missing = [key for key in keys if not isinstance(state, dict) or key not in state]
    if missing:
        raise CheckpointError(
            f"{path} is not {what} (missing {', '.join(missing)}): pass a file that scoredist wrote, "
            "or delete it to start over"
        )
    return state
