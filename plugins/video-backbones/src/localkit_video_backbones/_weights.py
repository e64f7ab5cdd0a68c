"""Weight files: read a state dict from disk and load it into a model, every key checked."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

_SHOWN = 5  # keys listed per kind of mismatch; the count says how many there are


class WeightsError(ValueError):
    """Weights that cannot be had or do not fit the model; the message says what to do.

    Raised for a missing or unreadable file, a failed download, a checksum that differs from
    the published or recorded one, and keys that do not match the model.
    """


def read_state_dict(path: str | os.PathLike, *, name: str, expected: str) -> dict[str, torch.Tensor]:
    """Read a state dict saved with ``torch.save`` (tensors only, loaded with ``weights_only``).

    A checkpoint that nests the state dict under ``"state_dict"`` or ``"model"`` is unwrapped,
    and a ``"module."`` prefix on every key (left by ``nn.DataParallel``) is removed.

    Raises:
        WeightsError: the file does not exist, cannot be read, or holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"{name}: weights file {str(path)!r} does not exist. weights= takes the path of a local "
            f"file ({expected}); pretrained=True downloads the published one."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file; all mean the same to the user
        raise WeightsError(
            f"{name}: cannot read {str(path)!r} as a PyTorch weights file ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). Expected {expected}."
        ) from exc
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise WeightsError(
            f"{name}: {str(path)!r} holds {type(obj).__name__}, not a state dict (a mapping of "
            f"parameter names to tensors). Expected {expected}."
        )
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _listed(keys: list[str]) -> str:
    more = f", ... ({len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def load_weights(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    name: str,
    expected: str,
    classifier: str,
    rename: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
) -> nn.Module:
    """Load a local state-dict file into ``model``, every key checked (see :func:`load_state`).

    Raises:
        WeightsError: the file cannot be read, or does not fit the model.
    """
    state = read_state_dict(path, name=name, expected=expected)
    return load_state(
        model,
        state,
        name=name,
        source=repr(str(path)),
        expected=expected,
        classifier=classifier,
        rename=rename,
    )


def load_state(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    name: str,
    source: str,
    expected: str,
    classifier: str,
    rename: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
) -> nn.Module:
    """Load a state dict into ``model``, every key checked.

    The classifier (keys under ``classifier + "."``) is the one exception: it is taken from the
    state only when the model has one of the same shape. A features model ignores the file's
    classifier, and a model built with another ``num_classes`` keeps its freshly initialised one
    (fine-tuning Kinetics weights on a new task). Batch-norm ``num_batches_tracked`` counters,
    absent from files saved before PyTorch 0.4.1, may be missing.

    Args:
        model: the model to fill (modified in place).
        state: parameter names to tensors.
        name: the backbone's name, for messages.
        source: where the state came from (a quoted path, a URL), for messages.
        expected: what the file should be, for messages.
        classifier: the classifier's module path (``"fc"``, ``"logits"``, ...).
        rename: maps another known key naming onto the model's, or ``None``.

    Returns:
        ``model``.

    Raises:
        WeightsError: keys are missing, unexpected or of another shape; the message lists the
            first few of each and what file was expected.
    """
    state = dict(state)
    if rename is not None:
        state = rename(state)
    own = model.state_dict()
    prefix = classifier + "."
    for key in [k for k in state if k.startswith(prefix)]:
        if key not in own or own[key].shape != state[key].shape:
            del state[key]
    for key in own:
        if key not in state and (key.startswith(prefix) or key.endswith(".num_batches_tracked")):
            state[key] = own[key]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [
        f"{k}: file {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or reshaped:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing keys ({_listed(missing)})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys ({_listed(unexpected)})")
        if reshaped:
            problems.append(f"{len(reshaped)} keys of another shape ({_listed(reshaped)})")
        raise WeightsError(
            f"{name}: the weights in {source} do not match the model: {'; '.join(problems)}. "
            f"Expected {expected}."
        )
    model.load_state_dict(state, strict=True)
    return model
