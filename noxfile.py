"""Every workflow of the localkit monorepo is a nox session.

``nox`` with no arguments runs ``lint``, ``tests`` and ``integration``; ``demo``, ``bench``,
``docs``, ``build`` and ``gpu`` run when named (``nox -s build``). ``nox -l`` lists them all.

Environments. Every session gets its own virtualenv made by uv (nox's ``uv`` backend) and
holding exactly what its requirements resolve to: a package's ``tests`` session holds that
package, its declared dependencies and nothing else, so they prove that the package works
alone. uv unpacks each wheel once into its cache and hard-links the files into every
virtualenv, so a whole run keeps one copy of torch on disk. The cache lives in
``.nox/.cache/uv`` (the same file system as the virtualenvs, which hard links need) unless
``UV_CACHE_DIR`` names another.

Package sources. uv does not read pip's configuration, so the index URLs, find-links,
trusted hosts and constraint files that ``pip config list`` reports (from pip's files and
``PIP_*`` variables) are passed to uv as options; with none configured uv uses PyPI. Local
distributions are always installed from their folders, never looked up by name.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import nox
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent
nox.needs_version = ">=2024.10.9"
nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "tests", "integration"]
nox.options.error_on_missing_interpreters = True

# pip option -> the uv option that means the same; constraints are handled apart, because
# `uv build` spells them --build-constraints.
_PIP_SOURCES = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "trusted-host": "--allow-insecure-host",
}


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


def _extras(dist: str) -> list[str]:
    return sorted(_project(dist).get("optional-dependencies", {}))


def _declared(dist: str, extras: tuple[str, ...] = ()) -> list[Requirement]:
    """Requirements of a local distribution (with the given extras), from its pyproject.toml."""
    project = _project(dist)
    reqs = list(project.get("dependencies", []))
    for extra in extras:
        reqs += project.get("optional-dependencies", {}).get(extra, [])
    return [Requirement(r) for r in reqs]


def _local_closure(wanted: dict[str, tuple[str, ...]]) -> dict[str, set[str]]:
    """The local distributions that ``wanted`` (name -> extras) needs, each with the extras it needs."""
    chosen: dict[str, set[str]] = {}
    todo = list(wanted.items())
    while todo:
        name, extras = todo.pop()
        if name in chosen and set(extras) <= chosen[name]:
            continue
        chosen[name] = chosen.get(name, set()) | set(extras)
        for req in _declared(name, tuple(extras)):
            local = _canonical(req.name)
            if local in LOCAL and (req.marker is None or req.marker.evaluate({"extra": ""})):
                todo.append((local, tuple(req.extras)))
    return chosen


@functools.cache
def _pip_config() -> dict[str, list[str]]:
    """pip's effective install settings: files and ``PIP_*`` variables, as ``pip config list`` shows them.

    A command's own section overrides ``global``, and the environment overrides both, as in pip.
    """
    try:
        listing = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    rank = {"global": 0, "install": 1, ":env:": 2}
    found: dict[str, tuple[int, list[str]]] = {}
    for line in listing.splitlines():
        match = re.fullmatch(r"(global|install|:env:)\.([\w-]+)=(.*)", line.strip())
        if not match:
            continue
        scope, key, value = match.groups()
        if key not in _PIP_SOURCES and key not in ("no-index", "constraint"):
            continue
        if key not in found or rank[scope] >= found[key][0]:
            found[key] = (rank[scope], ast.literal_eval(value).split())
    return {key: values for key, (_, values) in found.items()}


def _uv_sources(constraint_option: str = "--constraints") -> list[str]:
    """uv options that take packages from where pip is configured to take them.

    pip looks for every package in all its indexes and links and takes the best version;
    uv's equivalent is ``--index-strategy unsafe-best-match`` (its default stops at the first
    index that knows the name, which would refuse e.g. a newer release on PyPI).
    """
    config = _pip_config()
    options = []
    for key, option in _PIP_SOURCES.items():
        for value in config.get(key, []):
            options += [option, value]
    if config.get("no-index", ["false"])[0].lower() in ("1", "true", "yes", "on"):
        options.append("--no-index")
    if config.get("extra-index-url") or config.get("find-links"):
        options += ["--index-strategy", "unsafe-best-match"]
    for value in config.get("constraint", []):
        options += [constraint_option, value]
    return options


def _uv_env(session: nox.Session) -> dict[str, str]:
    """uv's cache beside the virtualenvs (hard links cannot cross file systems), unless the user chose one."""
    return {"UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR") or str(Path(session.cache_dir) / "uv")}


