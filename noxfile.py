"""Every workflow of the localkit monorepo is a nox session.

``nox`` with no arguments runs ``lint``, ``tests`` and ``integration``; ``demo``, ``bench``,
``gpu`` and ``docs`` run when named (``nox -s demo``). ``nox -l`` lists them all.

Environments. The heavy third-party dependencies declared by all packages and plugins
(torch, torchvision, timm, decord, ...) are installed once into a shared *base*
environment, ``.nox/.cache/base-<hash>`` (about 6 GB; rebuilt only when a declared
requirement changes). Each session's own virtualenv is small: it receives symbolic links
to exactly the base distributions in the closure of the requirements it declares, and a
real install of the local distributions it needs. A whole default run therefore keeps one
copy of torch on disk, and each package's unit tests prove that the package works with
only itself and its declared dependencies importable.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import nox
from packaging.markers import Marker
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent
nox.options.sessions = ["lint", "tests", "integration"]
nox.options.error_on_missing_interpreters = True


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _read_distributions(folder: str) -> dict[str, Path]:
    found = {}
    for pyproject in sorted((ROOT / folder).glob("*/pyproject.toml")):
        name = tomllib.loads(pyproject.read_text())["project"]["name"]
        found[_canonical(name)] = pyproject.parent
    return found


PACKAGES = _read_distributions("packages")
PLUGINS = _read_distributions("plugins")
LOCAL = {**PACKAGES, **PLUGINS}


def _project(dist: str) -> dict:
    return tomllib.loads((LOCAL[dist] / "pyproject.toml").read_text())["project"]


def _declared(dist: str, extras: tuple[str, ...] = ()) -> list[Requirement]:
    """Requirements of a local distribution (with the given extras), from its pyproject.toml."""
    project = _project(dist)
    reqs = list(project.get("dependencies", []))
    for extra in extras:
        reqs += project.get("optional-dependencies", {}).get(extra, [])
    return [Requirement(r) for r in reqs]


def _third_party_requirements() -> list[str]:
    """Union of every third-party requirement that any local distribution declares."""
    reqs = set()
    for dist in LOCAL:
        extras = tuple(_project(dist).get("optional-dependencies", {}))
        reqs |= {str(r) for r in _declared(dist, extras) if _canonical(r.name) not in LOCAL}
    return sorted(reqs)


def _purelib(python: Path | str, session: nox.Session) -> Path:
    out = session.run(
        str(python),
        "-c",
        "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        silent=True,
        external=str(python) != "python",
    )
    return Path(out.strip().splitlines()[-1])


def _base(session: nox.Session) -> Path:
    """Create (once) the shared base environment; return its site-packages folder."""
    reqs = _third_party_requirements()
    key = hashlib.sha256("\n".join([sys.version, *reqs]).encode()).hexdigest()[:12]
    cache = Path(session.cache_dir)
    root = cache / f"base-{key}"
    python = root / "bin" / "python"
    if not (root / ".ready").exists():
        for stale in cache.glob("base-*"):
            session.log(f"removing outdated base environment {stale.name}")
            shutil.rmtree(stale)
        session.log(f"creating the shared base environment {root.name} ({len(reqs)} requirements)")
        session.run(sys.executable, "-m", "venv", str(root), external=True)
        session.run(str(python), "-m", "pip", "install", "--quiet", *reqs, external=True)
        (root / ".ready").write_text("\n".join(reqs) + "\n")
    return _purelib(python, session)


def _closure(base: Path, roots: list[Requirement]) -> dict[str, metadata.Distribution]:
    """The base distributions needed by ``roots``, following extras and environment markers."""
    available: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions(path=[str(base)]):
        available.setdefault(_canonical(dist.metadata["Name"]), dist)
    chosen: dict[str, set[str]] = {}
    todo = list(roots)
    while todo:
        req = todo.pop()
        name = _canonical(req.name)
        if name in LOCAL:
            todo += _declared(name, tuple(req.extras))
            continue
        if name not in available:
            raise RuntimeError(f"{req} is required but missing from the base environment {base}")
        extras = set(req.extras)
        if name in chosen and extras <= chosen[name]:
            continue
        chosen[name] = chosen.get(name, set()) | extras
        for line in available[name].requires or []:
            sub = Requirement(line)
            envs = [{"extra": e} for e in sorted(chosen[name])] or [{"extra": ""}]
            if sub.marker is None or any(Marker(str(sub.marker)).evaluate(env) for env in envs):
                todo.append(sub)
    return {name: available[name] for name in chosen}


def _layer(session: nox.Session, roots: list[Requirement]) -> None:
    """Link into the session's venv exactly the base distributions ``roots`` need."""
    base = _base(session)
    site = _purelib("python", session)
    for dest in site.iterdir():
        if dest.is_symlink() and not dest.exists():
            dest.unlink()
    linked = 0
    for dist in _closure(base, roots).values():
        for file in dist.files or []:
            top = file.parts[0]
            if top in ("..", "__pycache__"):
                continue
            dest = site / top
            if not dest.exists() and not dest.is_symlink():
                dest.symlink_to(base / top)
                linked += 1
    session.log(f"linked {linked} entries from the base environment")


