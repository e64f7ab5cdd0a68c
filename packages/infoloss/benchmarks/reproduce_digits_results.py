"""The digits experiments of docs/results.md: end-to-end vs greedy SL vs InfoPro, and the probe.

CIFAR ResNet-32 on scikit-learn's handwritten digits (32x32) with the paper's cuts
(``--balance infopro``) for every local method. Two regimes:

* ``full``: all 1,297 training images, 20 epochs, batch 64; K = 2, 4, 8; end-to-end,
  greedy SL (splitnet's ``greedy``), InfoPro with the contrastive task term and with the
  cross-entropy ("softmax") one (infoloss's ``infopro``, default lambdas); 5 seeds.
* ``small``: 10 training images per digit (``--dataset-opt per_class=10``), 30 epochs,
  batch 32; K = 4, 8; end-to-end, greedy SL, InfoPro (contrast); 3 seeds. The test split
  is the same 500 images.

After a regime's runs, ``python -m splitnet probe`` measures the runs of the probed K and
the end-to-end ones, each run apart (``<out>/<regime>/probe-runs/<run>``, in parallel), and
draws them together into ``<out>/<regime>/probe-k<K>/probe.{json,png}``. By default the
``small`` regime's K=4 and K=8 runs are probed (the figures of docs/results.md); ``--probe-ks
4 8`` probes the ``full`` regime's too (35 more probes), ``--probe-ks`` alone none.

Every run is a ``python -m splitnet train`` command, printed before it runs, so any row can
be reproduced alone; finished runs and probes are skipped, so the script resumes where it
stopped. The wall time is printed at the end. On a 2-core machine with ``--jobs 2`` (measured,
docs/results.md): the ``small`` regime with its probes about 20 minutes, the ``full`` regime
about 3 hours (50 runs of 5 to 10 minutes each).

    python packages/infoloss/benchmarks/reproduce_digits_results.py --out runs/results [--jobs 2]
    python packages/infoloss/benchmarks/reproduce_digits_results.py --regime small --jobs 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

METHODS = {
    "e2e": [],
    "greedy": ["--objective", "greedy"],
    "infopro-contrast": ["--objective", "infopro"],
    "infopro-softmax": ["--objective", "infopro", "--objective-opt", "task_loss=cross_entropy"],
}
COMMON = ["--model", "cifar_resnet32", "--dataset", "digits", "--lr", "0.05", "--weight-decay", "5e-4"]
REGIMES = {
    "full": {
        "train": ["--epochs", "20", "--batch-size", "64"],
        "seeds": [0, 1, 2, 3, 4],
        "ks": [2, 4, 8],
        "probe_ks": [],
        "methods": ["e2e", "greedy", "infopro-contrast", "infopro-softmax"],
        "probe": [
            "--train-samples",
            "500",
            "--batch-size",
            "50",
            "--linear-epochs",
            "20",
            "--decoder-epochs",
            "15",
            "--decoder-lr",
            "0.01",
        ],
    },
    "small": {
        "train": ["--epochs", "30", "--batch-size", "32", "--dataset-opt", "per_class=10"],
        "seeds": [0, 1, 2],
        "ks": [4, 8],
        "probe_ks": [4, 8],
        "methods": ["e2e", "greedy", "infopro-contrast"],
        "probe": [
            "--batch-size",
            "25",
            "--linear-epochs",
            "20",
            "--decoder-epochs",
            "15",
            "--decoder-lr",
            "0.01",
        ],
    },
}


def commands(out: Path, regime: str, seeds: list[int], ks: list[int]) -> list[tuple[Path, list[str]]]:
    spec = REGIMES[regime]
    runs = []
    for seed in seeds:
        for method in spec["methods"]:
            for k in [1] if method == "e2e" else ks:
                folder = out / regime / f"{method}-k{k}-seed{seed}"
                cuts = [] if k == 1 else ["--balance", "infopro"]
                cmd = [*COMMON, *spec["train"], "--k", str(k), *cuts, *METHODS[method], "--seed", str(seed)]
                runs.append((folder, [*cmd, "--threads", "1", "--quiet", "--out", str(folder)]))
    return runs


def splitnet(*args: str) -> list[str]:
    return [sys.executable, "-m", "splitnet", *args]


def run(folder: Path, args: list[str]) -> bool:
    """Train one run (continuing it if interrupted); False when it failed."""
    if (folder / "summary.json").exists():
        return True
    cmd = splitnet("train", *args, "--resume")  # continues an interrupted run, starts a new one otherwise
    print(" ".join(cmd[1:]), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode:
        print(f"FAILED {folder}:\n{proc.stderr[-2000:]}", flush=True)
    return proc.returncode == 0


def probe_run(out: Path, regime: str, folder: Path) -> Path:
    """Probe one run (its own probe.json, no figure); the figure is drawn from these files."""
    target = out / regime / "probe-runs" / folder.name
    if not (target / "probe.json").exists():
        cmd = splitnet(
            "probe",
            str(folder),
            *REGIMES[regime]["probe"],
            "--threads",
            "1",
            "--quiet",
            "--no-plot",
            "--out",
            str(target),
        )
        print(" ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL)
    return target / "probe.json"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/results")
    parser.add_argument("--regime", choices=sorted(REGIMES), nargs="+", default=["full", "small"])
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (one thread each)")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: the regime's (full 0-4, small 0-2)")
    parser.add_argument("--ks", type=int, nargs="+", help="default: the regime's (full 2 4 8, small 4 8)")
    parser.add_argument(
        "--probe-ks",
        type=int,
        nargs="*",
        help="K of the probed runs (default: the regime's: full none, small 4 8)",
    )
    args = parser.parse_args()
    start = time.perf_counter()
    out, failed = Path(args.out), []
    for regime in args.regime:
        spec = REGIMES[regime]
        runs = commands(out, regime, args.seeds or spec["seeds"], args.ks or spec["ks"])
        with ThreadPoolExecutor(args.jobs) as pool:
            ok = list(pool.map(lambda r: run(*r), runs))
        failed += [str(folder) for (folder, _), good in zip(runs, ok) if not good]
        finished = [folder for folder, _ in runs if (folder / "summary.json").exists()]
        subprocess.run(splitnet("summarize", *map(str, finished)), check=True)
        for k in spec["probe_ks"] if args.probe_ks is None else args.probe_ks:
            probed = [f for f in finished if f.name.startswith("e2e-") or f"-k{k}-" in f.name]
            if not any(f"-k{k}-" in f.name for f in probed):
                continue
            with ThreadPoolExecutor(args.jobs) as pool:
                measured = list(pool.map(lambda f, regime=regime: probe_run(out, regime, f), probed))
            figure = splitnet("probe", *map(str, measured), "--out", str(out / regime / f"probe-k{k}"))
            print(" ".join(figure[1:]), flush=True)
            subprocess.run(figure, check=True, stdout=subprocess.DEVNULL)
    print(f"wall time {(time.perf_counter() - start) / 60:.1f} minutes", flush=True)
    if failed:
        raise SystemExit(f"{len(failed)} run(s) failed (rerun to continue them): {', '.join(failed)}")


if __name__ == "__main__":
    main()