def _uv_install(session: nox.Session, *args: str) -> None:
    session.install(*_uv_sources(), *args, env=_uv_env(session))


def _uv_pip_check(session: nox.Session, *args: str) -> None:
    """``uv pip check``: every declared requirement is installed, at an acceptable version, for this platform.

    decord 0.6.0's only Linux wheel is named ``py3-none`` but its WHEEL file says ``cp36``,
    so uv reports it "built for a different platform" although it runs on CPython 3.11; that
    report alone is not a failure.
    """
    output = session.run("uv", "pip", "check", *args, silent=True, success_codes=[0, 1]) or ""
    found = re.search(r"Found (\d+) incompatibilit", output)
    excused = output.count("The package `decord` was built for a different platform")
    if found and int(found.group(1)) > excused:
        session.error("uv pip check found broken requirements:\n" + output)
    session.log("uv pip check: every declared requirement is satisfied")


def _install_local(session: nox.Session, wanted: dict[str, tuple[str, ...]]) -> None:
    """Install local distributions (name -> extras) from their folders, with their declared dependencies.

    Local requirements resolve to the folders (a local name may belong to someone else on
    the package index); they are rebuilt every time, so a reused virtualenv (``nox -r``)
    gets the current code.
    """
    closure = _local_closure(wanted)
    specs, reinstall = [], []
    for name, extras in sorted(closure.items()):
        wanted_extras = f"[{','.join(sorted(extras))}]" if extras else ""
        specs.append(f"{name}{wanted_extras} @ {LOCAL[name].as_uri()}")
        reinstall += ["--reinstall-package", name]
    _uv_install(session, *reinstall, *specs)
    _uv_pip_check(session)


