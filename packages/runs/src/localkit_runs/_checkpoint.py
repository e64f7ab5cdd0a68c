"""Reading a checkpoint file: whatever the loader raises, the user reads one clear error."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._errors import CheckpointError


def read_checkpoint(path: str | Path, load: Callable[[Path], Any]) -> Any:
    """``load(path)``, with every way a checkpoint file can be unusable named.

    Args:
        path: the checkpoint file.
        load: the reader, for example ``lambda p: torch.load(p, map_location="cpu",
            weights_only=True)``.

    Returns:
        what ``load`` returns.

    Raises:
        CheckpointError: the file is missing, not a regular file, empty, or the loader
            failed on it (truncated or corrupt); the message names the file and the fix.

    Example:
        >>> import pickle, tempfile
        >>> path = Path(tempfile.mkdtemp()) / "last.pt"
        >>> _ = path.write_bytes(pickle.dumps({"epoch": 3})[:-3])
        >>> read_checkpoint(path, lambda p: pickle.loads(p.read_bytes()))
        Traceback (most recent call last):
        ...
        localkit_runs._errors.CheckpointError: checkpoint .../last.pt is corrupt or truncated (UnpicklingError: ...). Delete it to start the run over, or restore a good copy.
    """
    path = Path(path)
    fix = "Delete it to start the run over, or restore a good copy."
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint {path} does not exist") from exc
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read ({exc.strerror or exc})") from exc
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} is not a regular file. {fix}")
    if info.st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): a write was cut short. {fix}")
    try:
        return load(path)
    except Exception as exc:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}: {exc}). {fix}"
        ) from exc
