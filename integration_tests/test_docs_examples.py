"""Every Python example in the READMEs and docs/*.md runs and prints what it says.

A fenced block opened with ```python runs as a script in a fresh interpreter (in an empty
folder); ```python norun marks a block that needs data or hardware this machine lacks.

A ``print(...)`` line that states its output ends in ``# -> OUTPUT``: the line it prints
must equal OUTPUT, where ``...`` stands for any text (as doctest's ELLIPSIS). A print line
with any other trailing comment is an error, so no comment claims an output unchecked.

Each example runs with only the distributions it needs importable, in an isolated
interpreter (``python -I -S`` with ``sys.path`` set to links to exactly those
distributions): a package README's examples with that package and its declared
requirements; other examples with the packages they import, plus those named on the fence
(```python needs=localkit-video-backbones). A warning on stderr fails the example.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.M | re.S)
PRINT = re.compile(r"^(\s*)(print\(.*\))\s*#(.*)$")
MARK = "@@example-output@@"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _local() -> dict[str, Path]:
    """Local distribution name -> its folder."""
    found = {}
    for pyproject in sorted(ROOT.glob("*/*/pyproject.toml")):
        found[_canonical(tomllib.loads(pyproject.read_text())["project"]["name"])] = pyproject.parent
    return found


LOCAL = _local()
IMPORTS = {
    child.name: dist
    for dist, folder in LOCAL.items()
    for child in (folder / "src").iterdir()
    if (child / "__init__.py").exists()
}


def _docs() -> list[tuple[Path, str | None]]:
    """Each documentation file, with the distribution its examples belong to (None: inferred)."""
    docs = [(ROOT / "README.md", None), *((d, None) for d in sorted((ROOT / "docs").glob("*.md")))]
    for dist, folder in LOCAL.items():
        if (folder / "README.md").exists():
            docs.append((folder / "README.md", dist))
    return docs


def examples():
    for doc, dist in _docs():
        for i, match in enumerate(FENCE.finditer(doc.read_text())):
            info = match.group(1).split()
            if "norun" in info:
                continue
            needs = [n for word in info if word.startswith("needs=") for n in word[6:].split(",")]
            roots = [dist] if dist else _distributions(_imported(match.group(2)))
            name = f"{doc.relative_to(ROOT)}-{i}"
            yield pytest.param(match.group(2), [*roots, *needs], id=name)


def _imported(code: str) -> set[str]:
    return set(re.findall(r"^\s*(?:from|import)\s+(\w+)", code, re.M))


def _distributions(modules: set[str]) -> list[str]:
    """The distributions that provide the imported top-level modules (the standard library's: none)."""
    third_party = metadata.packages_distributions()
    found = set()
    for module in modules:
        if module in IMPORTS:
            found.add(IMPORTS[module])
        elif module in third_party:
            found.update(_canonical(d) for d in third_party[module])
    return sorted(found)


def _expectations(code: str) -> tuple[str, list[str]]:
    """The code with every ``# ->`` print marked, and the outputs the comments state."""
    lines, expected = [], []
    for line in code.splitlines():
        match = PRINT.match(line)
        if match:
            indent, call, comment = match.groups()
            assert comment.startswith(" -> "), (
                f"a print's comment must state its output as '# -> ...': {line}"
            )
            expected.append(comment[4:].strip())
            line = f"{indent}print({MARK!r}, end=''); {call}"
        lines.append(line)
    return "\n".join(lines) + "\n", expected


def _closure(roots: list[str]) -> list[metadata.Distribution]:
    """The installed distributions ``roots`` (requirement strings) need, extras followed."""
    chosen: dict[str, set[str]] = {}
    todo = [Requirement(r) for r in roots]
    while todo:
        req = todo.pop()
        name = _canonical(req.name)
        extras = set(req.extras)
        if name in chosen and extras <= chosen[name]:
            continue
        chosen[name] = chosen.get(name, set()) | extras
        envs = [{"extra": e} for e in sorted(chosen[name])] or [{"extra": ""}]
        for line in metadata.distribution(name).requires or []:
            sub = Requirement(line)
            if sub.marker is None or any(Marker(str(sub.marker)).evaluate(env) for env in envs):
                todo.append(sub)
    return [metadata.distribution(name) for name in sorted(chosen)]


def _isolated_site(roots: list[str], folder: Path) -> Path:
    """A folder of links to exactly the files of the distributions ``roots`` need."""
    folder.mkdir()
    for dist in _closure(roots):
        name = _canonical(dist.metadata["Name"])
        tops = {file.parts[0] for file in dist.files or [] if file.parts[0] not in ("..", "__pycache__")}
        for top in tops:
            if top.startswith("__editable__") or top.endswith(".pth"):
                continue  # an editable install's hooks: its sources are linked below
            if not (folder / top).exists():  # a namespace folder (cuda/, nvidia/) several share
                (folder / top).symlink_to(Path(dist.locate_file(top)))
        if name in LOCAL:
            for child in (LOCAL[name] / "src").iterdir():
                # linked already where an egg-info left by a build in src/ listed the package
                if (child / "__init__.py").exists() and not (folder / child.name).exists():
                    (folder / child.name).symlink_to(child)
    return folder


@pytest.mark.parametrize(("code", "needs"), list(examples()))
def test_example_prints_what_it_says(code, needs, tmp_path):
    script, expected = _expectations(code)
    (tmp_path / "example.py").write_text(script)
    site = _isolated_site(needs, tmp_path / "site")
    runner = f"import sys, runpy; sys.path[:0] = [{str(site)!r}]; runpy.run_path('example.py', run_name='__main__')"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", runner],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**env, "OMP_NUM_THREADS": "1"},
    )
    report = f"--- example (with {needs}) ---\n{code}\n--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, report
    assert "Warning" not in proc.stderr, report
    printed = [line[len(MARK) :] for line in proc.stdout.splitlines() if line.startswith(MARK)]
    assert len(printed) == len(expected), report
    for got, want in zip(printed, expected):
        pattern = ".*".join(re.escape(part) for part in want.split("..."))
        assert re.fullmatch(pattern, got), f"printed {got!r}, the comment says {want!r}\n{report}"


def test_closure_of_a_package_is_its_declared_requirements_only(tmp_path):
    site = _isolated_site(["localkit-infoloss"], tmp_path / "site")
    linked = {p.name for p in site.iterdir()}
    assert {"infoloss", "localkit_registry", "torch"} <= linked
    assert not {"splitnet", "scoredist", "vidio", "timm", "sklearn"} & linked
    assert sysconfig.get_paths()["purelib"] not in [str(p.resolve()) for p in site.iterdir()]