def _everything(session: nox.Session) -> None:
    """Install every package and plugin with all their extras."""
    _install_local(session, {d: tuple(_extras(d)) for d in LOCAL})


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff (lint and format) over the tree."""
    _uv_install(session, "ruff==0.17.6")  # pinned: formatting must not change under us between runs
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
@nox.parametrize("package", sorted(PACKAGES))
def tests(session: nox.Session, package: str) -> None:
    """Unit tests of one package, with only it and its declared dependencies installed."""
    _install_local(session, {package: ("test",)})
    session.run("python", "-m", "pytest", str(PACKAGES[package] / "tests"), *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """Every package and plugin installed together: plugin tests and the entry-point contracts."""
    _everything(session)
    _uv_install(session, "pip")  # test_uninstall.py removes and reinstalls a plugin with pip, as a user would
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


def _import_names(dist: str) -> list[str]:
    """Top-level import packages of a local distribution (its ``src/<name>/__init__.py`` folders)."""
    return sorted(p.parent.name for p in (LOCAL[dist] / "src").glob("*/__init__.py"))


def _changelog_versions() -> dict[str, set[str]]:
    """``CHANGELOG.md``: distribution (``## localkit-splitnet (...)``) -> the versions it has an entry for (``### 0.1.0``)."""
    versions: dict[str, set[str]] = {}
    dist = None
    for line in (ROOT / "CHANGELOG.md").read_text().splitlines():
        if line.startswith("## "):
            dist = _canonical(line[3:].split()[0])
            versions[dist] = set()
        elif line.startswith("### ") and dist is not None:
            versions[dist].add(line[4:].split()[0])
    return versions


def _check_artifacts(session: nox.Session, dist: str, artifacts: list[Path]) -> str:
    """Both artifacts carry the top-level LICENSE and the version has a CHANGELOG entry; return the version."""
    licence = (ROOT / "LICENSE").read_bytes()
    wheel = next(a for a in artifacts if a.suffix == ".whl")
    sdist = next(a for a in artifacts if a.name.endswith(".tar.gz"))
    with zipfile.ZipFile(wheel) as archive:
        carried = [
            archive.read(n) for n in archive.namelist() if re.search(r"\.dist-info/licenses/LICENSE$", n)
        ]
        version = next(
            line.split(":", 1)[1].strip()
            for name in archive.namelist()
            if name.endswith(".dist-info/METADATA")
            for line in archive.read(name).decode().splitlines()
            if line.startswith("Version:")
        )
    with tarfile.open(sdist) as archive:
        carried += [
            archive.extractfile(m).read()
            for m in archive.getmembers()
            if re.fullmatch(r"[^/]+/LICENSE", m.name)
        ]
    if len(carried) != 2 or any(text != licence for text in carried):
        session.error(f"{dist}: the wheel and the sdist must each carry a LICENSE equal to the top-level one")
    if version not in _changelog_versions().get(dist, set()):
        session.error(f"{dist} {version}: CHANGELOG.md has no '### {version}' under '## {dist}'")
    return version


@nox.session(default=False)
def build(session: nox.Session) -> None:
    """Release check: build, check and install an sdist and a wheel of every package and plugin.

    Into dist/: each sdist, and a wheel built from it (so a file missing from the sdist
    fails here); ``twine check --strict``; the LICENSE in both and a CHANGELOG entry for the
    version; then each wheel alone, with its dependencies, in a fresh virtualenv:
    ``uv pip check``, import, and ``__version__`` equal to the wheel's metadata.
    """
    _uv_install(session, "twine>=6.1")
    out = ROOT / "dist"
    shutil.rmtree(out, ignore_errors=True)
    built: dict[str, list[Path]] = {}
    for dist, folder in sorted(LOCAL.items()):
        target = out / dist
        session.run(
            "uv",
            "build",
            *_uv_sources("--build-constraints"),
            "--out-dir",
            str(target),
            str(folder),
            env=_uv_env(session),
        )
        built[dist] = sorted(p for p in target.iterdir() if p.suffix == ".whl" or p.name.endswith(".tar.gz"))
    session.run("twine", "check", "--strict", *(str(p) for paths in built.values() for p in paths))

    versions = {dist: _check_artifacts(session, dist, built[dist]) for dist in sorted(built)}
    for dist in sorted(built):
        venv = Path(session.create_tmp()) / f"venv-{dist}"
        shutil.rmtree(venv, ignore_errors=True)
        python = venv / "bin" / "python"
        session.run("uv", "venv", "--quiet", "--python", sys.executable, str(venv))
        wheels = [
            str(next(p for p in built[d] if p.suffix == ".whl")) for d in sorted(_local_closure({dist: ()}))
        ]
        session.run(
            "uv", "pip", "install", "--python", str(python), *_uv_sources(), *wheels, env=_uv_env(session)
        )
        _uv_pip_check(session, "--python", str(python))
        for module in _import_names(dist):
            code = f"import {module}; print(getattr({module}, '__version__', None))"
            found = session.run(str(python), "-c", code, silent=True, external=True).strip().splitlines()[-1]
            if found != versions[dist]:
                session.error(f"{dist}: {module}.__version__ is {found}, its metadata says {versions[dist]}")
        shutil.rmtree(venv)
    session.log(f"built, checked and installed {len(built)} distributions into {out}")


# --- nox -s platforms: which packages `pip install localkit-vidio` takes on each platform ---

# pip picks wheels for --platform/--python-version but evaluates environment markers
# (``decord; sys_platform == 'linux' and ...``) against the interpreter running it, a
# limitation its maintainers keep (pypa/pip#10050). The resolver therefore runs under this
# wrapper, which hands pip's vendored ``packaging`` the target's marker environment.
_PIP_FOR_TARGET = """
import json, sys
from pip._vendor.packaging import markers
target = markers.default_environment()
target.update(json.loads(sys.argv[1]))
markers.default_environment = lambda: dict(target)
from pip._internal.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def _manylinux(arch: str) -> list[str]:
    # pip takes manylinux_2_Y tags literally: list every glibc from 2.35 (Ubuntu 22.04, GH200 nodes) down
    return [f"manylinux_2_{minor}_{arch}" for minor in range(35, 16, -1)] + [f"manylinux2014_{arch}"]


_LINUX = {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"}
_MACOS = {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix"}
# target: (wheel platform tags, marker environment, the decord provider expected, torchcodec expected)
VIDIO_PLATFORMS = {
    "linux-x86_64": (_manylinux("x86_64"), {**_LINUX, "platform_machine": "x86_64"}, "decord", True),
    "linux-aarch64": (_manylinux("aarch64"), {**_LINUX, "platform_machine": "aarch64"}, "decord2", True),
    "macos-x86_64": (["macosx_13_0_x86_64"], {**_MACOS, "platform_machine": "x86_64"}, None, False),
    "macos-arm64": (["macosx_14_0_arm64"], {**_MACOS, "platform_machine": "arm64"}, "decord2", True),
    "windows-x86_64": (
        ["win_amd64"],
        {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt", "platform_machine": "AMD64"},
        None,
        True,
    ),
}
VIDIO_PYTHONS = ("3.10", "3.11", "3.12", "3.13")
# Known gaps upstream, checked to fail for that reason and no other.
VIDIO_UNAVAILABLE = {
    ("macos-x86_64", "3.13"): "torch",  # PyTorch's last Intel-Mac release, 2.2.2, stops at Python 3.12
}


@nox.session(default=False)
def platforms(session: nox.Session) -> None:
    """What `pip install "localkit-vidio[decord2,torchcodec]"` resolves to on Linux x86_64/aarch64,
    macOS x86_64/arm64 and Windows, Python 3.10-3.13 (a dry run against the package index).

    Checks on each: PyAV and torch are taken; decord comes from `decord` on Linux x86_64, from
    `decord2` on Linux aarch64 and Apple silicon, and from nowhere elsewhere (vidio then reads
    with PyAV); torchcodec is taken where it publishes wheels. Options: `-- linux-aarch64 3.12`
    narrows the matrix. Needs the package index, not torch; writes runs/platforms.json.
    """
    import json  # here, so that this session stays one block of the noxfile

    session.install("pip>=25")
    wheels = Path(session.create_tmp()) / "wheels"
    session.run(
        "python", "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels),
        str(LOCAL["localkit-registry"]), str(LOCAL["localkit-vidio"]),
    )  # fmt: skip
    wanted = set(session.posargs)
    results, problems = {}, []
    for target, (tags, environment, provider, torchcodec) in VIDIO_PLATFORMS.items():
        for python in VIDIO_PYTHONS:
            if wanted and not wanted & {target, python}:
                continue
            report = wheels.parent / f"report-{target}-{python}.json"
            report.unlink(missing_ok=True)
            marker_env = {**environment, "python_version": python, "python_full_version": f"{python}.0"}
            output = session.run(
                "python", "-c", _PIP_FOR_TARGET, json.dumps(marker_env),
                "install", "--dry-run", "--quiet", "--ignore-installed", "--target", str(wheels.parent / "target"),
                "--report", str(report), *(f"--platform={tag}" for tag in tags), "--python-version", python,
                "--only-binary", ":all:", "--find-links", str(wheels), "localkit-vidio[decord2,torchcodec]",
                silent=True, success_codes=[0, 1],
            )  # fmt: skip
            cell = f"{target}, Python {python}"
            if not report.exists():
                missing = VIDIO_UNAVAILABLE.get((target, python))
                reason = (output or "").strip().splitlines()[-6:]
                results[cell] = {"resolved": False, "reason": reason}
                if missing and any(missing in line for line in reason):
                    session.log(f"{cell}: no {missing} wheel, as expected (known gap)")
                else:
                    problems.append(f"{cell}: no resolution:\n  " + "\n  ".join(reason))
                continue
            taken = {
                _canonical(i["metadata"]["name"]): i["metadata"]["version"]
                for i in json.loads(report.read_text())["install"]
            }
            results[cell] = {"resolved": True, "packages": dict(sorted(taken.items()))}
            checks = {
                "av": "av" in taken,
                "torch": "torch" in taken,
                f"decord from {provider}": {"decord", "decord2"} & set(taken)
                == ({provider} if provider else set()),
                "torchcodec" if torchcodec else "no torchcodec": ("torchcodec" in taken) == torchcodec,
            }
            failed = [name for name, ok in checks.items() if not ok]
            if failed:
                problems.append(f"{cell}: expected {', '.join(failed)}; resolved {taken}")
            shown = ", ".join(
                f"{n} {taken[n]}" for n in ("av", "torch", "decord", "decord2", "torchcodec") if n in taken
            )
            session.log(f"{cell}: {shown}")
    out = ROOT / "runs" / "platforms.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    if problems:
        session.error("\n".join(problems))
