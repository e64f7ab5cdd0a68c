"""The comparison of docs/results.md: end-to-end vs greedy SL vs InfoPro on real digits.

CIFAR ResNet-32 on scikit-learn's handwritten digits (32x32), 3 seeds, K = 2, 4, 8 with
memory-balanced cuts: end-to-end, greedy supervised learning (splitnet's ``greedy``),
InfoPro with the contrastive task term and InfoPro with the cross-entropy ("softmax") task
term (infoloss's ``infopro``, default lambdas). Every run is a ``python -m splitnet train``
command, printed before it runs, so any row can be reproduced alone; finished runs are
skipped, so the script resumes where it stopped.

    python packages/infoloss/benchmarks/reproduce_digits_results.py --out runs/results [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

METHODS = {
    "e2e": [],
    "greedy": ["--objective", "greedy"],
    "infopro-contrast": ["--objective", "infopro"],
    "infopro-softmax": ["--objective", "infopro", "--objective-opt", "task_loss=cross_entropy"],
}
TRAIN = [
    "--model",
    "cifar_resnet32",
    "--dataset",
    "digits",
    "--epochs",
    "20",
    "--batch-size",
    "64",
    "--lr",
    "0.05",
    "--weight-decay",
    "5e-4",
    "--balance",
    "memory",
    "--quiet",
]


def commands(out: Path, seeds: list[int], ks: list[int]) -> list[tuple[Path, list[str]]]:
    runs = []
    for seed in seeds:
        for method, flags in METHODS.items():
            for k in [1] if method == "e2e" else ks:
                folder = out / f"{method}-k{k}-seed{seed}"
                runs.append(
                    (
                        folder,
                        [
                            sys.executable,
                            "-m",
                            "splitnet",
                            "train",
                            *TRAIN,
                            "--k",
                            str(k),
                            *flags,
                            "--seed",
                            str(seed),
                            "--threads",
                            "1",
                            "--out",
                            str(folder),
                        ],
                    )
                )
    return runs


def run(folder: Path, cmd: list[str]) -> bool:
    """Train one run (continuing it if interrupted); False when it failed."""
    if (folder / "summary.json").exists():
        return True
    cmd = [*cmd, "--resume"]  # continues an interrupted run, starts a new one otherwise
    print(" ".join(cmd[1:]), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode:
        print(f"FAILED {folder}:\n{proc.stderr[-2000:]}", flush=True)
    return proc.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/results")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (one thread each)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ks", type=int, nargs="+", default=[2, 4, 8])
    args = parser.parse_args()
    runs = commands(Path(args.out), args.seeds, args.ks)
    with ThreadPoolExecutor(args.jobs) as pool:
        ok = list(pool.map(lambda r: run(*r), runs))
    finished = [str(folder) for folder, _ in runs if (folder / "summary.json").exists()]
    subprocess.run([sys.executable, "-m", "splitnet", "summarize", *finished], check=True)
    failed = [str(folder) for (folder, _), good in zip(runs, ok) if not good]
    if failed:
        raise SystemExit(f"{len(failed)} run(s) failed (rerun to continue them): {', '.join(failed)}")


if __name__ == "__main__":
    main()
