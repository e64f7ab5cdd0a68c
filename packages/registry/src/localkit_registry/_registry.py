"""Entry-point registries: list without importing, load lazily, fail clearly.

A :class:`Registry` reads one entry-point group. Listing reads distribution metadata and
never imports plugin code; an entry is imported the first time it is asked for, then
memoised. Problems are reported per entry, so one broken or duplicated plugin never takes
the rest of its group down.

Setting the environment variable ``LOCALKIT_DISABLE_PLUGIN_AUTOLOAD=1`` restricts every
group to the entries declared by the distribution that owns it (hermetic tests).
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from ._errors import DuplicateEntryError, PluginLoadError, RegistryError, UnknownEntryError
from ._options import call_with_options

HERMETIC_ENV = "LOCALKIT_DISABLE_PLUGIN_AUTOLOAD"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def natural_key(name: str) -> list:
    """Sort key that orders ``resnet2`` before ``resnet10``.

    Example:
        >>> sorted(["resnet10", "resnet2", "Alexnet"], key=natural_key)
        ['Alexnet', 'resnet2', 'resnet10']
    """
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


@dataclass(frozen=True)
class Entry:
    """One declared entry point, described without importing it."""

    group: str
    name: str
    value: str
    distribution: str
    version: str

    def as_dict(self) -> dict[str, str]:
        """The provenance record written into run metadata."""
        return {
            "group": self.group,
            "name": self.name,
            "value": self.value,
            "distribution": self.distribution,
            "version": self.version,
        }


def _matches(name: str, include: str | Iterable[str], exclude: str | Iterable[str]) -> bool:
    include = [include] if isinstance(include, str) else list(include)
    exclude = [exclude] if isinstance(exclude, str) else list(exclude)
    return any(fnmatch.fnmatchcase(name, p) for p in include) and not any(
        fnmatch.fnmatchcase(name, p) for p in exclude
    )


class Registry:
    """One entry-point group, read lazily.

    Args:
        group: the entry-point group, e.g. ``"splitnet.backbones"``.
        owner: the distribution that owns (consumes) the group; in hermetic mode only
            its own entries are visible.
        kind: what an entry is, for messages (``"backbone"``).
        hint: a sentence appended to "unknown name" errors (where else to look).
        contract: how the consumer calls a factory, quoted when one cannot be called so
            (``"factory(context, **options)"``).

    Example:
        >>> reg = Registry("localkit.examples", owner="localkit-registry", kind="widget")
        >>> reg.names("gadget_*")
        []
        >>> try:
        ...     reg.load("gadget_1")
        ... except UnknownEntryError as error:
        ...     print(error)
        unknown widget 'gadget_1': not found in entry-point group 'localkit.examples' (0 entries from no installed distribution). The name is misspelled, or the distribution that provides it is not installed.
    """

    def __init__(
        self,
        group: str,
        owner: str,
        kind: str = "entry",
        hint: str = "",
        contract: str = "factory(**options)",
    ):
        self.group = group
        self.owner = owner
        self.kind = kind
        self.hint = hint
        self.contract = contract
        self._lock = threading.RLock()
        self._scanned: tuple[dict[str, Entry], dict[str, list[Entry]]] | None = None
        self._loaded: dict[str, Any] = {}

    @property
    def hermetic(self) -> bool:
        """True when ``LOCALKIT_DISABLE_PLUGIN_AUTOLOAD`` restricts the group to its owner."""
        return os.environ.get(HERMETIC_ENV, "").strip().lower() not in ("", "0", "false", "no")

    def refresh(self) -> None:
        """Forget what was scanned and loaded (after installing or removing plugins)."""
        with self._lock:
            self._scanned = None
            self._loaded.clear()

    def _scan(self) -> tuple[dict[str, Entry], dict[str, list[Entry]]]:
        with self._lock:
            if self._scanned is None:
                found: dict[str, list[Entry]] = {}
                for ep in metadata.entry_points(group=self.group):
                    dist = getattr(ep, "dist", None)
                    dist_name = dist.metadata["Name"] if dist is not None else "<unknown>"
                    version = dist.version if dist is not None else "<unknown>"
                    if self.hermetic and _canonical(dist_name) != _canonical(self.owner):
                        continue
                    entry = Entry(self.group, ep.name, ep.value, dist_name, version)
                    same = found.setdefault(ep.name, [])
                    if not any(_canonical(e.distribution) == _canonical(dist_name) for e in same):
                        same.append(entry)
                unique = {name: es[0] for name, es in found.items() if len(es) == 1}
                clashes = {name: es for name, es in found.items() if len(es) > 1}
                self._scanned = (unique, clashes)
            return self._scanned

    def names(self, pattern: str | Iterable[str] = "*", exclude: str | Iterable[str] = ()) -> list[str]:
        """Names in the group matching fnmatch ``pattern`` and not ``exclude``, naturally sorted.

        Nothing is imported. Names declared twice are listed (loading them raises).
        """
        unique, clashes = self._scan()
        names = {n for n in (*unique, *clashes) if _matches(n, pattern, exclude)}
        return sorted(names, key=natural_key)

    def entries(self, pattern: str | Iterable[str] = "*", exclude: str | Iterable[str] = ()) -> list[Entry]:
        """Every declared entry matching the filters, duplicates included, without importing."""
        unique, clashes = self._scan()
        out = [e for n, e in unique.items() if _matches(n, pattern, exclude)]
        out += [e for n, es in clashes.items() if _matches(n, pattern, exclude) for e in es]
        return sorted(out, key=lambda e: (natural_key(e.name), e.distribution))

    def __contains__(self, name: object) -> bool:
        unique, clashes = self._scan()
        return name in unique or name in clashes

    def entry(self, name: str) -> Entry:
        """The declaration of ``name``: its distribution and version, without importing it.

        Raises:
            UnknownEntryError: no installed distribution declares ``name``.
            DuplicateEntryError: two distributions declare ``name``.
        """
        unique, clashes = self._scan()
        if name in clashes:
            owners = " and ".join(f"'{e.distribution} {e.version}' ({e.value})" for e in clashes[name])
            raise DuplicateEntryError(
                f"{self.kind} '{name}' in entry-point group '{self.group}' is declared by two "
                f"distributions: {owners}. Uninstall one of them or rename its entry point."
            )
        if name not in unique:
            raise UnknownEntryError(self._unknown_message(name, unique))
        return unique[name]

    def _unknown_message(self, name: str, unique: dict[str, Entry]) -> str:
        known = sorted(unique, key=natural_key)
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
        close += [k for k in known if k.startswith(name) and k not in close][: 5 - len(close)]
        dists = sorted({f"{e.distribution} {e.version}" for e in unique.values()})
        msg = (
            f"unknown {self.kind} '{name}': not found in entry-point group '{self.group}' "
            f"({len(known)} entries from {', '.join(dists) if dists else 'no installed distribution'})."
        )
        if close:
            msg += f" Closest matches: {', '.join(close)}."
        msg += " The name is misspelled, or the distribution that provides it is not installed."
        if self.hermetic:
            msg += f" {HERMETIC_ENV} is set, so only '{self.owner}' entries are visible."
        if self.hint:
            msg += " " + self.hint
        return msg

    def load(self, name: str) -> Any:
        """Import the object behind ``name`` (memoised).

        Raises:
            UnknownEntryError: no installed distribution declares ``name``.
            DuplicateEntryError: two distributions declare ``name``.
            PluginLoadError: the declaring distribution is broken (it raised anything but
                ``KeyboardInterrupt`` on import, ``SystemExit`` included); the message names it.
        """
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            entry = self.entry(name)
            try:
                obj = metadata.EntryPoint(entry.name, entry.value, entry.group).load()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # a plugin may fail in any way; report it, keep the group
                raise PluginLoadError(
                    f"{self.kind} '{name}' from distribution '{entry.distribution} {entry.version}' "
                    f"(entry point {entry.value!r} in group '{self.group}') failed to load: "
                    f"{type(exc).__name__}: {exc}. Reinstall or uninstall '{entry.distribution}'.",
                    entry,
                ) from exc
            self._loaded[name] = obj
            return obj

    def create(self, name: str, /, *args: Any, **options: Any) -> Any:
        """Load entry ``name`` and call it with the consumer's ``args`` and the user's ``options``.

        The options are checked against the factory's signature first (see
        :func:`accepted_options`): a misspelled option never reaches the factory.

        Args:
            name: the entry.
            *args: what the consumer passes positionally (a context object, or root and split).
            **options: the user's options, passed as keywords.

        Returns:
            What the factory returned.

        Raises:
            UnknownEntryError, DuplicateEntryError, PluginLoadError: as :meth:`load`.
            OptionError: an option the factory does not accept (the message names the
                entry, its distribution, the closest and all accepted names), or a required
                option left out.
            ContractError: the factory cannot take ``args`` (it does not follow the contract).

        Example:
            >>> backbones = Registry("splitnet.backbones", owner="localkit-splitnet", kind="backbone")
            >>> backbones.create("cifar_resnet20", num_clases=10)  # doctest: +SKIP
            OptionError: backbone 'cifar_resnet20' from 'localkit-splitnet 0.1.0' does not accept option 'num_clases' (did you mean 'num_classes'?). It accepts: 'in_chans', 'num_classes', 'pretrained', 'widths'.
        """
        factory = self.load(name)
        entry = self.entry(name)
        return call_with_options(
            factory,
            args,
            options,
            what=f"{self.kind} '{name}' from '{entry.distribution} {entry.version}'",
            contract=self.contract,
            entry=entry,
        )

    def load_all(self, pattern: str | Iterable[str] = "*") -> tuple[dict[str, Any], list[RegistryError]]:
        """Load every matching entry; return what loaded and the problems, never raising."""
        ok: dict[str, Any] = {}
        problems: list[RegistryError] = []
        for name in self.names(pattern):
            try:
                ok[name] = self.load(name)
            except RegistryError as exc:
                problems.append(exc)
        return ok, problems

    def provenance(self) -> dict[str, dict[str, str]]:
        """Which distribution and version supplied each entry loaded so far."""
        unique, _ = self._scan()
        return {name: unique[name].as_dict() for name in sorted(self._loaded, key=natural_key)}
