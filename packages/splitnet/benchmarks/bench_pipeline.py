"""Throughput of asynchronous stage-parallel local training on torch.distributed (gloo, CPU).

K=2 stages on 2 worker processes (one thread each, time-balanced cuts) against the same
local training in one process with one thread (one worker) and with two threads (the same
total threads). The target: K workers reach at least 0.85*K x the images/s of one worker.
Each stage's compute time per step is reported, so the bottleneck is visible.

    python packages/splitnet/benchmarks/bench_pipeline.py --out runs/bench [--steps 20] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TRAIN = [
    "-m",
    "splitnet",
    "train",
    "--model",
    "cifar_resnet56",
    "--dataset",
    "digits",
    "--k",
    "2",
    "--balance",
    "time",
    "--epochs",
    "1",
    "--quiet",
]


def run(launcher: list[str], args: list[str], threads: int, out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, *launcher, *TRAIN, *args, "--threads", str(threads), "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--steps", type=int, default=20, help="steps per run (digits has 20 batches of 64)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="8 steps at batch 32")
    args = parser.parse_args()
    steps, batch = (8, 32) if args.quick else (args.steps, args.batch)
    common = ["--max-steps-per-epoch", str(steps), "--batch-size", str(batch)]
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        one = run([], common, 1, tmp / "one-thread")
        two = run([], common, 2, tmp / "two-threads")
        # time-balanced cuts time the real model, so every process builds it whole (--full-build)
        pipe = run(torchrun, [*common, "--stage-parallel", "--full-build"], 1, tmp / "pipeline")
    rate = {
        "1 process, 1 thread": one["images_per_second"],
        "1 process, 2 threads": two["images_per_second"],
        "2 stages on 2 processes, 1 thread each": pipe["images_per_second"],
    }
    base = rate["1 process, 1 thread"]
    result = {
        "model": "cifar_resnet56",
        "k": 2,
        "batch_size": batch,
        "steps": pipe["global_step"],  # digits has fewer batches than --steps at large batches
        "images_per_second": rate,
        "speedup_vs_one_worker": pipe["images_per_second"] / base,
        "speedup_vs_same_threads": pipe["images_per_second"] / rate["1 process, 2 threads"],
        "target": 0.85 * 2,
        "stage_seconds_per_step": pipe["stage_seconds_per_step"],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pipeline.json").write_text(json.dumps(result, indent=2))
    print(f"ResNet-56 on digits, K=2 time-balanced, batch {batch}, {result['steps']} steps")
    print("| setup | images/s | vs 1 worker |\n|---|---|---|")
    for label, value in rate.items():
        print(f"| {label} | {value:.1f} | {value / base:.2f}x |")
    seconds = ", ".join(
        f"stage {i + 1}: {1e3 * s:.0f} ms" for i, s in enumerate(result["stage_seconds_per_step"])
    )
    print(f"compute per step in the pipeline: {seconds}; target >= {result['target']:.2f}x one worker")


if __name__ == "__main__":
    main()
