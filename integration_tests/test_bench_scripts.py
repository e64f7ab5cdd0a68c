"""Every benchmark script runs end to end in its --quick mode and writes its JSON report.

Benchmarks are not tests: nothing here asserts a timing. These only keep `nox -s bench`
from rotting between runs (a failure would otherwise surface 20 minutes into a bench run).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPTS = {
    "packages/splitnet/benchmarks/bench_memory.py": "memory.json",
    "packages/splitnet/benchmarks/bench_step_time.py": "step_time.json",
    "packages/splitnet/benchmarks/bench_pipeline.py": "pipeline.json",
    "packages/vidio/benchmarks/bench_decode.py": "vidio_decode.json",
}


@pytest.mark.parametrize("script", list(SCRIPTS), ids=lambda s: s.rsplit("/", 1)[1])
def test_benchmark_script_runs_quick_and_writes_its_report(script, root, tmp_path):
    proc = subprocess.run(
        [sys.executable, str(root / script), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / SCRIPTS[script]).read_text())
    if script.endswith("bench_memory.py"):
        memory = [r for r in report["rows"] if r["balance"] == "memory"]
        assert memory and all(0 < r["ledger_ratio"] < 1 for r in memory)
    elif script.endswith("bench_step_time.py"):
        assert report["ratio_to_e2e"]["end-to-end"] == 1.0 and len(report["ratio_to_e2e"]) == 4
    elif script.endswith("bench_pipeline.py"):
        assert len(report["images_per_second"]) == 3 and len(report["stage_seconds_per_step"]) == 2
        assert all(rate > 0 for rate in report["images_per_second"].values())
    else:
        assert report["quick"] is True and report["ratios"]["single_process"]
