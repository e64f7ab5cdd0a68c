"""The prepared GPU check: one command, a few minutes on one GPU, real CUDA numbers.

Sections, each written to ``OUT/<section>.json`` as soon as it is done (a run cut short
keeps what it finished), and all together to ``OUT/gpu_check.md``:

1. ``exactness``: a split network's inference equals the unsplit model's on the GPU, for a
   few timm models (cuDNN in deterministic mode, so both run the same kernels).
2. ``resnet110``: ResNet-110 on 32x32 at batch 1024, end-to-end against greedy and InfoPro
   local training at K=2/3/4 (memory-balanced cuts costed with each objective), in fp32 and
   bf16: peak CUDA memory of one training step (``max_memory_allocated`` after
   ``reset_peak_memory_stats``, and the allocator's reserved bytes) as % of end-to-end, and
   the time per step as a ratio (median of interleaved, synchronised steps).
3. ``digits``: a short local training run (``splitnet.train``) on the GPU, bf16.
4. ``decode``: video decoding throughput on the GPU, if a GPU decoder is installed
   (torchcodec with CUDA, or decord built with CUDA); otherwise the row says none is.

It prints the GPU's name and driver and refuses to run without CUDA, except as a dry run
on the CPU (``--device cpu --quick``: tiny sizes, ResNet-20 for ResNet-110, the ledger
instead of CUDA peaks), which checks that the script and its tables work. The whole check
is meant to take at most 8 minutes on one GPU; the time is recorded and a longer run says so.

    python benchmarks/gpu_check.py --out runs/gpu               # on a machine with a GPU
    python benchmarks/gpu_check.py --out runs/gpu --device cpu --quick   # dry run, no GPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

import splitnet
from splitnet._device import cuda_step_peak, synchronize

PAPER_MEMORY = {2: 0.572, 3: 0.449, 4: 0.374}  # InfoPro*, ResNet-110, CIFAR-10, % of end-to-end (Table 2)
PAPER_TIME = {2: 1.011, 3: 1.075, 4: 1.134}  # InfoPro*, the same, wall time vs end-to-end
TARGET_MEMORY = {2: 0.55, 3: 0.40, 4: 0.30}
TARGET_TIME = {4: 1.10}
BUDGET_SECONDS = 480  # issue 14: the whole check in at most 8 minutes on one GPU
OBJECTIVES = [("greedy", {}), ("infopro", {"check_inputs": False})]
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


class Sizes:
    """How big each section runs: the real check, or the CPU dry run."""

    def __init__(self, quick: bool):
        self.quick = quick
        # (timm name, input size, K)
        self.exactness = (
            [("resnet10t", (3, 64, 64), 3), ("vit_tiny_patch16_224", (3, 224, 224), 3)]
            if quick
            else [
                ("resnet50", (3, 224, 224), 4),
                ("convnext_tiny", (3, 224, 224), 4),
                ("efficientnet_b0", (3, 224, 224), 4),
                ("vit_small_patch16_224", (3, 224, 224), 4),
                ("swin_tiny_patch4_window7_224", (3, 224, 224), 4),
            ]
        )
        self.exactness_batch = 2 if quick else 16
        # the dry run checks the script, not the numbers: ResNet-20 plans in seconds where
        # ResNet-110 costed with InfoPro at every cut takes many minutes on a small CPU
        self.model = "cifar_resnet20" if quick else "cifar_resnet110"
        self.batch = 16 if quick else 1024
        self.ks = (2, 3, 4)
        self.repeats = 1 if quick else 10
        self.digits = (
            {"epochs": 1, "batch_size": 32, "max_steps_per_epoch": 3, "eval_batch_size": 128}
            if quick
            else {"epochs": 3, "batch_size": 128, "eval_batch_size": 500}
        )
        self.decode_frames = 16 if quick else 256


def environment(device: torch.device, quick: bool) -> dict:
    """What ran: the GPU, its driver, torch and CUDA versions, and the host."""
    info = {
        "device": str(device),
        "quick": quick,
        "torch": torch.__version__,
        "cuda_build": torch.version.cuda,
        "python": platform.python_version(),
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=props.name,
            gpu_memory_bytes=props.total_memory,
            capability=f"{props.major}.{props.minor}",
            driver=_driver_version(),
            cudnn=torch.backends.cudnn.version(),
        )
    else:
        info.update(gpu=None, driver=None, cpu=platform.processor() or platform.machine())
    return info


def _driver_version() -> str:
    """The NVIDIA driver's version, from NVML or nvidia-smi (``unknown`` if neither answers)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:  # NVML is optional: fall back to the command line tool
        pass
    smi = shutil.which("nvidia-smi")
    if smi:
        proc = subprocess.run(
            [smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True
        )
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip().splitlines()[0]
    return "unknown"


def median_times(
    runs: dict[str, Callable[[], object]], repeats: int, device: torch.device, before: Callable[[], None]
) -> dict[str, float]:
    """Median seconds of each run, interleaved, the first round dropped as warm-up.

    The clock starts and stops on an idle device (``synchronize``), so a figure is the
    work, not the kernel launches.
    """
    samples: dict[str, list[float]] = {key: [] for key in runs}
    for _ in range(repeats + 1):
        for key, fn in runs.items():
            before()
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            samples[key].append(time.perf_counter() - start)
    return {key: statistics.median(values[1:]) for key, values in samples.items()}


def check_exactness(sizes: Sizes, device: torch.device) -> list[dict]:
    """A split model's inference equals the unsplit model's, bit for bit, on ``device``."""
    import timm

    deterministic = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    rows = []
    try:
        for name, input_size, k in sizes.exactness:
            torch.manual_seed(0)
            model = timm.create_model(name, pretrained=False).to(device).eval()
            x = torch.rand(sizes.exactness_batch, *input_size, device=device)
            p = splitnet.plan(model, k, balance="even", example_input=x[:2], measure_memory=False)
            net = splitnet.split(model, p).eval()
            with torch.no_grad():
                expected, got = model(x), net(x)
            rows.append(
                {
                    "model": name,
                    "input": list(input_size),
                    "batch": sizes.exactness_batch,
                    "k": p.k,
                    "cuts": [c.label for c in p.cuts],
                    "equal": bool(torch.equal(expected, got)),
                    "max_abs_diff": float((expected - got).abs().max()),
                }
            )
            print(
                f"  {name}: equal={rows[-1]['equal']} max |diff| {rows[-1]['max_abs_diff']:.3g}", flush=True
            )
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = deterministic
    return rows


def check_resnet110(sizes: Sizes, device: torch.device) -> dict:
    """Peak memory and time per step of local vs end-to-end training, fp32 and bf16."""
    torch.manual_seed(0)
    model = splitnet.create_backbone(sizes.model).to(device).train()
    x = torch.rand(sizes.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (sizes.batch,), device=device)
    chain = splitnet.trace(model, x[:2])
    installed = splitnet.list_objectives()
    nets, skipped = {}, []
    for objective, options in OBJECTIVES:
        if objective not in installed:
            skipped.append(f"{objective}: not installed (pip install localkit-infoloss)")
            continue
        for k in sizes.ks:
            p = splitnet.plan(
                model,
                k,
                balance="memory",
                chain=chain,
                example_input=x[:2],
                objective=objective,
                objective_options=options,
                batch_size=sizes.batch,
            )
            nets[objective, k] = splitnet.split(model, p).train()
    modules = [model, *nets.values()]

    def zero_grad() -> None:
        for module in modules:
            module.zero_grad(set_to_none=True)

    rows = []
    cuda = device.type == "cuda"
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True  # the fastest kernels, as a training run would pick them
    try:
        for precision, dtype in PRECISIONS.items():

            def e2e(dtype=dtype) -> None:
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    loss = F.cross_entropy(model(x), y)
                loss.backward()

            runs = {"end-to-end": e2e}
            for (objective, k), net in nets.items():
                runs[f"{objective} K={k}"] = lambda net=net, dtype=dtype: net.local_step(
                    x, y, autocast_dtype=dtype, check_labels=False, check_inputs=False
                )
            peaks = {}
            if cuda:
                for key, run in runs.items():
                    zero_grad()
                    run()  # warm-up: gradients exist and kernels are chosen before the measured step
                    peaks[key] = cuda_step_peak(run, device)
            seconds = median_times(runs, sizes.repeats, device, zero_grad)
            base_time = seconds["end-to-end"]
            base_peak = peaks.get("end-to-end")
            for key, run_seconds in seconds.items():
                row = {
                    "precision": precision,
                    "method": key,
                    "seconds_per_step": run_seconds,
                    "time_ratio": run_seconds / base_time,
                }
                if key != "end-to-end":
                    objective, k = key.split(" K=")
                    p = nets[objective, int(k)].plan
                    row.update(
                        objective=objective,
                        k=int(k),
                        cuts=[c.label for c in p.cuts],
                        ledger_ratio=max(p.stage_bytes) / p.e2e_bytes,
                    )
                if key in peaks:
                    row.update(
                        peak_bytes=peaks[key]["peak_bytes"],
                        peak_reserved_bytes=peaks[key]["peak_reserved_bytes"],
                        memory_ratio=peaks[key]["peak_bytes"] / base_peak["peak_bytes"],
                        reserved_ratio=peaks[key]["peak_reserved_bytes"] / base_peak["peak_reserved_bytes"],
                    )
                rows.append(row)
            print(f"  {precision}: end-to-end {1e3 * base_time:.1f} ms/step", flush=True)
    finally:
        torch.backends.cudnn.benchmark = benchmark
    return {
        "model": sizes.model,
        "input": [3, 32, 32],
        "batch_size": sizes.batch,
        "balance": "memory",
        "repeats": sizes.repeats,
        "memory_method": "cuda max_memory_allocated / max_memory_reserved over one step"
        if cuda
        else "none on CPU (the ledger column is the saved-tensor ledger)",
        "skipped": skipped,
        "rows": rows,
    }


def check_digits(sizes: Sizes, device: torch.device) -> dict:
    """A short InfoPro (or greedy) K=2 training run with ``splitnet.train`` on ``device``, bf16."""
    objective = "infopro" if "infopro" in splitnet.list_objectives() else "greedy"
    with tempfile.TemporaryDirectory() as tmp:
        config = splitnet.TrainConfig(
            model="cifar_resnet20",
            dataset="digits",
            k=2,
            objective=objective,
            amp="bf16",
            device=str(device),
            lr=0.05,
            progress=False,
            out=str(Path(tmp) / "run"),
            **sizes.digits,
        )
        started = time.perf_counter()
        summary = splitnet.train(config)
        seconds = time.perf_counter() - started
        lines = (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])
    return {
        "model": config.model,
        "k": config.k,
        "objective": objective,
        "amp": config.amp,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "cuts": summary["cuts"],
        "test_acc": last["test_acc"],
        "images_per_second": last["images_per_second"],
        "seconds_per_step": last["seconds_per_step"],
        "cuda_peak_bytes": last.get("cuda_peak_bytes"),
        "cuda_peak_reserved_bytes": last.get("cuda_peak_reserved_bytes"),
        "seconds": seconds,
    }


