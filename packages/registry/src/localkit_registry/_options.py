"""Strict options: which keywords a factory accepts, and calling it so that a typo is an error.

A factory receives what its consumer passes positionally (a context object, or ``root`` and
``split``) and the user's options as keywords. The options it accepts are read from its
signature: its keyword parameters, plus the keys of a ``TypedDict`` when it declares
``**options: Unpack[TypedDict]`` (PEP 692). A factory that declares a bare ``**kwargs``
cannot be checked: it owns its strictness, and a ``TypeError`` it raises for an unexpected
keyword the user gave is still reported as an :class:`OptionError`.
"""

from __future__ import annotations

import difflib
import inspect
import re
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._errors import ContractError, OptionError

if TYPE_CHECKING:
    from ._registry import Entry

_POSITIONAL_KINDS = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_KEYWORD_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_UNEXPECTED = re.compile(r"unexpected keyword argument '(\w+)'")


def _signature(factory: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(factory, eval_str=True)
    except (NameError, AttributeError, TypeError, SyntaxError):
        # an annotation that only exists for type checkers: the names are still readable
        pass
    except ValueError:
        return None  # a builtin without a signature
    try:
        return inspect.signature(factory)
    except ValueError:
        return None


def _unpacked_keys(annotation: Any) -> list[str] | None:
    """The keys of ``TD`` for ``**kwargs: Unpack[TD]`` (typing or typing_extensions), else None."""
    origin = typing.get_origin(annotation)
    if origin is None or getattr(origin, "_name", None) != "Unpack":
        return None
    (declared,) = typing.get_args(annotation)
    keys = getattr(declared, "__required_keys__", None)
    if keys is None:
        return None
    return [*keys, *declared.__optional_keys__]


def accepted_options(factory: Callable[..., Any], consumed: int = 0) -> tuple[str, ...] | None:
    """The option names ``factory`` accepts, or ``None`` when its ``**kwargs`` hides them.

    Args:
        factory: a function or a class.
        consumed: how many leading positional arguments the consumer passes (the context,
            or ``root`` and ``split``); those parameters are not options.

    Returns:
        The names, sorted; ``None`` when the factory declares a bare ``**kwargs`` (or has no
        readable signature), so that only the factory itself can tell.

    Example:
        >>> def make(context, *, width=16, depth=2):
        ...     return context
        >>> accepted_options(make, consumed=1)
        ('depth', 'width')
        >>> accepted_options(lambda **kwargs: None) is None
        True
    """
    signature = _signature(factory)
    if signature is None:
        return None
    names: list[str] = []
    skipped = 0
    for parameter in signature.parameters.values():
        kind = parameter.kind
        if skipped < consumed and kind in _POSITIONAL_KINDS:
            skipped += 1
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            skipped = consumed
        elif kind in _KEYWORD_KINDS:
            names.append(parameter.name)
        elif kind is inspect.Parameter.VAR_KEYWORD:
            keys = _unpacked_keys(parameter.annotation)
            if keys is None:
                return None
            names += keys
    return tuple(sorted(set(names)))


def _listing(names: Iterable[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def check_options(
    what: str,
    options: Iterable[str],
    accepted: Sequence[str],
    entry: Entry | None = None,
) -> None:
    """Raise :class:`OptionError` when ``options`` holds a name that is not ``accepted``.

    Args:
        what: the thing the options are for, as messages should name it
            (``"objective 'infopro' from 'localkit-infoloss 0.1.0'"``).
        options: the option names given.
        accepted: the names the factory accepts.
        entry: the registry entry, kept on the error.

    Raises:
        OptionError: naming every unknown option, its closest accepted names, and all
            accepted names.

    Example:
        >>> try:
        ...     check_options("head 'mlp'", ["dropuot"], ["dropout", "hidden"])
        ... except OptionError as error:
        ...     print(error)
        head 'mlp' does not accept option 'dropuot' (did you mean 'dropout'?). It accepts: 'dropout', 'hidden'.
    """
    unknown = [name for name in options if name not in accepted]
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, accepted, n=2, cutoff=0.6)
        if close:
            hints.append(
                f"did you mean {' or '.join(map(repr, close))}"
                + (f" for '{name}'" if len(unknown) > 1 else "")
            )
    plural = "s" if len(unknown) > 1 else ""
    message = f"{what} does not accept option{plural} {_listing(unknown)}"
    if hints:
        message += f" ({'; '.join(hints)}?)"
    message += f". It accepts: {_listing(accepted)}." if accepted else ". It accepts no options."
    raise OptionError(message, entry, unknown, accepted)


def call_with_options(
    factory: Callable[..., Any],
    args: Sequence[Any],
    options: Mapping[str, Any],
    *,
    what: str,
    contract: str,
    entry: Entry | None = None,
) -> Any:
    """Call ``factory(*args, **options)`` after checking the options against its signature.

    Args:
        factory: the loaded entry.
        args: what the consumer passes positionally (the context, or root and split).
        options: the user's options.
        what: how messages name the entry (kind, name, distribution and version).
        contract: the call the group's contract prescribes, for a factory that breaks it
            (``"factory(context, **options)"``).
        entry: the registry entry, kept on errors.

    Returns:
        What the factory returned.

    Raises:
        OptionError: an option the factory does not accept (with the accepted names), or a
            required option left out.
        ContractError: the factory cannot take the consumer's positional arguments.
    """
    signature = _signature(factory)
    if signature is not None:
        try:
            bound = signature.bind_partial(*args)
        except TypeError as exc:
            source = f" {entry.value!r}" if entry is not None else ""
            raise ContractError(
                f"{what} does not follow its group's contract {contract}: its factory{source} "
                f"cannot take the {len(args)} positional argument(s) the consumer passes ({exc})"
            ) from None
        accepted = accepted_options(factory, consumed=len(args))
        if accepted is not None:
            check_options(what, options, accepted, entry)
            required = [
                p.name
                for p in signature.parameters.values()
                if p.kind in _KEYWORD_KINDS
                and p.default is p.empty
                and p.name not in bound.arguments
                and p.name not in options
            ]
            if required:
                raise OptionError(
                    f"{what} needs option(s) {_listing(required)}: give a value for each.",
                    entry,
                    (),
                    accepted,
                )
            return factory(*args, **options)
    try:
        return factory(*args, **options)
    except OptionError:
        raise
    except TypeError as exc:
        match = _UNEXPECTED.search(str(exc))
        if match is None or match.group(1) not in options:
            raise
        raise OptionError(
            f"{what} does not accept option '{match.group(1)}' ({exc}). Its factory takes **kwargs, "
            "so it cannot list the options it accepts: see its documentation.",
            entry,
            (match.group(1),),
            None,
        ) from exc
