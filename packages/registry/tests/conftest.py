"""Fakes for entry-point tests: installable-looking distributions written to a temp dir."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest


@pytest.fixture
def fake_dist(tmp_path, monkeypatch):
    """``fake_dist(name, entry_points={group: {name: value}}, modules={mod: source})``.

    Writes ``<name>-<version>.dist-info`` with METADATA and entry_points.txt plus the modules
    into a directory put first on sys.path, as an installed distribution would look.
    """
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))

    def make(name: str, entry_points: dict, modules: dict | None = None, version: str = "1.0") -> Path:
        info = root / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        lines = []
        for group, entries in entry_points.items():
            lines.append(f"[{group}]")
            lines += [f"{n} = {v}" for n, v in entries.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for module, source in (modules or {}).items():
            (root / f"{module}.py").write_text(textwrap.dedent(source))
        return info

    return make
