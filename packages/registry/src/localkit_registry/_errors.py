"""One exception hierarchy for every registry problem, whichever localkit package raised it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._registry import Entry


class RegistryError(Exception):
    """Base class of every registry problem: ``except RegistryError`` catches them all."""


class UnknownEntryError(RegistryError, LookupError):
    """No entry of that name is installed in the group."""


class DuplicateEntryError(RegistryError):
    """Two distributions declare the same name in one group."""


class PluginLoadError(RegistryError):
    """An entry point was found but importing or resolving it failed.

    Attributes:
        entry: the declaration that failed (its ``distribution`` is the one to fix).
    """

    def __init__(self, message: str, entry: Entry | None = None):
        super().__init__(message)
        self.entry = entry

    def __reduce__(self):
        return (type(self), (str(self), self.entry))


class ContractError(RegistryError, TypeError):
    """An entry does not keep its group's contract.

    Its factory cannot be called the way the consumer calls it, or it built the wrong kind
    of object. The message names the distribution to fix.
    """


class OptionError(RegistryError, TypeError):
    """An option the factory does not accept, or a required one left out.

    It is a :class:`TypeError` as well, like the one Python raises for an unexpected keyword.

    Attributes:
        entry: the entry whose factory refused the options (``None`` outside a registry).
        unknown: the options given that the factory does not accept.
        accepted: the option names it accepts; ``None`` when the factory takes undeclared
            ``**kwargs`` and so cannot say.
    """

    def __init__(
        self,
        message: str,
        entry: Entry | None = None,
        unknown: Sequence[str] = (),
        accepted: Sequence[str] | None = None,
    ):
        super().__init__(message)
        self.entry = entry
        self.unknown = tuple(unknown)
        self.accepted = None if accepted is None else tuple(accepted)

    def __reduce__(self):
        return (type(self), (str(self), self.entry, self.unknown, self.accepted))
