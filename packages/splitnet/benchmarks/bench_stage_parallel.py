"""Peak memory per process of stage-parallel training against one process training the whole model.

A parameter-heavy model at random init (timm's ViT-Huge, 632M parameters, on 32x32 inputs
cut into 4 patches of 16x16, so a step is cheap and the memory is weights, gradients and
AdamW's two moments, about 10 GiB) trains a few
steps with local learning at K=2, first in one process (``splitnet train --k 2``), then
as two gloo processes under torchrun (``--stage-parallel``, each building and training
only its stage). Every process reports its resident-set high-water mark (``ru_maxrss``)
and its peak address space (``VmPeak``). Then both runs are repeated under a per-process
address-space cap (``RLIMIT_AS``, what ``ulimit -v`` sets) chosen between the two: the
single process is expected to fail and the two stages to finish.

The data are a tiny image folder written into ``--out`` (2 classes, 16 noise images), so
that evaluation costs nothing next to training.

    python packages/splitnet/benchmarks/bench_stage_parallel.py --out runs/bench
    python packages/splitnet/benchmarks/bench_stage_parallel.py --out runs/bench --quick   # ViT-Base

Every process imports torch and timm (about 0.7 GiB resident before any model exists), so
the summed peak of the two stages is the single peak plus one such process: the model must
be large next to it for the sum to approach 1x, hence ViT-Huge.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

PER_RANK_TARGET, SUM_TARGET = 0.6, 1.1
GiB = 2**30


def _vm_peak() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmPeak:"):
            return int(line.split()[1]) * 1024
    return 0


def worker(args) -> None:
    """One training process: train, then write this process's peaks to ``--report``."""
    if args.cap_bytes is not None:
        resource.setrlimit(resource.RLIMIT_AS, (args.cap_bytes, args.cap_bytes))
    import splitnet

    config = splitnet.TrainConfig(
        model=args.model,
        model_options={"img_size": 32, "patch_size": 16},
        dataset="imagefolder",
        data_root=args.data,
        dataset_options={"image_size": 32, "augment": False},
        k=2,
        objective="greedy",
        optimizer="adamw",
        lr=1e-4,
        epochs=1,
        batch_size=args.batch_size,
        eval_batch_size=args.batch_size,
        max_steps_per_epoch=args.steps,
        threads=1,
        progress=False,
        stage_parallel=args.stage_parallel,
        dist_timeout=1800.0,
        out=args.train_out,
    )
    splitnet.train(config)
    rank = int(os.environ.get("RANK", "0"))
    peaks = {
        "rank": rank,
        "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "vm_peak_bytes": _vm_peak(),
    }
    Path(args.report).mkdir(parents=True, exist_ok=True)
    (Path(args.report) / f"rank{rank}.json").write_text(json.dumps(peaks))


def write_images(folder: Path) -> None:
    """2 classes x (6 train + 2 test) PNGs of seeded noise, 32x32."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("test", 2)):
        for label in ("a", "b"):
            where = folder / split / label
            where.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(where / f"{i}.png")


def launch(args, name: str, stage_parallel: bool, cap: int | None) -> dict:
    """Run the worker in one process or in two under torchrun; returns its peaks or its failure."""
    work = Path(args.out) / "stage-parallel"
    run, report = work / "runs" / name, work / "reports" / name
    for folder in (run, report):
        if folder.exists():
            subprocess.run(["rm", "-rf", str(folder)], check=True)
    worker_args = [
        __file__,
        "--worker",
        "--model",
        args.model,
        "--data",
        str(work / "images"),
        "--train-out",
        str(run),
        "--report",
        str(report),
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        *(["--stage-parallel"] if stage_parallel else []),
        *(["--cap-bytes", str(cap)] if cap is not None else []),
    ]
    if stage_parallel:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    else:
        command = [sys.executable]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*command, *worker_args], capture_output=True, text=True, env=env)
    peaks = sorted(
        (json.loads(p.read_text()) for p in report.glob("rank*.json")) if report.exists() else [],
        key=lambda r: r["rank"],
    )
    result = {"returncode": proc.returncode, "ranks": peaks}
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        result["error"] = next(
            (line for line in lines if "allocate" in line or "MemoryError" in line),
            lines[-1] if lines else "",
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--quick", action="store_true", help="ViT-Base instead of ViT-Huge, one step")
    parser.add_argument("--model", default=None, help="a timm ViT (default vit_huge_patch14_224)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 3)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stage-parallel", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cap-bytes", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--train-out", help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.model = args.model or ("vit_base_patch16_224" if args.quick else "vit_huge_patch14_224")
    args.steps = args.steps or (1 if args.quick else 3)
    if args.worker:
        worker(args)
        return
    write_images(Path(args.out) / "stage-parallel" / "images")
    single = launch(args, "single", stage_parallel=False, cap=None)
    staged = launch(args, "staged", stage_parallel=True, cap=None)
    if single["returncode"] or staged["returncode"]:
        raise SystemExit(f"a run failed: single {single}, stage-parallel {staged}")
    one = single["ranks"][0]["max_rss_bytes"]
    ranks = [r["max_rss_bytes"] for r in staged["ranks"]]
    report = {
        "model": args.model,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "single": single,
        "stage_parallel": staged,
        "per_rank_ratio": [r / one for r in ranks],
        "sum_ratio": sum(ranks) / one,
        "targets": {"per_rank": PER_RANK_TARGET, "sum": SUM_TARGET},
    }
    # a cap the stages fit under with room to spare, and the single process does not
    stage_vm = max(r["vm_peak_bytes"] for r in staged["ranks"])
    single_vm = single["ranks"][0]["vm_peak_bytes"]
    cap = (stage_vm + single_vm) // 2
    report["cap_bytes"] = cap
    report["capped_single"] = launch(args, "capped-single", stage_parallel=False, cap=cap)
    report["capped_stage_parallel"] = launch(args, "capped-staged", stage_parallel=True, cap=cap)
    out = Path(args.out) / "stage_parallel.json"
    out.write_text(json.dumps(report, indent=2))
    print(
        f"{args.model}, K=2, {args.steps} steps: one process {one / GiB:.2f} GiB peak RSS; stage-parallel ranks "
        + ", ".join(f"{r / GiB:.2f} GiB ({r / one:.2f}x)" for r in ranks)
        + f", sum {sum(ranks) / GiB:.2f} GiB ({sum(ranks) / one:.2f}x); targets {PER_RANK_TARGET}x per rank, "
        f"{SUM_TARGET}x summed"
    )
    capped_single, capped_staged = report["capped_single"], report["capped_stage_parallel"]
    print(
        f"address-space cap {cap / GiB:.2f} GiB per process: one process "
        + ("finished" if capped_single["returncode"] == 0 else f"failed ({capped_single.get('error', '')})")
        + "; stage-parallel "
        + ("finished" if capped_staged["returncode"] == 0 else f"failed ({capped_staged.get('error', '')})")
    )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
