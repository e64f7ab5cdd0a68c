"""How many CPU threads torch uses when a run does not say.

torch's own default is one thread per physical core, however busy the machine. On a
shared machine that oversubscribes the cores: a batch-64 ResNet-32 step took 5-15 s with
2 threads and 2-4 s with 1 thread on a 2-core machine that other jobs kept busy. So the
default is bounded by the CPUs this process may run on and by the ones not already busy.
"""

from __future__ import annotations

import os

import torch

ENV = "SPLITNET_THREADS"


def default_threads() -> int:
    """The torch intra-op thread count for a run that passes no ``--threads``.

    ``SPLITNET_THREADS=N`` sets it; otherwise it is the smallest of torch's default (one
    per physical core, or ``OMP_NUM_THREADS``), the CPUs in this process's affinity mask,
    and the CPUs the 1-minute load average leaves idle, and at least 1.

    Returns:
        The number of threads, >= 1.

    Raises:
        ValueError: ``SPLITNET_THREADS`` is set to anything but an integer >= 1.

    Example:
        >>> default_threads() >= 1
        True
    """
    given = os.environ.get(ENV)
    if given is not None:
        if not given.strip().isdigit() or int(given) < 1:
            raise ValueError(f"{ENV} must be an integer >= 1 (the torch threads per run), got {given!r}")
        return int(given)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    idle = usable - round(os.getloadavg()[0]) if hasattr(os, "getloadavg") else usable
    return max(1, min(torch.get_num_threads(), usable, idle))
