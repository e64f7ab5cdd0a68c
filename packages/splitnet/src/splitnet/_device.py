"""The device a run trains on: checked once, timed with clocks that wait for it, its memory read.

CUDA runs kernels asynchronously: a wall clock read right after a call measures the launch,
not the work. :class:`StepTimer` times steps with CUDA events (recorded on the stream and
read once, at the end), so timing never stalls training; :func:`synchronize` is for the
few places that must wait (the end of an epoch). CUDA memory figures are the caching
allocator's: ``max_memory_allocated`` (tensors) and ``max_memory_reserved`` (what the
allocator holds from the driver, what ``nvidia-smi`` shows), both since the last
:func:`reset_peak_memory`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def resolve_device(name: str, amp: str | None = None) -> torch.device:
    """The ``torch.device`` that ``name`` names, refused with the fix when this machine lacks it.

    Args:
        name: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        amp: the run's mixed precision (``"bf16"``, ``"fp16"`` or ``None``), checked against
            the device: bfloat16 needs a GPU that supports it (Ampere or newer).

    Returns:
        The device.

    Raises:
        ValueError: a device string torch does not know, CUDA asked for where there is none
            (or not that many GPUs), or bfloat16 on a GPU without it.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {name!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {name!r} asks for a GPU, but torch {torch.__version__} sees no CUDA device here "
                f"(CUDA build: {torch.version.cuda or 'no'}): pass --device cpu, or install a CUDA build "
                "of torch on a machine with an NVIDIA driver"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {name!r}: this machine has {count} GPU(s), cuda:0 .. cuda:{count - 1}")
        if amp == "bf16" and not torch.cuda.is_bf16_supported():
            raise ValueError(
                f"--amp bf16: {torch.cuda.get_device_name(device)} does not support bfloat16; "
                "use --amp fp16 (with its gradient scaler) or full precision"
            )
    return device


def synchronize(device: torch.device) -> None:
    """Wait until ``device`` has done all the work queued on it (nothing to wait for on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pin_memory(device: torch.device) -> bool:
    """Whether a DataLoader feeding ``device`` should pin its batches.

    Page-locked batches make ``tensor.to(device, non_blocking=True)`` a real asynchronous
    copy; pinning needs a CUDA device and gains nothing on CPU.
    """
    return device.type == "cuda"


class StepTimer:
    """Seconds each timed step took on ``device``.

    On CPU it reads the wall clock at :meth:`start` and :meth:`stop`. On CUDA it records
    an event on the current stream at each and reads them all in :meth:`seconds`, once:
    each figure is then the time the GPU spent between the two marks, the step's work
    rather than the time taken to launch it, and training never waits for the clock.

    Example:
        >>> timer = StepTimer(torch.device("cpu"))
        >>> timer.start(); timer.stop()
        >>> len(timer.seconds())
        1
    """

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self._marks: list[tuple[object, object]] = []
        self._open: object = None

    def _mark(self) -> object:
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def start(self) -> None:
        self._open = self._mark()

    def stop(self) -> None:
        if self._open is None:
            raise RuntimeError("StepTimer.stop() without start()")
        self._marks.append((self._open, self._mark()))
        self._open = None

    def seconds(self) -> list[float]:
        """Every timed step's seconds, in order (on CUDA this waits for the last one to finish)."""
        if not self.cuda:
            return [end - begin for begin, end in self._marks]
        if self._marks:
            self._marks[-1][1].synchronize()
        return [begin.elapsed_time(end) / 1000 for begin, end in self._marks]


def reset_peak_memory(device: torch.device) -> None:
    """Start a new CUDA peak-memory window (``max_memory_allocated``/``reserved`` count from here)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def cuda_step_peak(step: Callable[[], object], device: torch.device) -> dict:
    """Peak CUDA memory of one call of ``step()``, over what was allocated before it.

    The queue is drained and the allocator's unused cache released first, so the reserved
    figure counts only what this step made the allocator take from the driver. The peak is
    ``max_memory_allocated`` after ``reset_peak_memory_stats`` and a synchronised step;
    a fresh process is not needed, because allocated bytes do not depend on what the
    process did before (unlike a resident set).

    Returns:
        ``peak_bytes`` and ``peak_reserved_bytes`` (growth over the baseline), and
        ``baseline_bytes``, ``baseline_reserved_bytes``, ``method``.
    """
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    reserved = torch.cuda.memory_reserved(device)
    step()
    torch.cuda.synchronize(device)
    return {
        "peak_bytes": torch.cuda.max_memory_allocated(device) - before,
        "peak_reserved_bytes": torch.cuda.max_memory_reserved(device) - reserved,
        "baseline_bytes": before,
        "baseline_reserved_bytes": reserved,
        "method": f"cuda max_memory_allocated ({torch.cuda.get_device_name(device)})",
    }