def _gpu_decoders() -> list[tuple[str, Callable[[Path, int], int]]]:
    """The GPU video decoders installed here, each as ``(name, decode(path, frames) -> frames read)``.

    Whether decord was built with CUDA shows only when a reader opens on the GPU (``decord.gpu``
    never fails), so :func:`check_decode` tells a CPU-only build apart by its error.
    """
    found = []
    try:
        from torchcodec.decoders import VideoDecoder

        def torchcodec_decode(path: Path, frames: int) -> int:
            decoder = VideoDecoder(str(path), device="cuda")
            batch = decoder.get_frames_in_range(0, frames)
            torch.cuda.synchronize()
            return int(batch.data.shape[0])

        found.append(("torchcodec (cuda)", torchcodec_decode))
    except ImportError:
        pass
    try:
        import decord
    except ImportError:
        decord = None
    if decord is not None:

        def decord_decode(path: Path, frames: int) -> int:
            reader = decord.VideoReader(str(path), ctx=decord.gpu(0))
            return int(reader.get_batch(list(range(frames))).shape[0])

        found.append(("decord (cuda)", decord_decode))
    return found


def check_decode(sizes: Sizes, device: torch.device) -> list[dict]:
    """Frames per second of each installed GPU decoder on a 1280x720 H.264 clip."""
    decoders = _gpu_decoders() if device.type == "cuda" else []
    if not decoders:
        return [
            {
                "decoder": None,
                "note": "no GPU decoder installed (torchcodec with CUDA, or decord built with CUDA)"
                if device.type == "cuda"
                else "CPU dry run: GPU decoders not probed",
            }
        ]
    try:
        import av
        import numpy as np
    except ImportError:
        return [{"decoder": name, "note": "PyAV is needed to write the test clip"} for name, _ in decoders]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        with av.open(str(path), "w") as out:
            stream = out.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
            for i in range(sizes.decode_frames):
                frame = np.full((720, 1280, 3), i % 256, np.uint8)
                out.mux(stream.encode(av.VideoFrame.from_ndarray(frame)))
            out.mux(stream.encode())
        for name, decode in decoders:
            try:
                decode(path, 8)  # warm-up: contexts and codecs
                started = time.perf_counter()
                frames = decode(path, sizes.decode_frames)
                seconds = time.perf_counter() - started
                rows.append({"decoder": name, "frames": frames, "frames_per_second": frames / seconds})
            except Exception as exc:  # report a broken decoder, keep the other results
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                cpu_only = "decord" in name and "cuda" in message.lower()
                note = "not built with CUDA" if cpu_only else f"failed: {type(exc).__name__}: {message}"
                rows.append({"decoder": name, "note": note})
    return rows


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def markdown(results: dict) -> str:
    """The tables docs/benchmarks.md shows, from whatever sections have finished."""
    env = results["environment"]
    where = (
        f"{env['gpu']}, driver {env['driver']}, CUDA {env['cuda_build']}, torch {env['torch']}"
        if env["gpu"]
        else f"CPU dry run ({env['cpu']}), torch {env['torch']}: sizes shrunk, no CUDA peaks"
    )
    lines = [f"# GPU check: {where}", ""]
    if "exactness" in results:
        lines += [
            "## Split exactness",
            "",
            "| model | input | batch | K | bitwise equal | max abs diff |",
            "|---|---|---|---|---|---|",
        ]
        for r in results["exactness"]:
            size = "x".join(map(str, r["input"]))
            lines.append(
                f"| {r['model']} | {size} | {r['batch']} | {r['k']} | {'yes' if r['equal'] else '**no**'} "
                f"| {r['max_abs_diff']:.3g} |"
            )
        lines.append("")
    if "resnet110" in results:
        res = results["resnet110"]
        lines += [
            f"## {res['model']}, 32x32, batch {res['batch_size']}: local vs end-to-end",
            "",
            "| precision | method | K | peak allocated (% of E2E) | peak reserved (% of E2E) | ledger (% of E2E) "
            "| paper InfoPro* | memory target | ms / step | time vs E2E | paper | time target |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in res["rows"]:
            k = r.get("k")
            local = k is not None
            lines.append(
                "| "
                + " | ".join(
                    [
                        r["precision"],
                        r["method"] if not local else r["objective"],
                        str(k) if local else "1",
                        _pct(r.get("memory_ratio")),
                        _pct(r.get("reserved_ratio")),
                        _pct(r.get("ledger_ratio")) if local else "100%",
                        _pct(PAPER_MEMORY.get(k)) if local else "",
                        f"<= {TARGET_MEMORY[k]:.0%}" if local else "",
                        f"{1e3 * r['seconds_per_step']:.1f}",
                        f"{r['time_ratio']:.3f}x",
                        f"{PAPER_TIME[k]:.3f}x" if local else "",
                        f"<= {TARGET_TIME[k]:.2f}x" if k in TARGET_TIME else "",
                    ]
                )
                + " |"
            )
        for note in res["skipped"]:
            lines.append(f"\nSkipped: {note}")
        lines.append("")
    if "digits" in results:
        d = results["digits"]
        peak = d["cuda_peak_bytes"]
        lines += [
            "## Digits, short training run",
            "",
            "| model | K | objective | amp | epochs | test acc | images/s | ms / step | peak allocated | seconds |",
            "|---|---|---|---|---|---|---|---|---|---|",
            f"| {d['model']} | {d['k']} | {d['objective']} | {d['amp']} | {d['epochs']} | {d['test_acc']:.3f} "
            f"| {d['images_per_second']:.0f} | {1e3 * d['seconds_per_step']:.1f} "
            f"| {'-' if peak is None else f'{peak / 2**20:.0f} MiB'} | {d['seconds']:.1f} |",
            "",
        ]
    if "decode" in results:
        lines += ["## GPU video decoding", "", "| decoder | frames/s | note |", "|---|---|---|"]
        for r in results["decode"]:
            rate = r.get("frames_per_second")
            lines.append(
                f"| {r['decoder'] or 'none'} | {'-' if rate is None else f'{rate:.0f}'} | {r.get('note', '')} |"
            )
        lines.append("")
    if "seconds" in results:
        lines.append(f"Whole check: {results['seconds']:.0f} s.")
    return "\n".join(lines) + "\n"


def _write(out: Path, name: str, data) -> None:
    path = out / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/gpu", help="folder for the JSON files and gpu_check.md")
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu with --quick")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a dry run of the script itself")
    args = parser.parse_args(argv)
    try:
        device = torch.device(args.device)
    except (RuntimeError, TypeError):
        parser.exit(2, f"gpu_check: --device must be cuda, cuda:N or cpu, got {args.device!r}\n")
    if device.type not in ("cpu", "cuda"):
        parser.exit(2, f"gpu_check: --device must be cuda, cuda:N or cpu, got {args.device!r}\n")
    if device.type == "cpu" and not args.quick:
        parser.exit(2, "gpu_check: the CPU only does the dry run: pass --device cpu --quick\n")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.exit(
            2,
            f"gpu_check: no CUDA device (torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); "
            "it measures a GPU and refuses to run without one. Dry run: --device cpu --quick\n",
        )
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        parser.exit(2, f"gpu_check: {args.device!r}: this machine has {torch.cuda.device_count()} GPU(s)\n")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = Sizes(args.quick)
    started = time.perf_counter()
    results = {"environment": environment(device, args.quick)}
    env = results["environment"]
    print(
        f"GPU: {env['gpu']}, driver {env['driver']}, CUDA {env['cuda_build']}, torch {env['torch']}"
        if env["gpu"]
        else f"CPU dry run on {env['cpu']} (torch {env['torch']}): no GPU numbers",
        flush=True,
    )
    _write(out, "environment", env)
    sections = [
        ("exactness", check_exactness),
        ("resnet110", check_resnet110),
        ("digits", check_digits),
        ("decode", check_decode),
    ]
    for name, check in sections:
        print(f"{name} ...", flush=True)
        section_start = time.perf_counter()
        results[name] = check(sizes, device)
        print(f"{name}: {time.perf_counter() - section_start:.1f} s", flush=True)
        _write(out, name, results[name])
        (out / "gpu_check.md").write_text(markdown(results))
    results["seconds"] = time.perf_counter() - started
    env["seconds"] = results["seconds"]
    env["within_budget"] = results["seconds"] <= BUDGET_SECONDS
    _write(out, "environment", env)
    (out / "gpu_check.md").write_text(markdown(results))
    print(markdown(results))
    if not env["within_budget"]:
        print(
            f"gpu_check: took {results['seconds']:.0f} s, over the {BUDGET_SECONDS} s budget", file=sys.stderr
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
