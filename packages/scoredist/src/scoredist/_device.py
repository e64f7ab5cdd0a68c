"""Where a run computes: the device and mixed precision, checked once; batches moved there.

Clips are decoded and collated on the CPU (in DataLoader workers); on a GPU the loader pins
them in page-locked memory, so the copy to the device is asynchronous (``non_blocking``).
Only what the model reads travels (``video`` or ``features``): scores, ids and difficulty
stay on the CPU, where the labels and metrics are computed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

AMP = {"bf16": torch.bfloat16, "fp16": torch.float16}
MODEL_INPUTS = ("video", "features")


def resolve_device(device: str | torch.device, amp: str | None) -> torch.device:
    """The device to train on, refused with the fix when this machine lacks it.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``.
        amp: ``"bf16"``, ``"fp16"`` or ``None`` (full precision).

    Raises:
        ValueError: an unknown device or precision, CUDA where there is none, or bfloat16
            on a GPU without it.
    """
    if amp is not None and amp not in AMP:
        raise ValueError(f"amp must be one of {', '.join(AMP)} (or None: full precision), got {amp!r}")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {str(device)!r} asks for a GPU, but torch {torch.__version__} sees no CUDA device "
                "here: pass --device cpu, or install a CUDA build of torch on a machine with an NVIDIA driver"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} GPU(s)")
        if amp == "bf16" and not torch.cuda.is_bf16_supported():
            raise ValueError(
                f"amp bf16: {torch.cuda.get_device_name(resolved)} does not support bfloat16; use fp16"
            )
    return resolved


def autocast(device: torch.device, amp: str | None) -> torch.autocast:
    """``torch.autocast`` for ``amp`` on ``device`` (disabled when ``amp`` is ``None``)."""
    return torch.autocast(device.type, dtype=AMP.get(amp), enabled=amp is not None)


def grad_scaler(device: torch.device, amp: str | None) -> torch.amp.GradScaler | None:
    """A gradient scaler for float16 (its small gradients would flush to zero); ``None`` otherwise."""
    return torch.amp.GradScaler(device.type) if amp == "fp16" else None


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch with the model's inputs on ``device`` (an asynchronous copy from pinned memory)."""
    return {
        key: value.to(device, non_blocking=True) if key in MODEL_INPUTS and torch.is_tensor(value) else value
        for key, value in batch.items()
    }
