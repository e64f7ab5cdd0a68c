"""Scoring rules: per-judge scores (and difficulty) -> final scores, in the ``scoredist.rules`` group.

A rule is any callable ``rule(judge_scores, difficulty=None, **kwargs) -> final_scores``:

- ``judge_scores``: float tensor or array of shape ``(N, J)``: ``N`` samples, ``J`` judges
  (or sub-scores).
- ``difficulty``: ``None`` or shape ``(N,)``: the degree of difficulty, where the sport has one.
- unknown keyword arguments must be accepted and ignored (scoredist may pass more context).
- returns shape ``(N,)``: a tensor for a tensor input, an array for an array input.
- raises ``ValueError`` naming the rule when ``J`` is not what it needs.

scoredist calls rules with float64 tensors. Third parties add a rule by declaring it in
their own ``pyproject.toml``::

    [project.entry-points."scoredist.rules"]
    gymnastics = "mypkg.rules:gymnastics"
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from localkit_registry import Registry

RULES = Registry(
    "scoredist.rules",
    owner="localkit-scoredist",
    kind="rule",
    hint="Built-in rules: diving, sum, mean, trimmed-mean; a plugin adds one in the 'scoredist.rules' group.",
)


def as_float64(values: Any) -> torch.Tensor:
    """``values`` as a float64 tensor, narrower floats read as the decimals they print as.

    Widening a float32 3.2 bit for bit gives 3.2000000476837158, and a dive's 27.5 times it
    gives 88.00000131130219 instead of 88.0. A float32 (or float16) value is therefore read
    as the shortest decimal that identifies it, which is the number that was written: 3.2.
    float64, integer and Python values are converted exactly; the device is kept.
    """
    if torch.is_tensor(values):
        values = values.detach()
        if not values.is_floating_point() or values.dtype == torch.float64:
            return values.to(torch.float64)
        narrow = values.cpu()
        if narrow.dtype not in (torch.float16, torch.float32):
            narrow = narrow.to(torch.float32)  # bfloat16: numpy has no such type; exact in float32
        return torch.from_numpy(narrow.numpy().astype(str).astype(np.float64)).to(values.device)
    array = np.asarray(values)
    if array.dtype.kind == "f" and array.dtype.itemsize < 8:
        return torch.from_numpy(array.astype(str).astype(np.float64))
    return torch.from_numpy(np.asarray(array, dtype=np.float64))


def check_judge_scores(
    judge_scores: Any,
    difficulty: Any = None,
    *,
    rule: str,
    num_judges: int | None = None,
    min_judges: int = 1,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Validate a rule's inputs and return them as float64 tensors.

    Rule authors call this first, so that every rule fails the same clear way.

    Args:
        judge_scores: ``(N, J)`` tensor or array.
        difficulty: ``None`` or ``(N,)``.
        rule: the rule's name, for messages.
        num_judges: the exact ``J`` the rule needs, or ``None`` for any.
        min_judges: the smallest ``J`` the rule accepts.

    Returns:
        ``(judge_scores, difficulty)`` as float64 tensors (``difficulty`` may be ``None``).

    Raises:
        ValueError: wrong shape, wrong number of judges, a NaN, or a difficulty that does not
            match the samples.

    Example:
        >>> scores, dd = check_judge_scores([[8.0, 8.5, 9.0]], [2.0], rule="mine", num_judges=3)
        >>> tuple(scores.shape), dd.tolist()
        ((1, 3), [2.0])
    """
    scores = as_float64(judge_scores)
    if scores.ndim != 2:
        raise ValueError(
            f"rule '{rule}' needs judge scores of shape (N, J), got {tuple(scores.shape)}; "
            f"for one sample pass [[s1, ..., sJ]]"
        )
    count = scores.shape[1]
    if num_judges is not None and count != num_judges:
        raise ValueError(
            f"rule '{rule}' needs exactly {num_judges} judge scores per sample, got {count}; "
            f"choose a rule that matches the dataset's judges (e.g. 'sum', 'mean', 'trimmed-mean')"
        )
    if count < min_judges:
        raise ValueError(f"rule '{rule}' needs at least {min_judges} judge scores per sample, got {count}")
    if torch.isnan(scores).any():
        row = int(torch.isnan(scores).any(dim=1).nonzero()[0])
        raise ValueError(f"rule '{rule}': judge scores of sample #{row} contain NaN: {scores[row].tolist()}")
    if difficulty is None:
        return scores, None
    dd = as_float64(difficulty)
    if dd.shape != (scores.shape[0],):
        raise ValueError(
            f"rule '{rule}' needs one difficulty per sample, shape ({scores.shape[0]},), "
            f"got {tuple(dd.shape)}"
        )
    if torch.isnan(dd).any():
        raise ValueError(f"rule '{rule}': difficulty of sample #{int(torch.isnan(dd).nonzero()[0])} is NaN")
    return scores, dd


