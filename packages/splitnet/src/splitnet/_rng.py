"""Random state of a training process: saved with checkpoints, restored on resume.

Checkpoints are read with ``weights_only=True``, which admits lists but not tuples, so
Python's ``random`` state is stored as nested lists.
"""

from __future__ import annotations

import random

import torch

from ._distributed import Topology


def python_state() -> list:
    """Python's ``random`` state as nested lists."""
    return _as_lists(random.getstate())


def restore(torch_state: torch.Tensor | None, python: list) -> None:
    """Set both generators; ``torch_state=None`` keeps torch's (a rank the saved run lacked)."""
    if torch_state is not None:
        torch.set_rng_state(torch_state)
    random.setstate(_as_tuple(python))


def gather_torch_states(topology: Topology) -> list[torch.Tensor]:
    """Every rank's torch generator state, indexed by rank (a collective: all ranks call it)."""
    if not topology.distributed:
        return [torch.get_rng_state()]
    import torch.distributed as dist

    states = [None] * topology.world
    dist.all_gather_object(states, torch.get_rng_state())
    return states


def _as_lists(value):
    return [_as_lists(v) for v in value] if isinstance(value, (tuple, list)) else value


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list) else value
