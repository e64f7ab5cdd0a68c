"""Every benchmark script runs end to end in its --quick mode and writes its JSON report.

Benchmarks are not tests: nothing here asserts a timing. These only keep `nox -s bench`
from rotting between runs (a failure would otherwise surface 20 minutes into a bench run).
The scripts are found the way `nox -s bench` finds them, so a new one cannot go unchecked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(ROOT.glob("packages/*/benchmarks/bench_*.py"))


def _memory(report):
    memory = [r for r in report["rows"] if r["balance"] == "memory"]
    assert memory and all(0 < r["ledger_ratio"] < 1 for r in memory)
    assert report["granularity"] == "block" and {r["objective"] for r in memory} == {"greedy", "infopro"}


def _step_time(report):
    assert report["ratio_to_e2e"]["end-to-end"] == 1.0 and len(report["ratio_to_e2e"]) == 4


def _pipeline(report):
    assert len(report["images_per_second"]) == 3 and len(report["stage_seconds_per_step"]) == 2
    assert all(rate > 0 for rate in report["images_per_second"].values())


def _decode(report):
    assert report["quick"] is True and set(report["ratios"]) == {
        f"{video}_{mode}" for video in ("original", "prepared") for mode in ("1_process", "dataloader")
    }
    default = [r for r in report["rows"] if r["method"] == "vidio, pyav backend (the default)"]
    assert len(default) == 2 and all(
        r["frames_decoded_per_clip"] > 0 and r["frames_from_keyframes_per_clip"] >= 16 for r in default
    )
    assert report["disk"]["prepared_bytes"] < report["disk"]["jpeg_frames"]["prepared_size"]["bytes"]


def _stage_parallel(report):
    assert report["single"]["returncode"] == 0 and report["stage_parallel"]["returncode"] == 0
    assert len(report["stage_parallel"]["ranks"]) == 2 and len(report["per_rank_ratio"]) == 2
    assert all(ratio > 0 for ratio in report["per_rank_ratio"]) and report["sum_ratio"] > 0
    # the capped runs are reported whatever their outcome, with the cap they ran under
    assert report["cap_bytes"] > 0 and {"returncode", "ranks"} <= set(report["capped_stage_parallel"])


# script -> (the report it writes, what must hold in it)
REPORTS = {
    "bench_memory.py": ("memory.json", _memory),
    "bench_step_time.py": ("step_time.json", _step_time),
    "bench_pipeline.py": ("pipeline.json", _pipeline),
    "bench_stage_parallel.py": ("stage_parallel.json", _stage_parallel),
    "bench_decode.py": ("vidio_decode.json", _decode),
}


def test_every_bench_script_has_a_report_check():
    assert {s.name for s in SCRIPTS} == set(REPORTS)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.name)
def test_benchmark_script_runs_quick_and_writes_its_report(script, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(script), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    name, check = REPORTS[script.name]
    check(json.loads((tmp_path / name).read_text()))
