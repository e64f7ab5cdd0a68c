"""Every Python example in README.md and docs/*.md runs, so the docs stay true.

A fenced block opened with ```python runs as a script in a fresh interpreter (in an empty
folder); ```python norun marks a block that needs data or hardware this machine lacks.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.M | re.S)


def examples():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for i, match in enumerate(FENCE.finditer(doc.read_text())):
            if "norun" not in match.group(1):
                yield pytest.param(match.group(2), id=f"{doc.name}-{i}")


@pytest.mark.parametrize("code", list(examples()))
def test_example_runs(code, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(code)
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, f"--- example ---\n{code}\n--- stderr ---\n{proc.stderr[-3000:]}"