def _like(result: torch.Tensor, judge_scores: Any) -> Any:
    return result if torch.is_tensor(judge_scores) else result.numpy()


def _times(total: torch.Tensor, difficulty: torch.Tensor | None) -> torch.Tensor:
    return total if difficulty is None else total * difficulty


def diving(judge_scores: Any, difficulty: Any = None, **kwargs: Any) -> Any:
    """Diving with seven judges: drop the two highest and two lowest, sum the middle three,
    multiply by the degree of difficulty (FINA; MTL-AQA's final score).

    Without ``difficulty`` it returns the execution total (the middle three's sum).

    Raises:
        ValueError: the number of judges is not 7 (see :func:`check_judge_scores`).

    Example:
        >>> float(diving([[9.5, 9.0, 9.5, 9.0, 8.5, 9.5, 8.5]], [3.2])[0])
        88.0
    """
    scores, dd = check_judge_scores(judge_scores, difficulty, rule="diving", num_judges=7)
    middle = scores.sort(dim=1).values[:, 2:5]
    return _like(_times(middle.sum(dim=1), dd), judge_scores)


def sum_(judge_scores: Any, difficulty: Any = None, **kwargs: Any) -> Any:
    """The sum of all judge scores (JIGSAWS: the global rating is the sum of 6 sub-scores),
    times ``difficulty`` when given.

    Example:
        >>> float(sum_([[2, 3, 3, 4, 2, 3]])[0])
        17.0
    """
    scores, dd = check_judge_scores(judge_scores, difficulty, rule="sum")
    return _like(_times(scores.sum(dim=1), dd), judge_scores)


def mean(judge_scores: Any, difficulty: Any = None, **kwargs: Any) -> Any:
    """The mean of all judge scores, times ``difficulty`` when given.

    Example:
        >>> float(mean([[7.0, 8.0, 9.0]])[0])
        8.0
    """
    scores, dd = check_judge_scores(judge_scores, difficulty, rule="mean")
    return _like(_times(scores.mean(dim=1), dd), judge_scores)


def trimmed_mean(judge_scores: Any, difficulty: Any = None, *, trim: int = 1, **kwargs: Any) -> Any:
    """The mean after dropping the ``trim`` highest and ``trim`` lowest scores, times
    ``difficulty`` when given.

    Raises:
        ValueError: fewer than ``2 * trim + 1`` judges.

    Example:
        >>> float(trimmed_mean([[1.0, 7.0, 8.0, 9.0, 10.0]])[0])
        8.0
    """
    if int(trim) != trim or trim < 0:
        raise ValueError(f"rule 'trimmed-mean' needs a non-negative integer trim, got {trim!r}")
    scores, dd = check_judge_scores(judge_scores, difficulty, rule="trimmed-mean", min_judges=2 * trim + 1)
    kept = scores.sort(dim=1).values[:, trim : scores.shape[1] - trim]
    return _like(_times(kept.mean(dim=1), dd), judge_scores)


def get_rule(name: str) -> Callable[..., Any]:
    """The scoring rule registered as ``name`` in the ``scoredist.rules`` group.

    Raises:
        UnknownEntryError: no installed distribution provides ``name`` (the message lists
            the closest names).
        PluginLoadError: the providing distribution fails to import.

    Example:
        >>> get_rule("sum")([[1.0, 2.0]]).tolist()
        [3.0]
    """
    return RULES.load(name)


def list_rules(pattern: str = "*") -> list[str]:
    """Names of the installed scoring rules matching an fnmatch ``pattern``; imports nothing.

    Example:
        >>> {"diving", "sum", "mean", "trimmed-mean"} <= set(list_rules())
        True
    """
    return RULES.names(pattern)


def apply_rule(
    rule: str | Callable[..., Any], judge_scores: torch.Tensor, difficulty: torch.Tensor | None = None
) -> torch.Tensor:
    """Call a rule (by name or callable) and check that it kept its side of the contract.

    Returns:
        float64 tensor of shape ``(N,)``.

    Raises:
        ValueError: the rule returned a wrong shape or non-finite values (the message names
            the distribution that provides it).
    """
    name = rule if isinstance(rule, str) else getattr(rule, "__name__", repr(rule))
    fn = get_rule(rule) if isinstance(rule, str) else rule
    scores = as_float64(judge_scores)
    dd = None if difficulty is None else as_float64(difficulty)
    out = torch.as_tensor(fn(scores, dd), dtype=torch.float64)
    if out.shape != (scores.shape[0],):
        source = f" from '{RULES.entry(name).distribution}'" if isinstance(rule, str) else ""
        raise ValueError(
            f"rule '{name}'{source} returned shape {tuple(out.shape)} for {scores.shape[0]} samples; "
            f"a scoring rule must return one final score per sample, shape (N,)"
        )
    if not torch.isfinite(out).all():
        raise ValueError(f"rule '{name}' returned non-finite final scores: {out.tolist()}")
    return out
