"""Side-by-side timing shared by the benchmarks: interleaved runs, medians, the device's name."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

import torch


def interleaved_medians(
    runs: dict[str, Callable[[], object]],
    repeats: int,
    device: torch.device,
    before: Callable[[], None] = lambda: None,
) -> dict[str, float]:
    """Median seconds of each run, taking turns so that drifts in machine load hit all alike.

    The first round is a warm-up and is dropped. ``before`` runs untimed ahead of every call
    (e.g. clearing gradients).
    """
    samples: dict[str, list[float]] = {key: [] for key in runs}
    for _ in range(repeats + 1):
        for key, fn in runs.items():
            before()
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            samples[key].append(time.perf_counter() - start)
    return {key: statistics.median(values[1:]) for key, values in samples.items()}


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"