def _local_closure(roots: list[Requirement]) -> list[str]:
    """The local distributions ``roots`` name, with the local ones they require, transitively.

    A package's unit tests need its local dependencies (every package requires
    localkit-registry) installed beside it; they come from their folders in this tree.
    """
    found: list[str] = []
    todo = list(roots)
    while todo:
        req = todo.pop()
        name = _canonical(req.name)
        if name not in LOCAL:
            continue
        if name not in found:
            found.append(name)
        todo += [r for r in _declared(name, tuple(req.extras)) if _canonical(r.name) not in found]
    return sorted(found)


def _install_local(session: nox.Session, dists: list[str], extras: tuple[str, ...] = ()) -> None:
    """Layer the dependencies of ``dists``, install them and the local distributions they
    require (not editable), and prove consistency."""
    roots = [Requirement(f"{d}[{','.join(extras)}]" if extras else d) for d in dists]
    _layer(session, roots)
    session.install("--no-deps", "--quiet", *(str(LOCAL[d]) for d in _local_closure(roots)))
    _pip_check(session)


def _pip_check(session: nox.Session) -> None:
    """``pip check``: every declared requirement is installed at an acceptable version.

    decord 0.6.0's only wheel is tagged for CPython 3.6 although it runs on 3.11, so pip
    also reports it "not supported on this platform"; that line alone is not a failure.
    """
    output = session.run("python", "-m", "pip", "check", silent=True, success_codes=[0, 1]) or ""
    problems = [
        line
        for line in output.splitlines()
        if line.strip()
        and not re.fullmatch(r"\S+ \S+ is not supported on this platform\.?", line.strip())
        and "No broken requirements found" not in line
    ]
    if problems:
        session.error("pip check found broken requirements:\n" + "\n".join(problems))
    session.log("pip check: every declared requirement is satisfied")


def _everything(session: nox.Session) -> None:
    """Install every package and plugin with all their extras."""
    extras = sorted({e for d in LOCAL for e in _project(d).get("optional-dependencies", {})})
    _install_local(session, list(LOCAL), extras=tuple(extras))


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff (lint and format) over the tree."""
    session.install("ruff==0.17.6")  # pinned: formatting must not change under us between runs
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
@nox.parametrize("package", sorted(PACKAGES))
def tests(session: nox.Session, package: str) -> None:
    """Unit tests of one package, with only it and its declared dependencies importable."""
    _install_local(session, [package], extras=("test",))
    session.run("python", "-m", "pytest", str(PACKAGES[package] / "tests"), *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """Every package and plugin installed together: plugin tests and the entry-point contracts."""
    _everything(session)
    test_dirs = [str(PLUGINS[p] / "tests") for p in sorted(PLUGINS) if (PLUGINS[p] / "tests").is_dir()]
    session.run("python", "-m", "pytest", "integration_tests", *test_dirs, *session.posargs)


@nox.session(default=False)
def demo(session: nox.Session) -> None:
    """The main job: local vs end-to-end training and USDL/MUSDL on embedded data (runs/demo/)."""
    _everything(session)
    out = session.posargs[0] if session.posargs else "runs/demo"
    session.run("python", "-m", "splitnet", "demo", "--out", out)
    session.run("python", "-m", "scoredist", "demo", "--out", out)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmarks of every package (memory, time, decoding), written to runs/bench/."""
    _everything(session)
    out = ROOT / "runs" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    for package in sorted(LOCAL):
        for script in sorted((LOCAL[package] / "benchmarks").glob("bench_*.py")):
            session.run("python", str(script), "--out", str(out), *session.posargs)


@nox.session(default=False)
def gpu(session: nox.Session) -> None:
    """The prepared GPU check (at most 8 minutes on one GPU; refuses without CUDA), to runs/gpu/.

    benchmarks/gpu_check.py writes runs/gpu/*.json and runs/gpu/gpu_check.md, then the tests
    marked ``cuda`` run. ``nox -s gpu -- --device cpu --quick`` is a dry run on the CPU.
    """
    _everything(session)
    session.run("python", str(ROOT / "benchmarks" / "gpu_check.py"), "--out", "runs/gpu", *session.posargs)
    session.run(
        "python",
        "-m",
        "pytest",
        "-m",
        "cuda",
        "-q",
        str(PACKAGES["localkit-splitnet"] / "tests"),
        str(PACKAGES["localkit-scoredist"] / "tests"),
    )


@nox.session(default=False)
def docs(session: nox.Session) -> None:
    """Run every Python example in README.md and docs/*.md, so the docs stay true."""
    _everything(session)
    session.run("python", "-m", "pytest", "integration_tests/test_docs_examples.py", *session.posargs)
