"""The real peak memory of one training step, measured in a fresh subprocess.

CPU: the process's resident-set high-water mark (``VmHWM``) is reset right before the step
(``/proc/self/clear_refs``) and read after it; glibc is told to map every allocation of
64 KiB or more directly, so freed tensors leave the resident set at once and the mark tracks
live memory. CUDA: ``torch.cuda.max_memory_allocated`` over the step, after
``reset_peak_memory_stats``, and the allocator's reserved bytes beside it
(``_device.cuda_step_peak``). Both report the growth over what was resident before the step
(model, optimizer-free gradients, inputs).

Run as ``python -m splitnet._peak '<json spec>'``; use :func:`measure_peak` from Python.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

_STATUS = "/proc/self/status"


class MeasurementError(RuntimeError):
    """A peak-memory measurement could not run; the message carries the subprocess's error."""


def _status_kib(key: str) -> int:
    with open(_STATUS) as f:
        return int(re.search(rf"{key}:\s+(\d+)", f.read()).group(1))


def measure_peak(spec: dict, timeout: float = 1800.0) -> dict:
    """Measure the peak memory of one training step in a fresh Python process.

    Args:
        spec: ``model`` (a backbone name), ``model_options``, ``input_size`` ``[C, H, W]``,
            ``batch_size``, ``mode`` (``"e2e"`` or ``"local"``), and for local mode ``cuts``
            (labels), ``objective``, ``objective_options``, optional ``granularity``
            (``"block"``; ``"node"`` for cuts inside blocks) and ``dataset`` (the name the
            objective picks its defaults by); optional ``device`` (``"cpu"``, ``"cuda"``),
            ``threads``, ``amp`` (``"bf16"`` or ``"fp16"``: the step under ``torch.autocast``,
            fp16 with a gradient scaler), ``per_stage`` (local mode: also run the step stage
            by stage and measure each stage's peak, one more step).
        timeout: seconds before the measurement is abandoned.

    Returns:
        ``{"peak_bytes": ..., "baseline_bytes": ..., "method": ...}``, on CUDA also
        ``peak_reserved_bytes`` and ``baseline_reserved_bytes``, and with ``per_stage``
        ``stage_peak_bytes``: each stage's peak over the same baseline (the stage's input,
        held from the stage before, included), whose largest is where the step peaks.

    Raises:
        MeasurementError: the subprocess failed; the message carries its error output.
        ValueError: ``per_stage`` that is not a bool, or given for mode ``"e2e"``.
    """
    per_stage = spec.get("per_stage", False)
    if not isinstance(per_stage, bool):
        raise ValueError(f"per_stage must be True or False, not {per_stage!r}")
    if per_stage and spec.get("mode") == "e2e":
        raise ValueError(
            "per_stage measures the stages of a local step; end-to-end (mode 'e2e') has none: "
            "use mode 'local' or leave per_stage out"
        )
    if sys.platform != "linux" and spec.get("device", "cpu") == "cpu":
        raise MeasurementError(
            "CPU peak measurement reads /proc and needs Linux; use device='cuda' elsewhere"
        )
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    proc = subprocess.run(
        [sys.executable, "-m", "splitnet._peak", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise MeasurementError(
            f"peak measurement of {spec.get('model')} ({spec.get('mode')}) failed:\n" + proc.stderr[-3000:]
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _run(spec: dict) -> dict:
    import torch
    import torch.nn.functional as F

    from ._backbones import create_backbone
    from ._device import cuda_step_peak
    from ._localnet import split
    from ._plan import plan

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    device = torch.device(spec.get("device", "cpu"))
    dtype = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}[spec.get("amp")]
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    amp = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)
    torch.manual_seed(0)
    model = create_backbone(spec["model"], **spec.get("model_options", {})).to(device).train()
    # image-like values in [0, 1]: what reconstruction objectives check their targets against
    x = torch.rand(spec["batch_size"], *spec["input_size"], device=device)
    if spec["mode"] == "e2e":
        num_classes = model(x[:2]).shape[1]
        y = torch.randint(0, num_classes, (x.shape[0],), device=device)

        def step():
            with amp:
                loss = F.cross_entropy(model(x), y)
            (scaler.scale(loss) if scaler is not None else loss).backward()

    else:
        p = plan(
            model,
            cuts=spec["cuts"],
            objective=spec.get("objective", "greedy"),
            objective_options=spec.get("objective_options", {}),
            granularity=spec.get("granularity", "block"),
            backbone=spec["model"],
            dataset=spec.get("dataset"),
            example_input=x[:2],
            measure_memory=False,
        )
        net = split(model, p).train()
        y = torch.randint(0, p.context.num_classes, (x.shape[0],), device=device)

        def step():
            net.local_step(x, y, check_labels=False, autocast_dtype=dtype, grad_scaler=scaler)

        def stage_peaks(start_window, window_peak) -> list[int]:
            # what local_step does, with a measurement window around every stage
            h, peaks = x, []
            for k in range(net.k):
                start_window()
                h, _ = net.stage_step(
                    k, h, x, y, autocast_dtype=dtype, grad_scaler=scaler, check_inputs=k == 0
                )
                peaks.append(window_peak())
            return peaks

    step()  # warm-up: gradient buffers, kernels and allocator pools exist from here on
    if device.type == "cuda":
        result = cuda_step_peak(step, device)

        def start_window():
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)

        def window_peak() -> int:
            torch.cuda.synchronize(device)
            return torch.cuda.max_memory_allocated(device) - result["baseline_bytes"]

    else:
        before = _status_kib("VmRSS") * 1024

        def start_window():
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")

        def window_peak() -> int:
            return _status_kib("VmHWM") * 1024 - before

        start_window()
        step()
        result = {
            "peak_bytes": window_peak(),
            "baseline_bytes": before,
            "method": "cpu resident-set high-water mark of a fresh process",
        }
    if spec.get("per_stage"):
        result["stage_peak_bytes"] = stage_peaks(start_window, window_peak)
    return result


if __name__ == "__main__":
    print(json.dumps(_run(json.loads(sys.argv[1]))))
